"""Scoring with the plan's evaluator: candidates before the promotion gate, the final model after.

Validation loss (the default) needs no inference: the jobs' eval loss is the answer. With an
evaluator, each completed candidate's held-out outputs are scored in the sandbox and the
scoreboard ranks by mean score (validation loss breaks ties). Scores are stored per
candidate, so a restart never scores (or pays for outputs) twice.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.domain.fsio import write_atomic
from pipeline.domain.platform import PlatformError
from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.domain.slots import CandidateState
from pipeline.evaluation.eval_types import EvalRun
from pipeline.evaluation.prompts import prompt_text
from pipeline.evaluation.sandbox.batch import run_evaluator
from pipeline.evaluation.scores import with_failures, worst_examples
from pipeline.evaluation.strategy import examples_for
from pipeline.planning.plan_types import Plan
from pipeline.run.answers import detail_path, eval_dir
from pipeline.run.context import RunContext
from pipeline.run.events import EvaluatorFailed, ScoreboardChanged
from pipeline.run.steps.baseline import score_base_losses, score_bases
from pipeline.run.steps.heldout import clip, held_out
from pipeline.run.steps.hosted import score_hosted
from pipeline.run.steps.outputs import generate_outputs, release_shared
from pipeline.store import runs
from pipeline.store.runs import RunChanges

WORST = 5  # examples listed in the report


async def score(ctx: RunContext, run: RunRecord, plan: Plan, cand: CandidateRecord) -> tuple[EvalRun, int]:
    """Outputs of ``cand`` on the held-out prompts, scored by the plan's evaluator (kept on disk),
    and how many of its answers failed (each scored 0, its error kept)."""
    assert plan.evaluator is not None
    rows = await held_out(ctx, run, plan)
    answers = await generate_outputs(ctx, run, plan, cand, rows)
    answered = {i for i, text in enumerate(answers.texts) if text is not None}
    if rows and not answered:
        first = next(iter(answers.errors.values()), "no error given")
        raise PlatformError(f"none of its {len(rows)} held-out answers could be had (first error: {first})")
    outputs = [text or "" for text in answers.texts]
    examples = [e for e in examples_for(rows, outputs) if e.index in answered]
    if plan.evaluator.hosted:
        result = await score_hosted(ctx, run, cand, plan.evaluator.hosted, examples)
    else:
        result = await run_evaluator(Path(plan.evaluator.evaluator_path), examples, limits=ctx.config.sandbox)
    result = with_failures(result, answers.errors)
    record = {
        "slot": str(cand.slot),
        "mean": result.mean,
        "errors": result.errors,
        "fatal": result.fatal,
        "failed_answers": {str(i): err for i, err in sorted(answers.errors.items())},
        "reading": result.output if plan.evaluator.hosted else None,
        "scores": [s.model_dump() for s in result.scores],
        "outputs": outputs,
        "references": [row["messages"][-1].get("content") for row in rows],
        "prompts": [prompt_text(row) for row in rows],  # for base vs tuned side by side
    }
    write_atomic(detail_path(run, cand.slot), json.dumps(record, default=str))
    return result, len(answers.errors)


async def score_candidates(ctx: RunContext, run: RunRecord, plan: Plan) -> None:
    """Score every completed, unscored candidate; a broken evaluator is reported, not fatal.
    The shared evaluation deployments are torn down afterwards, also when scoring failed."""
    if plan.evaluator is None:
        await score_base_losses(ctx, run, plan)  # no answers to score: the base's loss, where it can be had
        return
    try:
        await _score_candidates(ctx, run, plan)
    except Exception:
        await release_shared(ctx, run)
        raise
    try:  # the base answers from the shared deployments too, so before they go
        await score_bases(ctx, run, plan)
    finally:
        # Not on cancellation or a stop: the run resumes later and scores with them.
        await release_shared(ctx, run)


async def _score_candidates(ctx: RunContext, run: RunRecord, plan: Plan) -> None:
    for cand in await runs.candidates(ctx.db, run.id):
        if cand.slot.is_final or cand.state is not CandidateState.COMPLETED or cand.score is not None:
            continue
        failed = 0
        try:
            result, failed = await score(ctx, run, plan, cand)
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
                await runs.update_run(tx, run.id, RunChanges(evaluator_error=note))
                tx.emit(EvaluatorFailed(run=await runs.read_run(tx, run.id), slot=cand.slot, reason=note))
            return
        async with ctx.db.write() as tx:
            await runs.set_candidate_score(tx, run.id, cand.slot, score=result.mean, eval_failures=failed)
            await tx.audit(
                run_id=run.id,
                actor="sftbot",
                action="candidate_scored",
                details={"job_id": cand.job_id, "score": result.mean, "errors": result.errors, "failed_answers": failed},
            )
        await ctx.checkpoint(f"score:{cand.job_id}")
        fresh = await ctx.reload(run)
        sweep = tuple(c for c in await runs.candidates(ctx.db, run.id) if not c.slot.is_final)
        await ctx.emit(ScoreboardChanged(run=fresh, candidates=sweep))


async def score_final(ctx: RunContext, run: RunRecord, plan: Plan, final: CandidateRecord) -> EvalRun | None:
    """Score the model that ships (once); None when it was scored before. Never fails the run:
    an evaluator that fails here leaves the final model judged by its validation loss."""
    if final.score is not None:
        return None
    try:
        result, failed = await score(ctx, run, plan, final)
    except (PlatformError, OSError, ValueError) as exc:
        why = f"its answers could not be scored ({exc})"
        write_atomic(detail_path(run, final.slot), json.dumps({"slot": str(final.slot), "fatal": why}))
        return None
    if result.fatal:
        return result
    async with ctx.db.write() as tx:
        await runs.set_candidate_score(tx, run.id, final.slot, score=result.mean, eval_failures=failed)
    worst = worst_examples(result, WORST)
    write_atomic(eval_dir(run) / "final_worst.json", json.dumps([w.model_dump() for w in worst]))
    return result
