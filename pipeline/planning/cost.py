"""Cost estimate for a plan: Training + Inference = Total, with a range (pure).

Fireworks bills LoRA SFT per training token (tokens x epochs) by model-size band, and a
deployment per GPU-second while replicas are up (reference/fireworks.md §6). On the local
platform the cost is compute time, so the estimate is minutes and the dollar lines are 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pipeline.catalog import BaseModelInfo, price_table
from pipeline.planning.duration import minutes
from pipeline.planning.models import CostEstimate, CostLine, Duration, PlannedJob
from pipeline.spec import EvalKind, Evaluation


def money(usd: float | None) -> str:
    """Format like the cookbook's estimator: cents below $100, whole dollars above, <$0.01."""
    if usd is None:
        return "unknown"
    if 0 < usd < 0.01:
        return "<$0.01"
    if usd >= 100:
        return f"${usd:,.0f}"
    return f"${usd:,.2f}"


def _sum(values: Sequence[float | None]) -> float | None:
    if any(v is None for v in values):
        return None
    return round(sum(v for v in values if v is not None), 6)


def estimate_cost(
    *,
    candidates: Sequence[PlannedJob],
    final: PlannedJob | None,
    evaluation: Evaluation,
    eval_examples: int,
    deploy: bool,
    platform: str,
    model_info: Callable[[str], BaseModelInfo | None],
    duration: Duration | None = None,
    time_unknown: list[str] | None = None,
) -> CostEstimate:
    """Cost the plan's jobs; an unknown model size gives an "unknown" line, never a guess."""
    prices = price_table()
    jobs = [*candidates, *([final] if final else [])]
    billed = sum(j.train_tokens * j.epochs for j in jobs)
    if platform == "local":
        return _local_estimate(billed, duration, time_unknown or [], prices.as_of)
    lines: list[CostLine] = []
    unknown: list[str] = []
    for job in jobs:
        tier = prices.sft_tier(_params(model_info(job.base_model)))
        tokens = job.train_tokens * job.epochs
        name = "final run" if job.slot.is_final else f"candidate {job.slot.number}"
        if tier is None:
            unknown.append(f"{name}: price band of {job.base_model} unknown (model size not known)")
            lines.append(CostLine(phase="training", label=name, usd=None, detail=f"{tokens:,} tokens, band unknown"))
            continue
        usd = tokens / 1e6 * tier.usd
        lines.append(
            CostLine(
                phase="training",
                label=name,
                usd=round(usd, 6),
                detail=f"{job.train_tokens:,} tokens x {job.epochs} epochs at ${tier.usd:.2f}/1M ({tier.label})",
            )
        )
    gpu = prices.deployment_gpu_hour
    hours = prices.deployment_hours_in_estimate
    if evaluation.kind is not EvalKind.LOSS and candidates:
        # Evaluator outputs come from a short-lived deployment per evaluated model (every
        # candidate and the final model), torn down as soon as its outputs are in.
        models = len(candidates) + (1 if final else 0)
        eval_hours = prices.evaluation_deployment_hours
        lines.append(
            CostLine(
                phase="inference",
                label="evaluation outputs",
                usd=round(models * eval_hours * gpu.usd, 6),
                detail=f"{models} short-lived deployment(s) x ~{eval_hours:g} h x 1 {gpu.gpu} at ${gpu.usd:.2f}/h "
                f"for {eval_examples} held-out examples each",
            )
        )
    if deploy:
        lines.append(
            CostLine(
                phase="inference",
                label="deployment (first hour)",
                usd=round(hours * gpu.usd, 6),
                detail=f"{hours:g} h x 1 {gpu.gpu} at ${gpu.usd:.2f}/h; billed per second while up, {gpu.note}",
            )
        )
    training = _sum([ln.usd for ln in lines if ln.phase == "training"])
    inference = _sum([ln.usd for ln in lines if ln.phase == "inference"]) or 0.0
    total = None if training is None else round(training + inference, 6)
    # GPU-hour sources disagree, so the high end also uses the higher GPU rate.
    high_inference = inference * (gpu.usd_high / gpu.usd) if gpu.usd else inference
    return CostEstimate(
        training_usd=training,
        inference_usd=inference,
        total_usd=total,
        low_usd=None if training is None else round((training + inference) * prices.range.low, 6),
        high_usd=None if training is None else round((training + high_inference) * prices.range.high, 6),
        prices_as_of=prices.as_of,
        price_source=prices.source,
        billed_tokens=billed,
        lines=lines,
        unknown=unknown,
    )


def _params(info: BaseModelInfo | None) -> float | None:
    return info.params_b if info is not None else None


def _local_estimate(billed: int, duration: Duration | None, time_unknown: list[str], as_of: str) -> CostEstimate:
    """Nothing is billed on this machine: the cost is time, in the plan's duration."""
    if duration is not None:
        detail = f"{billed:,} training tokens in {minutes(duration)} on this machine"
        unknown: list[str] = []
    else:
        detail = f"{billed:,} training tokens; time unknown"
        unknown = time_unknown or ["time unknown: the training speed was not measured"]
    return CostEstimate(
        training_usd=0.0,
        inference_usd=0.0,
        total_usd=0.0,
        low_usd=0.0,
        high_usd=0.0,
        prices_as_of=as_of,
        price_source="local platform: compute time on this machine, no platform charges",
        billed_tokens=billed,
        compute_minutes=round((duration.low_seconds + duration.high_seconds) / 120, 2) if duration else None,
        lines=[CostLine(phase="training", label="local compute", usd=0.0, detail=detail)],
        unknown=unknown,
    )
