"""Cost estimate for a plan: Training + Inference = Total, with a range (pure).

Fireworks bills LoRA SFT per training token (tokens x epochs) by model-size band, and a
deployment per GPU-second while replicas are up (reference/fireworks.md §6): GPU count x the
rate of the GPU type of the shape Fireworks matches for the model. A shape that was not
looked up, or a GPU type without a dated rate, gives an "unknown" line, never a guess. On
the local platform the cost is compute time, so the estimate is minutes and the dollar lines
are 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from pipeline.domain.catalog import BaseModelInfo, PriceTable, price_table
from pipeline.domain.platform import ShapeInfo
from pipeline.domain.provenance import DeploymentRate
from pipeline.domain.spec import EvalKind, Evaluation
from pipeline.planning.duration import minutes
from pipeline.planning.plan_types import CostEstimate, CostLine, Duration, PlannedJob

Shapes = Mapping[str, ShapeInfo | None]


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
    shapes: Shapes | None = None,
    addon_shapes: Shapes | None = None,
    hosted_evaluator: bool = False,
    duration: Duration | None = None,
    time_unknown: list[str] | None = None,
) -> CostEstimate:
    """Cost the plan's jobs and deployments; an unknown model size or deployment shape gives an
    "unknown" line, never a guess.

    ``shapes``: base model -> the shape its live-merge deployment runs on (None: not looked
    up); ``addon_shapes``: base -> the multi-LoRA shape candidates' outputs are served from.
    """
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
    serving, high = _serving_lines(
        candidates=candidates,
        final=final,
        evaluation=evaluation,
        eval_examples=eval_examples,
        deploy=deploy,
        shapes=shapes,
        addon_shapes=addon_shapes,
        prices=prices,
    )
    lines += serving
    bases = list(dict.fromkeys(c.base_model for c in candidates))
    hourly = max((_hourly(shapes.get(b) if shapes else None, prices) for b in bases), default=float("inf"))
    unknown += [f"{ln.label}: {ln.detail}" for ln in lines if ln.phase == "inference" and ln.usd is None]
    if hosted_evaluator and candidates:
        unknown.append("hosted evaluation jobs: Fireworks publishes no price for them, so they are not in the total")
    training = _sum([ln.usd for ln in lines if ln.phase == "training"])
    inference = _sum([ln.usd for ln in lines if ln.phase == "inference"])
    high_inference = _sum(high)
    total = None if training is None or inference is None else round(training + inference, 6)
    return CostEstimate(
        training_usd=training,
        inference_usd=inference,
        total_usd=total,
        low_usd=None if total is None else round(total * prices.range.low, 6),
        # GPU-hour sources disagree, so the high end also uses each GPU's higher rate.
        high_usd=None
        if total is None or high_inference is None
        else round(((training or 0.0) + high_inference) * prices.range.high, 6),
        prices_as_of=prices.as_of,
        price_source=prices.source,
        billed_tokens=billed,
        deployment_usd_per_hour=hourly if deploy and hourly != float("inf") else None,
        lines=lines,
        unknown=unknown,
    )


def _serving_lines(
    *,
    candidates: Sequence[PlannedJob],
    final: PlannedJob | None,
    evaluation: Evaluation,
    eval_examples: int,
    deploy: bool,
    shapes: Shapes | None,
    addon_shapes: Shapes | None,
    prices: PriceTable,
) -> tuple[list[CostLine], list[float | None]]:
    """Deployment lines (usd None when unknown) and each line's high-end price."""
    lines: list[CostLine] = []
    high: list[float | None] = []

    def add(label: str, shape: ShapeInfo | None, hours: float, copies: int, what: str) -> None:
        if shape is None:
            why = "deployment shape not looked up (it needs the Fireworks account)" if shapes is None else "no deployment shape"
            lines.append(CostLine(phase="inference", label=label, usd=None, detail=f"{what}; {why}"))
            high.append(None)
            return
        rate = prices.gpu_rate(shape.accelerator)
        gpus = f"{shape.count} x {rate.label if rate else shape.accelerator}"
        if rate is None:
            detail = f"{what} on {gpus}: no dated price for this GPU type"
            lines.append(CostLine(phase="inference", label=label, usd=None, detail=detail))
            high.append(None)
            return
        usd = copies * hours * shape.count * rate.usd
        detail = f"{what}: {copies} x ~{hours:g} h x {gpus} at ${rate.usd:.2f}/GPU-h (shape {_shape_id(shape.name)})"
        lines.append(CostLine(phase="inference", label=label, usd=round(usd, 6), detail=detail))
        high.append(round(copies * hours * shape.count * rate.usd_high, 6))

    def shape_of(base: str, table: Shapes | None) -> ShapeInfo | None:
        return table.get(base) if table is not None else None

    bases = list(dict.fromkeys(c.base_model for c in candidates))
    # The shipped model's base is chosen at the gate: price the dearest one.
    priciest = max(bases, key=lambda b: _hourly(shape_of(b, shapes), prices), default=None)
    eval_hours = prices.evaluation_deployment_hours
    if evaluation.kind is not EvalKind.LOSS and candidates:
        for base in bases:
            n = sum(1 for c in candidates if c.base_model == base)
            addon = shape_of(base, addon_shapes)
            if addon is not None:
                # The base answers from the same deployment (its own model string): no extra hours.
                what = (
                    f"candidate outputs ({n} adapters on one multi-LoRA deployment of {base}, {eval_examples} examples each, "
                    "and the base model's own answers on it)"
                )
                add(f"evaluation outputs ({base})", addon, eval_hours, 1, what)
            else:
                what = f"candidate outputs ({n} short-lived live-merge deployments of {base}, {eval_examples} examples each)"
                add(f"evaluation outputs ({base})", shape_of(base, shapes), eval_hours, n, what)
                what = f"the base model's answers to the same {eval_examples} examples (one short-lived deployment)"
                add(f"base model outputs ({base})", shape_of(base, shapes), eval_hours, 1, what)
        if final is not None and not deploy and priciest is not None:
            add("evaluation outputs (final model)", shape_of(priciest, shapes), eval_hours, 1, "the final model's outputs")
    if deploy and priciest is not None:
        hours = prices.deployment_hours_in_estimate
        add("deployment (first hour)", shape_of(priciest, shapes), hours, 1, "billed per second while a replica is up")
    return lines, high


def _shape_id(name: str) -> str:
    """``big`` for ``accounts/fireworks/deploymentShapes/big/versions/3``."""
    parts = name.split("/")
    return parts[parts.index("deploymentShapes") + 1] if "deploymentShapes" in parts[:-1] else parts[-1]


def usd_per_hour(shape: ShapeInfo | None) -> float | None:
    """What a replica of this shape bills per hour at the dated rate; None when unknown."""
    hourly = _hourly(shape, price_table())
    return None if hourly == float("inf") else round(hourly, 6)


def deployment_rate(shape: ShapeInfo) -> DeploymentRate:
    """A deployment's typed rate on this shape: $/hour per replica (None without a dated price
    for its GPU type), the GPUs it stands on and the date of the prices."""
    return DeploymentRate(
        usd_per_hour=usd_per_hour(shape),
        gpu_count=shape.count,
        accelerator=shape.accelerator,
        priced_at=price_table().as_of,
    )


def _hourly(shape: ShapeInfo | None, prices: PriceTable) -> float:
    rate = prices.gpu_rate(shape.accelerator) if shape is not None else None
    return shape.count * rate.usd if shape is not None and rate is not None else float("inf")


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
