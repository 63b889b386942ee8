"""Scoring answers with an evaluator hosted on the platform (Fireworks ``evaluationJobs``).

The answered examples are uploaded as a dataset, an evaluation job scores them into an output
dataset it creates, and the per-row scores are read back from that (pipeline/evaluation/hosted_rows.py
says how, defensively). Every id — input dataset, job, output dataset — is derived from the run
and recorded before its create call; the raw output file is kept beside the candidate's scores.
"""

from __future__ import annotations

import json

from pipeline.domain import ids
from pipeline.domain.fsio import write_atomic
from pipeline.domain.platform import EvaluationJobStatus, Evaluators, JobState, PlatformError
from pipeline.domain.poll import Pace, PollTimeout, poll_until
from pipeline.domain.provenance import Change, Ref, ResourceKind, ResourceState
from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.evaluation.eval_types import EvalExample, EvalRun
from pipeline.evaluation.hosted_rows import input_rows, read_scores
from pipeline.run.context import RunContext, workspace
from pipeline.run.once import Create, create_once
from pipeline.run.steps.data import upload_once
from pipeline.store.db import Tx


def _evaluators(ctx: RunContext) -> Evaluators:
    """The platform's hosted evaluators (the planner refused a hosted evaluator where there are none)."""
    if ctx.platform.evaluators is None:
        raise PlatformError(f"the {ctx.platform.facts.name} platform has no hosted evaluators")
    return ctx.platform.evaluators


async def score_hosted(
    ctx: RunContext, run: RunRecord, cand: CandidateRecord, evaluator: str, examples: list[EvalExample]
) -> EvalRun:
    """Scores of ``examples`` by the hosted ``evaluator``; ``output`` says what was read."""
    slot = str(cand.slot)
    folder = workspace(run) / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    in_id, job_id, out_id = ids.evaluation_ids(run.id, cand.slot)
    source = folder / f"{slot}.hosted-input.jsonl"
    write_atomic(source, "".join(json.dumps(row) + "\n" for row in input_rows(slot, examples)))
    answers = await upload_once(ctx, run, in_id, source, examples=len(examples))
    status = await _until_done(ctx, await _create_job(ctx, run, job_id, evaluator, answers.name, out_id))
    async with ctx.db.write() as tx:
        await ctx.db.move_resource(tx, run.id, Ref(kind=ResourceKind.EVALUATION_JOB, id=job_id), ResourceState.of(status.state))
    if status.state is not JobState.COMPLETED:
        why = status.message or status.raw_state
        return EvalRun(scores=[], mean=None, errors=0, fatal=f"the evaluation job {job_id} {status.state.value}: {why}")
    raw = folder / f"{slot}.hosted-output.jsonl"
    raw.unlink(missing_ok=True)  # a fresh copy of what the job wrote
    await ctx.platform.datasets.stage(status.output_dataset, raw)
    async with ctx.db.write() as tx:
        output = Ref(kind=ResourceKind.DATASET, id=out_id)
        await ctx.db.move_resource(tx, run.id, output, ResourceState.READY, Change(name=status.output_dataset))
    result, reading = read_scores(slot, examples, raw.read_text(encoding="utf-8", errors="replace").splitlines())
    said = reading.sentence(status.output_dataset)
    metrics = ", ".join(f"{k} {v:g}" for k, v in sorted(status.metrics.items()))
    note = f"{said} The job's own metrics: {metrics or 'none'}. Raw rows kept in eval/{raw.name}."
    return result.model_copy(update={"output": note})


async def _create_job(
    ctx: RunContext, run: RunRecord, job_id: str, evaluator: str, answers: str, out_id: str
) -> EvaluationJobStatus:
    """The evaluation job, created once; the dataset it writes is recorded with its id."""

    async def output(tx: Tx) -> None:
        # Created by the job, not by a call of ours: recorded so provenance lists it.
        await ctx.db.move_resource(tx, run.id, Ref(kind=ResourceKind.DATASET, id=out_id), ResourceState.RECORDED)

    create = Create(
        run_id=run.id,
        ref=Ref(kind=ResourceKind.EVALUATION_JOB, id=job_id),
        call=lambda: _evaluators(ctx).create_job(job_id, evaluator=evaluator, input_dataset=answers, output_dataset=out_id),
        intent=Change(details={"evaluator": evaluator, "input": answers, "output": out_id}),
        before=output,
    )
    return await create_once(ctx.db, ctx.checkpoint, create)


async def _until_done(ctx: RunContext, status: EvaluationJobStatus) -> EvaluationJobStatus:
    try:
        return await poll_until(
            lambda: _evaluators(ctx).get_job(status.job_id),
            lambda s: s.state.terminal,
            Pace(timeout=ctx.config.deploy_timeout_seconds, interval=ctx.config.poll_seconds),
            first=status,
            what=f"evaluation job {status.job_id}",
        )
    except PollTimeout as exc:
        last = exc.last if isinstance(exc.last, EvaluationJobStatus) else status
        return last.model_copy(update={"state": JobState.FAILED, "message": f"{exc} (it has no cancel; it runs on)"})
