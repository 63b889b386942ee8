"""What a finished (or finishing) run amounts to, read from the store: a read model.

The report, the Slack final message and the terminal all show the same facts, so they all
take them from here: the shipped model, its deployment and snippet, the evaluation, and
the cost estimated vs actual.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from pipeline.dataset.system import run_system_prompt
from pipeline.domain import ids
from pipeline.domain.gates import PROMOTION
from pipeline.domain.platform import DeploymentStatus, Platform
from pipeline.domain.provenance import ResourceKind, ResourceState
from pipeline.domain.records import CandidateRecord, GateDecision, Resource, RunRecord
from pipeline.domain.slots import FINAL, CandidateState
from pipeline.evaluation.compare import Comparison
from pipeline.planning.ledger import DEFAULT_MARGIN, job_estimate, ran_share
from pipeline.planning.plan_types import Plan
from pipeline.platforms.lifecycle import serving_note
from pipeline.run import prune_rule
from pipeline.run.answers import comparison
from pipeline.run.bill import bill
from pipeline.run.metrics import load_points
from pipeline.run.scoreboard import rank
from pipeline.store import runs
from pipeline.store.db import Database


class CostSummary(BaseModel):
    training_est: float | None = None
    inference_est: float | None = None
    total_est: float | None = None
    training_actual: float | None = None  # the platform's own per-job figures, summed
    training_delta_pct: float | None = None
    compute_minutes: float | None = None  # local platform: estimated training minutes
    # The run's ledger at the time of the summary (pipeline/planning/ledger.py; ``sftbot spend`` reads the same).
    deployments_usd: float = 0.0  # the deployments it created, GPU-hours x rate so far (an upper bound)
    actual_usd: float | None = None  # spent: jobs + deployments; None on the local platform (nothing billed)
    committed_usd: float | None = None  # jobs at their whole price from submission + deployments so far
    approved_usd: float | None = None
    cap_usd: float | None = None
    live_usd_per_hour: float = 0.0  # what still bills, per hour
    deployment_usd_per_hour: float | None = None  # the production deployment's own rate while up
    overrun: float | None = None  # the priced jobs' actual / estimate
    overrun_flag: bool = False  # at or past 1.5x: said on the final message and the report
    as_of: float = 0.0


class RunSummary(BaseModel):
    run: RunRecord
    plan: Plan | None
    ranked: list[CandidateRecord]  # sweep candidates, best first
    final: CandidateRecord | None  # the final run (None when skipped or not reached)
    shipped: CandidateRecord | None  # the model that ships: the final run, else the promoted candidate
    promoted_by: GateDecision | None
    deployment: DeploymentStatus | None  # the production deployment once it served a request
    snippet: str | None
    serving_note: str | None = None  # what keeps billing and how it scales, with the teardown command
    resources: list[Resource]
    cost: CostSummary
    evaluation: str
    start_command: str | None = None  # a local deployment: the command that serves it when nothing answers
    exportable: bool = False  # the shipped model can be written to this machine's disk (`sftbot export`)
    api_key_env: str | None = None  # where a client of the deployment keeps its key (the platform's words)
    exports: list[Resource] = []  # what `sftbot export` wrote for this run
    timing: dict[str, float] = {}  # slot name -> seconds the job ran (first seen running to finished)
    pruning: str | None = None  # what pruning saved, one sentence (None: nothing was pruned)
    comparison: Comparison | None = None  # the base model vs the model that ships (None: the base was not scored)

    @property
    def model(self) -> str | None:
        """The shipped model's name (the deployed one when there is a deployment)."""
        if self.deployment is not None:
            return self.deployment.model
        return (self.shipped.model or self.shipped.job_id) if self.shipped else None


def delta_pct(estimated: float | None, actual: float | None) -> float | None:
    if estimated is None or actual is None or estimated == 0:
        return None
    return (actual - estimated) / estimated * 100


def evaluator_failure(run: RunRecord) -> str | None:
    """Why the evaluator could not score the shipped model, from its kept result (None if it did)."""
    path = Path(run.workspace) / "eval" / "final.json"
    if not path.exists():
        return None
    fatal = json.loads(path.read_text(encoding="utf-8")).get("fatal")
    return str(fatal) if fatal else None


def evaluation_sentence(plan: Plan | None, shipped: CandidateRecord | None, *, evaluator_failure: str | None = None) -> str:
    """One sentence on how the shipped model did on held-out data."""
    if shipped is None:
        return "No model was trained."
    if shipped.val_loss is not None:
        loss = f"validation loss {shipped.val_loss:.4f}"
        if shipped.train_loss is not None:
            loss += f" (train loss {shipped.train_loss:.4f})"
    else:
        loss = "no validation loss reported"
    if plan is None or plan.evaluator is None:
        return f"Final model: {loss}."
    if evaluator_failure:
        return f"Final model: {loss}. The evaluator failed on it: {evaluator_failure}"
    if shipped.score is None:
        return f"Final model: {loss}."
    failed = (
        f" ({shipped.eval_failures} answer{'s' if shipped.eval_failures != 1 else ''} failed and count as 0)"
        if shipped.eval_failures
        else ""
    )
    return f"Final model: mean evaluator score {shipped.score:.3f} on {plan.eval_examples} held-out examples{failed}; {loss}."


def pruning_savings(plan: Plan | None, cands: list[CandidateRecord], workspace: Path) -> prune_rule.Savings | None:
    """What the run's pruned candidates did not spend: epochs, and their price or time.

    Money (billing platforms): the ledger's price of that job, per epoch. Time (the
    local platform): the pruned job's own pace, from the training-step seconds its trainer
    logged at its last finished epoch (start-up and validation passes left out, so an
    underestimate rather than a boast).
    """
    pruned = []
    for c in cands:
        if c.state is not CandidateState.PRUNED:
            continue
        # The ledger's price of the whole job: what it charges for the part that ran and what
        # is saved here add up to it (pipeline/planning/ledger.py ran_share).
        usd = job_estimate(c, plan)
        at_epoch = [p for p in load_points(workspace, c.job_id) if p.elapsed_s is not None and p.val_loss is not None and p.epoch]
        pace = at_epoch[-1].elapsed_s / at_epoch[-1].epoch if at_epoch and at_epoch[-1].elapsed_s and at_epoch[-1].epoch else None
        pruned.append(
            prune_rule.Pruned(
                epochs=c.epochs,
                reached=ran_share(c) * c.epochs,
                usd_per_epoch=usd / c.epochs if usd is not None and c.epochs else None,
                seconds_per_epoch=pace,
            )
        )
    return prune_rule.savings(pruned)


def production_deployment(run: RunRecord, resources: list[Resource]) -> DeploymentStatus | None:
    dep_id = ids.deployment_id(run.id)
    for res in resources:
        ready = res.kind is ResourceKind.DEPLOYMENT and res.resource_id == dep_id and res.state is ResourceState.READY
        if ready and res.details.get("model_string"):
            return DeploymentStatus.model_validate(res.details)
    return None


async def summarize(db: Database, platform: Platform, run: RunRecord, *, margin: float = DEFAULT_MARGIN) -> RunSummary:
    """Everything the run's final messages and report show, as plain values."""
    plan = await runs.get_plan(db, run.id, run.plan_version) if run.plan_version else None
    cands = await runs.candidates(db, run.id)
    by_slot = {c.slot: c for c in cands}
    final = by_slot.get(FINAL)
    shipped = final or (by_slot.get(run.promoted) if run.promoted else None)
    resources = await db.resources(run.id)
    deployment = production_deployment(run, resources)
    offers = platform.facts.capabilities
    system = run_system_prompt(Path(run.workspace))
    snippet = platform.serving.snippet(deployment, system_prompt=system).code if deployment is not None else None
    note = None
    if deployment is not None:
        shape = plan.shapes.get(shipped.base_model) if plan is not None and shipped is not None else None
        note = serving_note(
            platform.facts.name,
            offers,
            deployment_id=deployment.deployment_id,
            run_number=run.number,
            shape=shape,
        )
    now = db.clock()
    book = bill(run, cands, resources, plan, now=now, margin=margin)
    # The jobs as the bill has them (the platform's figures, a stopped job at what ran).
    actual = book.training_usd if any(ln.usd_per_hour is None for ln in book.lines) else None
    est = plan.cost if plan else None
    promoted_by = next((g for g in await db.gate_decisions(run.id) if g.gate == PROMOTION), None)
    saved = pruning_savings(plan, cands, Path(run.workspace))
    comp = await comparison(db, run, shipped) if shipped is not None else None
    return RunSummary(
        run=run,
        plan=plan,
        ranked=rank(cands),
        final=final,
        shipped=shipped,
        promoted_by=promoted_by,
        deployment=deployment,
        snippet=snippet,
        serving_note=note,
        resources=resources,
        cost=CostSummary(
            training_est=est.training_usd if est else None,
            inference_est=est.inference_usd if est else None,
            total_est=est.total_usd if est else None,
            training_actual=actual,
            training_delta_pct=delta_pct(est.training_usd if est else None, actual),
            compute_minutes=est.compute_minutes if est else None,
            deployments_usd=book.deployments_usd,
            actual_usd=book.spent_usd if run.billed else None,
            committed_usd=book.committed_usd if run.billed else None,
            approved_usd=run.approved_usd,
            cap_usd=book.cap_usd,
            live_usd_per_hour=book.usd_per_hour,
            deployment_usd_per_hour=book.deployment_usd_per_hour,
            overrun=book.overrun,
            overrun_flag=book.overrun_flag,
            as_of=now,
        ),
        evaluation=evaluation_sentence(plan, shipped, evaluator_failure=evaluator_failure(run)),
        # Locally "deployed" is a record any sftbot process can serve; say which command does.
        start_command=f"sftbot endpoint {run.number}" if deployment is not None and offers.serves_here else None,
        exportable=offers.exports_models and shipped is not None,
        api_key_env=platform.facts.api_key_env,
        exports=[r for r in resources if r.kind is ResourceKind.EXPORT],
        timing={
            c.slot.name: round(c.finished_at - c.started_at, 1)
            for c in cands
            if c.started_at is not None and c.finished_at is not None
        },
        pruning=saved.sentence(local=not run.billed) if saved is not None else None,
        comparison=comp,
    )
