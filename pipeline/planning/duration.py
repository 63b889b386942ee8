"""How long a plan takes from approval to a deployed model, as a range with its basis.

The sweep runs in waves of ``max_parallel`` jobs; each wave takes as long as its slowest job
(start-up plus its tokens at the training speed); then the final run, evaluation outputs
and the deployment follow one after the other. Fireworks publishes no training speed, so
its figures come from a dated table of assumptions (``pipeline/data/throughput.json``) and
the plan says so; the local platform uses the throughput it measured on this machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from pipeline.catalog import BaseModelInfo, throughput_table
from pipeline.planning.models import Duration, PlannedJob
from pipeline.spec import EvalKind, Evaluation

LOCAL_SPREAD = (0.8, 1.5)  # measured speed varies with what else the machine does


def _waves(jobs: Sequence[PlannedJob], max_parallel: int) -> list[list[PlannedJob]]:
    size = max(1, max_parallel)
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


def estimate_duration(
    *,
    candidates: Sequence[PlannedJob],
    final: PlannedJob | None,
    max_parallel: int,
    evaluation: Evaluation,
    deploy: bool,
    platform: str,
    model_info: Callable[[str], BaseModelInfo | None],
    local_tokens_per_second: float | None = None,
) -> Duration | None:
    """The range, or None when a model's size (and so its speed) is unknown."""
    if platform == "local":
        if not local_tokens_per_second:
            return None
        tokens = sum(j.train_tokens * j.epochs for j in [*candidates, *([final] if final else [])])
        seconds = tokens / local_tokens_per_second
        low, high = LOCAL_SPREAD
        basis = f"{local_tokens_per_second:,.0f} tokens/s measured on this machine"
        return Duration(low_seconds=seconds * low, high_seconds=seconds * high, basis=basis)
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
