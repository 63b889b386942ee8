"""The cap before a paid step: the final run's job and the production deployment (held by
evaluation when it scores the final model on that deployment, else by the deploy step).

Checked at the step's entry, before anything is created, and only the first time: a step
whose job or deployment already exists (a resumed run) goes on, because the cap never stops
what is already running without a person's decision. Over the cap, the step returns
OVER_BUDGET with the numbers and the run waits at the budget gate. Under the cap but past 80%
of it with this step, the run says so before the step starts (``SpendWarning``) and goes on.
"""

from __future__ import annotations

import time

from pipeline.domain import ids
from pipeline.domain.gates import BudgetStep
from pipeline.domain.machine import Event
from pipeline.domain.provenance import Ref, ResourceKind, ResourceState
from pipeline.domain.records import RunRecord
from pipeline.domain.slots import FINAL
from pipeline.planning.ledger import ledger, overrun, shortfall, step_estimate
from pipeline.run.bill import Bill, bill
from pipeline.run.context import Outcome, RunContext
from pipeline.run.events import BudgetRequested, SpendWarning
from pipeline.store import runs
from pipeline.store.runs import RunChanges


async def hold(ctx: RunContext, run: RunRecord, step: BudgetStep) -> Outcome | None:
    """OVER_BUDGET when this step would take the run past its cap; None when it may start."""
    if run.approved_usd is None or not run.billed:
        return None  # nothing was approved in dollars (a free run, or a run from before the guard)
    cands = await runs.candidates(ctx.db, run.id)
    resources = await ctx.db.resources(run.id)
    if step is BudgetStep.FINAL and any(c.slot == FINAL for c in cands):
        return None  # its job was created before a restart: it runs on
    production = Ref(kind=ResourceKind.DEPLOYMENT, id=ids.deployment_id(run.id))
    if step is BudgetStep.DEPLOY and any(r.ref == production and r.state is not ResourceState.RECORDED for r in resources):
        return None
    plan = await runs.get_plan(ctx.db, run.id, run.plan_version)
    if plan is None:
        return None
    now = time.time()
    book = ledger(cands, resources, plan, approved_usd=run.approved_usd, now=now, margin=ctx.config.spend_margin)
    ratio = overrun(cands, plan)
    number = 1 + sum(1 for g in await ctx.db.gate_decisions(run.id) if g.gate.kind == "budget")
    usd = step_estimate(step, plan, overrun=ratio)
    request = shortfall(book, step, usd, held=run.phase.value, number=number, overrun=ratio)
    if request is None:
        await warn_ahead(ctx, run, step, usd, bill(run, cands, resources, plan, now=now, margin=book.margin))
        return None
    if step is BudgetStep.DEPLOY:  # a rate: the gate approves it and its first period, and says so
        request = request.model_copy(update={"usd_per_hour": plan.cost.deployment_usd_per_hour})
    return Outcome(Event.OVER_BUDGET, changes=RunChanges(budget=request))


async def warn_ahead(ctx: RunContext, run: RunRecord, step: BudgetStep, usd: float | None, book: Bill) -> None:
    """Say it before the step starts when it would take committed past 80% of the cap; once per
    step, even across restarts (the audit trail remembers it was said)."""
    if usd is None or not book.would_cross(usd) or book.cap_usd is None:
        return
    said = await ctx.db.audit_trail(run.id)
    if any(a.action == "spend_warning" and a.details.get("step") == step.value for a in said):
        return
    async with ctx.db.write() as tx:
        await tx.audit(run_id=run.id, actor="sftbot", action="spend_warning", details={"step": step.value, "usd": usd})
        tx.emit(SpendWarning(run=run, step=step, step_usd=usd, committed_usd=book.committed_usd, cap_usd=book.cap_usd))


async def request_budget(ctx: RunContext, run: RunRecord) -> None:
    """Announce the budget gate (again on resume: surfaces edit the same message)."""
    if run.budget is not None:
        await ctx.emit(BudgetRequested(run=run, request=run.budget))
