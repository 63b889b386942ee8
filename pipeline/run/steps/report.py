"""Phase 7b: final_report.md and the loss curves into the workspace."""

from __future__ import annotations

import time

from pipeline.domain.catalog import find_model
from pipeline.domain.fsio import write_atomic
from pipeline.domain.machine import Event
from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.planning import history
from pipeline.planning.ledger import priced
from pipeline.planning.plan_types import Plan
from pipeline.run.context import Outcome, RunContext, workspace
from pipeline.run.curves import draw_losses, labels
from pipeline.run.events import ReportReady
from pipeline.run.final_report import render_report
from pipeline.run.metrics import load_points
from pipeline.run.summary import summarize
from pipeline.store import outcomes
from pipeline.store.runs import RunChanges


async def report(ctx: RunContext, run: RunRecord) -> Outcome:
    """Write the report and the curves (the final run's curve joins the sweep's)."""
    summary = await summarize(ctx.db, ctx.platform, run, margin=ctx.config.spend_margin)
    ws = workspace(run)
    png = ws / "loss_curves.png"
    if summary.final is not None or not png.exists():  # without a final run the gate's picture is complete
        jobs = [*summary.ranked, *([summary.final] if summary.final else [])]
        names = labels(jobs)
        series = {names[c.job_id]: load_points(ws, c.job_id) for c in jobs}
        shipped = summary.final or summary.shipped
        best = names.get(shipped.job_id) if shipped else None
        await draw_losses(series, png, title=f"Run #{run.number}", winner=best)
    text = render_report(summary, audit=await ctx.db.audit_trail(run.id))
    path = ws / "final_report.md"
    write_atomic(path, text)
    await _learn(ctx, run, summary.plan, [*summary.ranked, *([summary.final] if summary.final else [])])
    await ctx.emit(ReportReady(run=await ctx.reload(run), report=path, curves=png))
    return Outcome(Event.REPORTED, RunChanges(actual_usd=summary.cost.actual_usd))


async def _learn(ctx: RunContext, run: RunRecord, plan: Plan | None, jobs: list[CandidateRecord]) -> None:
    """Leave this run's training estimate vs actual for the next plan of the same size band."""
    both = priced(jobs, plan)
    if plan is None or both is None or not run.billed or both[0] <= 0:
        return
    outcome = history.Outcome(
        platform=run.platform,
        band=history.band(find_model(jobs[0].base_model)),
        phase="training",
        estimated_usd=both[0],
        actual_usd=both[1],
        at=time.time(),
    )
    async with ctx.db.write() as tx:
        await outcomes.record(tx, run.id, outcome)
