"""The base model on the held-out prompts, and base vs a tuned model (the gate, the deploy block).

Each base model of the sweep answers the same held-out prompts as its candidates and is
scored by the same evaluator, once: its row in ``base_scores`` is written last, so a restart
finds it and never pays for the base's answers twice; its answers are in ``eval/base-*.json``
beside the candidates' ``eval/c<n>.json``. Where a number cannot be had (a hosted evaluator,
no answers), the row says why instead; no loss is made up for an untrained base.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.dataset.staging import EVAL_SOURCE
from pipeline.domain.fsio import write_atomic
from pipeline.domain.gates import Question, QuestionKind
from pipeline.domain.platform import PlatformError
from pipeline.domain.records import RunRecord
from pipeline.domain.slots import CandidateState
from pipeline.evaluation.compare import BaseScore, Comparison
from pipeline.evaluation.prompts import prompt_text
from pipeline.evaluation.sandbox.batch import run_evaluator
from pipeline.evaluation.scores import with_failures
from pipeline.evaluation.strategy import examples_for
from pipeline.planning.plan_types import Plan
from pipeline.run.answers import base_path, read_detail
from pipeline.run.context import RunContext
from pipeline.run.steps import data
from pipeline.run.steps.heldout import clip, held_out
from pipeline.run.steps.outputs import base_outputs
from pipeline.store import baselines, runs


async def score_base_losses(ctx: RunContext, run: RunRecord, plan: Plan) -> None:
    """A run judged by validation loss: each base's loss on the same held-out rows, where the
    platform computes it as it computes a candidate's (the local platform). Where it cannot,
    no row: the plan said so up front, and the gate shows no number rather than a made-up one."""
    done = await baselines.scores(ctx.db, run.id)
    cands = [c for c in await runs.candidates(ctx.db, run.id) if not c.slot.is_final and c.state is CandidateState.COMPLETED]
    staged = Path(run.workspace) / EVAL_SOURCE
    held = staged if plan.eval_dataset and staged.is_file() else Path((await data.split(run, plan)).test_path)
    for base in dict.fromkeys(c.base_model for c in cands):
        if base in done:
            continue
        note = None
        try:
            loss = await ctx.platform.training.base_loss(base, held)
        except (PlatformError, OSError, ValueError) as exc:
            loss, note = None, f"the base's validation loss could not be computed: {clip(str(exc), 300)}"
        if loss is None and note is None:
            continue  # the platform cannot (Fireworks): the plan said so, the gate shows nothing
        scored = BaseScore(base_model=base, val_loss=loss, note=note)
        async with ctx.db.write() as tx:
            await baselines.record(tx, run.id, scored)
            await tx.audit(run_id=run.id, actor="sftbot", action="base_scored", details=scored.model_dump())


async def score_bases(ctx: RunContext, run: RunRecord, plan: Plan) -> None:
    """Score each base model of the completed candidates that has no row yet. Never fails the
    run: the candidates are scored already, and a base that cannot be scored says why."""
    if plan.evaluator is None or (await ctx.reload(run)).evaluator_error:
        return  # a broken evaluator ranks by loss: scoring the base with it would fail the same way
    done = await baselines.scores(ctx.db, run.id)
    cands = [c for c in await runs.candidates(ctx.db, run.id) if not c.slot.is_final and c.state is CandidateState.COMPLETED]
    for base in dict.fromkeys(c.base_model for c in cands):
        if base in done:
            continue
        # Answers kept before a stop are not paid for again: only the row was missing.
        scored = _kept(run, base) or await _score_base(ctx, run, plan, base)
        await ctx.checkpoint(f"base:{base}:answered")
        async with ctx.db.write() as tx:
            await baselines.record(tx, run.id, scored)
            await tx.audit(run_id=run.id, actor="sftbot", action="base_scored", details=scored.model_dump())
        await ctx.checkpoint(f"base:{base}")


async def _score_base(ctx: RunContext, run: RunRecord, plan: Plan, base: str) -> BaseScore:
    assert plan.evaluator is not None
    rows = await held_out(ctx, run, plan)
    try:
        answers = await base_outputs(ctx, run, plan, base, rows)
    except (PlatformError, OSError, ValueError) as exc:
        return BaseScore(base_model=base, note=f"the base model's answers could not be had ({clip(str(exc), 300)})")
    outputs = [text or "" for text in answers.texts]
    answered = {i for i, text in enumerate(answers.texts) if text is not None}
    record: dict[str, Any] = {
        "base_model": base,
        "outputs": outputs,
        "failed_answers": {str(i): err for i, err in sorted(answers.errors.items())},
        "references": [row["messages"][-1].get("content") for row in rows],
        "prompts": [prompt_text(row) for row in rows],
        "scores": [],
    }
    score: float | None = None
    note: str | None = None
    if not answered:
        note = "none of the base model's answers could be had"
    elif plan.evaluator.hosted:
        # A hosted evaluation job per base would be a paid job the plan did not list.
        note = "a hosted evaluator scores the tuned models only; the base's answers are shown, not scored"
    else:
        examples = [e for e in examples_for(rows, outputs) if e.index in answered]
        result = with_failures(
            await run_evaluator(Path(plan.evaluator.evaluator_path), examples, limits=ctx.config.sandbox), answers.errors
        )
        score = result.mean
        note = f"the evaluator failed on the base model's answers: {clip(result.fatal, 300)}" if result.fatal else None
        record["scores"] = [s.model_dump() for s in result.scores]
    scored = BaseScore(base_model=base, score=score, answered=len(answered), note=note)
    record["mean"] = score
    record["base_score"] = scored.model_dump()
    write_atomic(base_path(run, base), json.dumps(record, default=str))
    return scored


def _kept(run: RunRecord, base: str) -> BaseScore | None:
    """The base's score from its answers file, when a stop came between the file and its row."""
    kept = read_detail(base_path(run, base)).get("base_score")
    return BaseScore.model_validate(kept) if isinstance(kept, dict) else None


def deploy_block(comp: Comparison, number: int, *, billing: bool) -> Question:
    """The question that stops a run before deploy when the tuned answers are the base's."""
    n = sum(1 for r in comp.rows if r.base is not None and r.tuned is not None)
    text = (
        f"Deploy blocked: the tuned model answered all {n} held-out prompts exactly as the base model "
        f"{comp.base.base_model} did, so its adapter was probably not loaded; check the final model, then cancel "
        "the run or deploy anyway."
    )
    if billing:  # the final model was scored on its production deployment, which stays up while a person decides
        text += " Its deployment is up and billing meanwhile: /sft teardown stops it."
    return Question(kind=QuestionKind.IDENTICAL_OUTPUTS, text=text, choices=["deploy anyway"], number=number)
