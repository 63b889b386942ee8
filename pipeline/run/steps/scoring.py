"""Scoring with the plan's evaluator: candidates before the promotion gate, the final model after.

Validation loss (the default) needs no inference: the jobs' eval loss is the answer. With an
evaluator, each completed candidate's held-out outputs are scored in the sandbox and the
scoreboard ranks by mean score (validation loss breaks ties). Scores are stored per
candidate, so a restart never scores (or pays for outputs) twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.evaluation.models import EvalRun
from pipeline.evaluation.sandbox import run_evaluator
from pipeline.evaluation.scoring import worst_examples
from pipeline.evaluation.strategy import examples_for, held_out_rows
from pipeline.fsio import write_atomic
from pipeline.planning.models import Plan
from pipeline.platforms.base import PlatformError
from pipeline.run.context import RunContext, workspace
from pipeline.run.events import EvaluatorFailed, ScoreboardChanged
from pipeline.run.slots import CandidateState, Slot
from pipeline.run.steps import data
from pipeline.run.steps.outputs import generate_outputs
from pipeline.store import runs as q
from pipeline.store.records import CandidateRecord, RunRecord
from pipeline.store.runs import RunChanges

WORST = 5  # examples listed in the report


def eval_dir(run: RunRecord) -> Path:
    path = workspace(run) / "eval"
    path.mkdir(parents=True, exist_ok=True)
    return path


def detail_path(run: RunRecord, slot: Slot) -> Path:
    """Where a slot's outputs and per-example scores are kept (``eval/c2.json``, ``eval/final.json``)."""
    return eval_dir(run) / f"{slot}.json"


async def held_out(ctx: RunContext, run: RunRecord, plan: Plan) -> list[dict[str, Any]]:
    ws = workspace(run)
    if plan.eval_dataset:
        local = ws / data.EVAL_SOURCE
        await data.stage_file(ctx, plan.eval_dataset, local)
        return held_out_rows(local, plan.eval_examples)
    return held_out_rows(ws / "split" / "test.jsonl", plan.eval_examples)


async def score(ctx: RunContext, run: RunRecord, plan: Plan, cand: CandidateRecord) -> EvalRun:
    """Outputs of ``cand`` on the held-out prompts, scored by the plan's evaluator (kept on disk)."""
    assert plan.evaluator is not None
    rows = await held_out(ctx, run, plan)
    outputs = await generate_outputs(ctx, run, cand, rows)
    result = await run_evaluator(Path(plan.evaluator.evaluator_path), examples_for(rows, outputs), limits=ctx.config.sandbox)
    record = {
        "slot": str(cand.slot),
        "mean": result.mean,
        "errors": result.errors,
        "fatal": result.fatal,
        "scores": [s.model_dump() for s in result.scores],
        "outputs": outputs,
        "references": [row["messages"][-1].get("content") for row in rows],
    }
    write_atomic(detail_path(run, cand.slot), json.dumps(record, default=str))
    return result


async def score_candidates(ctx: RunContext, run: RunRecord, plan: Plan) -> None:
    """Score every completed, unscored candidate; a broken evaluator is reported, not fatal."""
    if plan.evaluator is None:
        return
    for cand in await q.candidates(ctx.db, run.id):
        if cand.slot.is_final or cand.state is not CandidateState.COMPLETED or cand.score is not None:
            continue
        try:
            result = await score(ctx, run, plan, cand)
            fatal = result.fatal
        except (PlatformError, OSError, ValueError) as exc:  # the outputs could not be had: same fallback
            fatal = f"its answers could not be scored ({exc})"
        if fatal:
            # The money is spent: ranking by validation loss still gives the gate an answer.
            note = (
                f"The evaluator failed on {cand.label}: {clip(fatal, 600)} "
                "The promotion gate ranks by validation loss instead: proceed with it, or cancel."
            )
            async with ctx.db.write() as tx:
                await q.update_run(tx, run.id, RunChanges(evaluator_error=note))
                tx.emit(EvaluatorFailed(run=await q.read_run(tx, run.id), slot=cand.slot, reason=note))
            return
        async with ctx.db.write() as tx:
            await q.set_candidate_metrics(tx, run.id, cand.slot, score=result.mean)
            await tx.audit(
                run_id=run.id,
                actor="sftbot",
                action="candidate_scored",
                details={"job_id": cand.job_id, "score": result.mean, "errors": result.errors},
            )
        await ctx.checkpoint(f"score:{cand.job_id}")
        fresh = await ctx.reload(run)
        sweep = tuple(c for c in await q.candidates(ctx.db, run.id) if not c.slot.is_final)
        await ctx.emit(ScoreboardChanged(run=fresh, candidates=sweep))


async def score_final(ctx: RunContext, run: RunRecord, plan: Plan, final: CandidateRecord) -> EvalRun | None:
    """Score the model that ships (once); None when it was scored before. Never fails the run:
    an evaluator that fails here leaves the final model judged by its validation loss."""
    if final.score is not None:
        return None
    try:
        result = await score(ctx, run, plan, final)
    except (PlatformError, OSError, ValueError) as exc:
        failed = f"its answers could not be scored ({exc})"
        write_atomic(detail_path(run, final.slot), json.dumps({"slot": str(final.slot), "fatal": failed}))
        return None
    if result.fatal:
        return result
    async with ctx.db.write() as tx:
        await q.set_candidate_metrics(tx, run.id, final.slot, score=result.mean)
    worst = worst_examples(result, WORST)
    write_atomic(eval_dir(run) / "final_worst.json", json.dumps([w.model_dump() for w in worst]))
    return result


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
