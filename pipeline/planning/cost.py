"""Cost estimate for a plan: Training + Inference = Total, with a range (pure).

Fireworks bills LoRA SFT per training token (tokens x epochs) by model-size band, and a
deployment per GPU-second while replicas are up (reference/fireworks.md §6): GPU count x the
rate of the GPU type of the shape Fireworks matches for the model. A shape that was not
looked up, or a GPU type without a dated rate, gives an "unknown" line, never a guess. On
the local platform the cost is compute time, so the estimate is minutes and the dollar lines
are 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from pipeline.domain.catalog import BaseModelInfo, PriceTable, price_table
from pipeline.domain.platform import PriceFacts, ShapeInfo
from pipeline.domain.provenance import DeploymentRate
from pipeline.domain.spec import EvalKind
from pipeline.planning.duration import minutes
from pipeline.planning.plan_types import CostEstimate, CostLine, Duration, Lookups, PlannedJob, Shapes, Work


def _sum(values: Sequence[float | None]) -> float | None:
    if any(v is None for v in values):
        return None
    return round(sum(v for v in values if v is not None), 6)


def estimate_cost(
    work: Work,
    prices: PriceFacts,
    found: Lookups,
    *,
    duration: Duration | None = None,
    time_unknown: list[str] | None = None,
) -> CostEstimate:
    """Cost the plan's jobs and deployments; an unknown model size or deployment shape gives an
    "unknown" line, never a guess. A platform that bills nothing costs time (``duration``)."""
    billed = sum(j.train_tokens * j.epochs for j in work.jobs)
    if prices.table is None:
        return _local_estimate(billed, duration, time_unknown or [], price_table().as_of)
    table = prices.table
    lines: list[CostLine] = []
    unknown: list[str] = []
    for job in work.jobs:
        lines.append(line := _training_line(job, table, found))
        if line.usd is None:
            unknown.append(f"{line.label}: price band of {job.base_model} unknown (model size not known)")
    serving, low = _serving_lines(work, found, table)
    lines += serving
    hourly = max((_hourly(found.shapes.get(b) if found.shapes else None, table) for b in work.bases), default=float("inf"))
    unknown += [f"{ln.label}: {ln.detail}" for ln in lines if ln.phase == "inference" and ln.usd is None]
    if work.evaluation.hosted and work.candidates:
        unknown.append("hosted evaluation jobs: Fireworks publishes no price for them, so they are not in the total")
    training = _sum([ln.usd for ln in lines if ln.phase == "training"])
    inference = _sum([ln.usd for ln in lines if ln.phase == "inference"])
    low_inference = _sum(low)
    total = None if training is None or inference is None else round(training + inference, 6)
    return CostEstimate(
        training_usd=training,
        inference_usd=inference,
        total_usd=total,
        # GPU-hour sources disagree: the total uses the newest list price, the low end each GPU's
        # lower published figure (the docs' calculator).
        low_usd=None
        if total is None or low_inference is None
        else round(((training or 0.0) + low_inference) * table.range.low, 6),
        high_usd=None if total is None else round(total * table.range.high, 6),
        prices_as_of=table.as_of,
        price_source=table.source,
        billed_tokens=billed,
        deployment_usd_per_hour=hourly if work.deploy and hourly != float("inf") else None,
        lines=lines,
        unknown=unknown,
    )


def _training_line(job: PlannedJob, table: PriceTable, found: Lookups) -> CostLine:
    """One job's tokens x epochs at its base's size band (usd None when the size is not known)."""
    tier = table.sft_tier(_params(found.model_info(job.base_model)))
    tokens = job.train_tokens * job.epochs
    name = "final run" if job.slot.is_final else f"candidate {job.slot.number}"
    if tier is None:
        return CostLine(phase="training", label=name, usd=None, detail=f"{tokens:,} tokens, band unknown")
    return CostLine(
        phase="training",
        label=name,
        usd=round(tokens / 1e6 * tier.usd, 6),
        detail=f"{job.train_tokens:,} tokens x {job.epochs} epochs at ${tier.usd:.2f}/1M ({tier.label})",
    )


def _serving_lines(work: Work, found: Lookups, prices: PriceTable) -> tuple[list[CostLine], list[float | None]]:
    """Deployment lines (usd None when unknown) and each line's low-end price."""
    lines: list[CostLine] = []
    low: list[float | None] = []
    shapes, addon_shapes = found.shapes, found.addon_shapes

    def add(label: str, shape: ShapeInfo | None, hours: float, copies: int, what: str) -> None:
        line, bottom = _serving_line(_Deployed(label, what, copies, hours), shape, prices, looked_up=shapes is not None)
        lines.append(line)
        low.append(bottom)

    def shape_of(base: str, table: Shapes | None) -> ShapeInfo | None:
        return table.get(base) if table is not None else None

    # The shipped model's base is chosen at the gate: price the dearest one.
    priciest = max(work.bases, key=lambda b: _hourly(shape_of(b, shapes), prices), default=None)
    eval_hours = prices.evaluation_deployment_hours
    n_examples = work.eval_examples
    if work.evaluation.kind is not EvalKind.LOSS and work.candidates:
        for base in work.bases:
            n = sum(1 for c in work.candidates if c.base_model == base)
            addon = shape_of(base, addon_shapes)
            if addon is not None:
                # The base answers from the same deployment (its own model string): no extra hours.
                what = (
                    f"candidate outputs ({n} adapters on one multi-LoRA deployment of {base}, {n_examples} examples each, "
                    "and the base model's own answers on it)"
                )
                add(f"evaluation outputs ({base})", addon, eval_hours, 1, what)
            else:
                what = f"candidate outputs ({n} short-lived live-merge deployments of {base}, {n_examples} examples each)"
                add(f"evaluation outputs ({base})", shape_of(base, shapes), eval_hours, n, what)
                what = f"the base model's answers to the same {n_examples} examples (one short-lived deployment)"
                add(f"base model outputs ({base})", shape_of(base, shapes), eval_hours, 1, what)
        if work.final is not None and not work.deploy and priciest is not None:
            add("evaluation outputs (final model)", shape_of(priciest, shapes), eval_hours, 1, "the final model's outputs")
    if work.deploy and priciest is not None:
        hours = prices.deployment_hours_in_estimate
        add(
            "deployment (first hour)",
            shape_of(priciest, shapes),
            hours,
            1,
            "a rate, billed per second while a replica is up, until deleted or scaled to zero",
        )
    return lines, low


class _Deployed(NamedTuple):
    """Deployments a plan line pays for: ``copies`` of them, up ``hours`` each."""

    label: str
    what: str
    copies: int
    hours: float


def _serving_line(
    item: _Deployed, shape: ShapeInfo | None, prices: PriceTable, *, looked_up: bool
) -> tuple[CostLine, float | None]:
    """One deployment line and its low-end price (None when the shape or its GPU's rate is unknown)."""
    label, what = item.label, item.what
    if shape is None:
        why = "no deployment shape" if looked_up else "deployment shape not looked up (it needs the Fireworks account)"
        return CostLine(phase="inference", label=label, usd=None, detail=f"{what}; {why}"), None
    rate = prices.gpu_rate(shape.accelerator)
    gpus = f"{shape.count} x {rate.label if rate else shape.accelerator}"
    if rate is None or rate.usd is None:
        detail = f"{what} on {gpus}: price unknown for this GPU type, not approved without a person"
        return CostLine(phase="inference", label=label, usd=None, detail=detail), None
    gpu_hours = item.copies * item.hours * shape.count
    source = prices.sources[rate.source].url if rate.source in prices.sources else None
    detail = (
        f"{what}: {item.copies} x ~{item.hours:g} h x {gpus} at ${rate.usd:.2f}/GPU-h "
        f"(shape {_shape_id(shape.name)}; {prices.gpu_hour_by_accelerator.as_of} price, {source or rate.source})"
    )
    line = CostLine(phase="inference", label=label, usd=round(gpu_hours * rate.usd, 6), detail=detail)
    return line, round(gpu_hours * (rate.usd_low if rate.usd_low is not None else rate.usd), 6)


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
    usd = prices.gpu_usd(shape.accelerator) if shape is not None else None
    return shape.count * usd if shape is not None and usd is not None else float("inf")


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
