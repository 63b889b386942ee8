"""Entering a gate: announce what waits for a person (nothing is spent while it waits).

These run again on resume, so surfaces must treat an announcement they have shown before as
"the same message" (edit it in place), never as a new one.
"""

from __future__ import annotations

from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.domain.slots import CandidateState
from pipeline.run.answers import comparison
from pipeline.run.context import RunContext, workspace
from pipeline.run.curves import draw_losses, labels
from pipeline.run.events import PlanProposed, PromotionRequested, QuestionAsked
from pipeline.run.metrics import load_points
from pipeline.run.scoreboard import rank
from pipeline.store import runs


async def ask(ctx: RunContext, run: RunRecord) -> None:
    if run.question is not None:
        await ctx.emit(QuestionAsked(run=run, question=run.question))


async def propose(ctx: RunContext, run: RunRecord) -> None:
    plan = await runs.get_plan(ctx.db, run.id, run.plan_version)
    if plan is not None:
        await ctx.emit(PlanProposed(run=run, plan=plan))


def gate_summary(best: CandidateRecord | None) -> str:
    """One sentence: who leads and by which metric."""
    if best is not None and best.score is not None:
        loss = f"{best.val_loss:.4f}" if best.val_loss is not None else "n/a"
        failed = f", {best.eval_failures} failed answers scored 0" if best.eval_failures else ""
        return f"Winner by evaluator score: {best.label} (mean score {best.score:.3f}{failed}, val loss {loss})"
    if best is not None and best.val_loss is not None:
        return f"Winner by validation loss: {best.label} (val loss {best.val_loss:.4f})"
    return "No candidate reported a validation loss."


async def request_promotion(ctx: RunContext, run: RunRecord) -> None:
    """The ranked scoreboard and the loss-curve picture for the promotion gate."""
    cands = [c for c in await runs.candidates(ctx.db, run.id) if not c.slot.is_final]
    ranked = rank(cands)
    ws = workspace(run)
    png = ws / "loss_curves.png"
    names = labels(cands)
    series = {names[c.job_id]: load_points(ws, c.job_id) for c in cands}
    best = names[ranked[0].job_id] if ranked and (ranked[0].val_loss is not None or ranked[0].score is not None) else None
    await draw_losses(series, png, title=f"Run #{run.number} sweep", winner=best)
    text = gate_summary(ranked[0] if ranked else None)
    if run.evaluator_error:
        text = f"{run.evaluator_error}\n{text}"
    done = [c for c in ranked if c.state is CandidateState.COMPLETED]
    comp = await comparison(ctx.db, run, done[0]) if done else None
    await ctx.emit(PromotionRequested(run=run, ranked=tuple(ranked), summary=text, curves=png, comparison=comp))
