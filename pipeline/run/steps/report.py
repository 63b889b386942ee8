"""Phase 7b: final_report.md and the loss curves into the workspace."""

from __future__ import annotations

import asyncio

from pipeline.curves import labels, plot_losses
from pipeline.fsio import write_atomic
from pipeline.report import render_report
from pipeline.run.context import Outcome, RunContext, workspace
from pipeline.run.events import ReportReady
from pipeline.run.machine import Event
from pipeline.run.metrics import load_points
from pipeline.run.summary import summarize
from pipeline.store.records import RunRecord
from pipeline.store.runs import RunChanges


async def report(ctx: RunContext, run: RunRecord) -> Outcome:
    """Write the report and the curves (the final run's curve joins the sweep's)."""
    summary = await summarize(ctx.db, ctx.platform, run)
    ws = workspace(run)
    png = ws / "loss_curves.png"
    if summary.final is not None or not png.exists():  # without a final run the gate's picture is complete
        jobs = [*summary.ranked, *([summary.final] if summary.final else [])]
        names = labels(jobs)
        series = {names[c.job_id]: load_points(ws, c.job_id) for c in jobs}
        shipped = summary.final or summary.shipped
        best = names.get(shipped.job_id) if shipped else None
        await asyncio.to_thread(plot_losses, series, png, title=f"Run #{run.number}", winner=best)
    text = render_report(summary, audit=await ctx.db.audit_trail(run.id), platform=ctx.platform.name)
    path = ws / "final_report.md"
    write_atomic(path, text)
    await ctx.emit(ReportReady(run=await ctx.reload(run), report=path, curves=png))
    return Outcome(Event.REPORTED, RunChanges(actual_usd=summary.cost.training_actual))
