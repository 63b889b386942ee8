"""Time estimates (pure), per job and in total, approval to a deployed model.

The local platform measures its own throughput on this machine (below). Fireworks publishes
no training speed, so its range comes from a dated table of assumptions
(``pipeline/data/throughput.json``; ``table_duration``) and the plan says so.

Local:

A job is start-up (imports, model load, tokenisation) plus its tokens x epochs at the
measured speed, plus a validation pass per epoch (forward only: about a third of a
training step per token). The range runs from the fastest timed step to the slowest with a
margin, because a whole job varies more than a few steps do; other work on the machine
slows it beyond that, which the basis sentence says.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from pipeline.domain.catalog import BaseModelInfo, throughput_table
from pipeline.domain.platform import Throughput
from pipeline.domain.spec import EvalKind, Evaluation
from pipeline.planning.plan_types import Duration, PlannedJob

VALIDATION_COST = 1 / 3  # forward only, per token, relative to a training step
SLOW_MARGIN = 1.25
DECODE_BATCH = 16  # prompts per generation batch (platforms/local/serve.py generate_batch)


def basis(tp: Throughput) -> str:
    when = f"cached from {tp.measured_at[:10]}" if tp.cached else f"measured now in {tp.measure_seconds or 0:.0f} s"
    return (
        f"{tp.tokens_per_second_low:,.0f}-{tp.tokens_per_second_high:,.0f} tokens/s for {tp.model} on this machine "
        f"({tp.machine}, {tp.precision}, batch {tp.batch_size}; {tp.steps} timed steps, {when}); "
        "other work on the machine makes it slower"
    )


def job_duration(job: PlannedJob, tp: Throughput, *, eval_tokens: int) -> Duration:
    """One training job, start-up to saved adapter."""
    work = job.train_tokens * job.epochs + eval_tokens * job.epochs * VALIDATION_COST
    return Duration(
        low_seconds=round(tp.startup_seconds + work / tp.tokens_per_second_high, 1),
        high_seconds=round((tp.startup_seconds + work / tp.tokens_per_second_low) * SLOW_MARGIN, 1),
        basis=basis(tp),
    )


def evaluation_duration(tp: Throughput, *, examples: int, answer_tokens: int) -> Duration | None:
    """Greedy answers of one model to the held-out prompts: from answers that stop early
    (~32 tokens, a short structured reply) to answers that run to the budget."""
    if tp.decode_seconds is None or examples <= 0:
        return None
    steps = math.ceil(examples / DECODE_BATCH) * tp.decode_seconds
    return Duration(
        low_seconds=round(steps * min(answer_tokens, 32), 1),
        high_seconds=round(steps * answer_tokens * SLOW_MARGIN, 1),
        basis=basis(tp),
    )


def with_durations(
    jobs: Sequence[PlannedJob], throughput: Mapping[str, Throughput], *, eval_tokens: int
) -> tuple[list[PlannedJob], list[str]]:
    """The jobs with their durations, and why any could not be estimated."""
    out, unknown = [], []
    for job in jobs:
        tp = throughput.get(job.base_model)
        if tp is None:
            unknown.append(f"{job.slot.name}: the training speed of {job.base_model} could not be measured here")
            out.append(job)
        else:
            out.append(job.model_copy(update={"duration": job_duration(job, tp, eval_tokens=eval_tokens)}))
    return out, unknown


def run_duration(
    candidates: Sequence[PlannedJob],
    final: PlannedJob | None,
    throughput: Mapping[str, Throughput],
    *,
    max_parallel: int,
    evaluated_examples: int,
    answer_tokens: int,
) -> Duration | None:
    """The whole run after approval: the sweep in waves of ``max_parallel``, the final run,
    evaluator answers per trained model (when the plan has an evaluator), and loading the
    deployed model. None when any job's time is unknown (a partial total would mislead)."""
    jobs = [*candidates, *([final] if final else [])]
    if not jobs or any(j.duration is None for j in jobs):
        return None
    durations = [j.duration for j in candidates if j.duration is not None]
    low = high = 0.0
    for start in range(0, len(durations), max(1, max_parallel)):
        wave = durations[start : start + max(1, max_parallel)]
        low += max(d.low_seconds for d in wave)
        high += max(d.high_seconds for d in wave)
    if final is not None and final.duration is not None:
        low, high = low + final.duration.low_seconds, high + final.duration.high_seconds
    tp = throughput[jobs[0].base_model]
    for job in jobs if evaluated_examples else []:
        answers = evaluation_duration(throughput[job.base_model], examples=evaluated_examples, answer_tokens=answer_tokens)
        if answers is not None:
            low, high = low + answers.low_seconds, high + answers.high_seconds
    # Deploying loads the shipped model once more: about a job's start-up without the imports.
    low, high = low + tp.startup_seconds / 2, high + tp.startup_seconds
    return Duration(low_seconds=round(low, 1), high_seconds=round(high, 1), basis=basis(tp))


def minutes(d: Duration) -> str:
    """``~3-5 min`` (seconds below two minutes)."""
    if d.high_seconds < 120:
        return f"~{d.low_seconds:,.0f}-{d.high_seconds:,.0f} s"
    return f"~{d.low_seconds / 60:,.1f}-{d.high_seconds / 60:,.1f} min"


def _waves(jobs: Sequence[PlannedJob], max_parallel: int) -> list[list[PlannedJob]]:
    size = max(1, max_parallel)
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


def table_duration(
    *,
    candidates: Sequence[PlannedJob],
    final: PlannedJob | None,
    max_parallel: int,
    evaluation: Evaluation,
    deploy: bool,
    model_info: Callable[[str], BaseModelInfo | None],
) -> Duration | None:
    """A platform that publishes no training speed (Fireworks): the range from the dated
    table of assumptions, or None when a model's size (and so its speed) is unknown."""
    table = throughput_table()
    start = table.job_start_minutes

    def job(j: PlannedJob) -> tuple[float, float] | None:
        info = model_info(j.base_model)
        band = table.speed(info.params_b if info is not None else None)
        if band is None:
            return None
        tokens = j.train_tokens * j.epochs
        return start.low * 60 + tokens / band.high, start.high * 60 + tokens / band.low

    low = high = 0.0
    for wave in _waves(candidates, max_parallel):
        spans = [job(j) for j in wave]
        if any(s is None for s in spans):
            return None
        low += max(s[0] for s in spans if s is not None)
        high += max(s[1] for s in spans if s is not None)
    if final is not None:
        span = job(final)
        if span is None:
            return None
        low, high = low + span[0], high + span[1]
    if evaluation.kind is not EvalKind.LOSS:
        models = math.ceil(len(candidates) / max(1, max_parallel)) + (1 if final else 0)
        low += models * table.evaluation_minutes_per_model.low * 60
        high += models * table.evaluation_minutes_per_model.high * 60
    if deploy:
        low += table.deployment_minutes.low * 60
        high += table.deployment_minutes.high * 60
    return Duration(low_seconds=low, high_seconds=high, basis=f"{table.basis} (table of {table.as_of})")
