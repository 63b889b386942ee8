"""Estimates that learn: how far recent actual costs landed from their estimates.

Each finished run leaves one row per phase (training, deployment): what the plan estimated
and what it actually cost, with the platform and the base model's size band. The next plan
for the same platform and band reads the last few ratios (actual / estimate) and narrows its
range to what they showed, never below a floor (a run can always surprise) and never wider
than the default. The plan and the report say how the range was made.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from pipeline.domain.catalog import BaseModelInfo, price_table
from pipeline.planning.plan_types import CostEstimate

MIN_RUNS = 3  # fewer than this is an anecdote, not a range
RECENT = 10  # the last runs of this kind; older ones describe another price list
MARGIN = 0.05  # around the observed ratios
FLOOR = 0.10  # the range is never narrower than ±10% around its middle


class Outcome(BaseModel):
    """One finished run's estimate and actual for one phase."""

    platform: str
    band: str  # the size band's label, e.g. "up to 16B"
    phase: str  # "training" | "deployment"
    estimated_usd: float
    actual_usd: float
    at: float

    @property
    def ratio(self) -> float:
        return self.actual_usd / self.estimated_usd


class Calibration(BaseModel):
    """The factors to apply to an estimate, and the sentence that says why."""

    low: float
    high: float
    runs: int
    basis: str


def calibrate(history: Sequence[Outcome], *, default_low: float, default_high: float) -> Calibration:
    """The range factors from recent outcomes of one platform/band/phase (newest last)."""
    usable = [h for h in history if h.estimated_usd > 0][-RECENT:]
    if len(usable) < MIN_RUNS:
        return Calibration(
            low=default_low,
            high=default_high,
            runs=len(usable),
            basis=f"default range ({default_low:g}–{default_high:g}× the estimate): "
            f"{len(usable)} finished run(s) of this size so far, {MIN_RUNS} needed to learn from",
        )
    ratios = [h.ratio for h in usable]
    low, high = min(ratios) - MARGIN, max(ratios) + MARGIN
    middle = (low + high) / 2
    low, high = min(low, middle * (1 - FLOOR)), max(high, middle * (1 + FLOOR))
    # Inside the default range it can only narrow; outside it (actuals at 3x) it follows reality.
    if min(ratios) >= default_low:
        low = max(low, default_low)
    if max(ratios) <= default_high:
        high = min(high, default_high)
    basis = (
        f"recent runs of this size: actual was {min(ratios):.2f}–{max(ratios):.2f}× the estimate "
        f"({len(usable)} run(s)); range set to {low:.2f}–{high:.2f}×"
    )
    return Calibration(low=round(low, 4), high=round(high, 4), runs=len(usable), basis=basis)


def band(info: BaseModelInfo | None) -> str:
    """The size band a base model is priced in ("up to 16B"), the unit estimates learn by."""
    tier = price_table().sft_tier(info.params_b if info is not None else None)
    return tier.label if tier is not None else "size unknown"


def calibrated(cost: CostEstimate, cal: Calibration, *, default_low: float, default_high: float) -> CostEstimate:
    """The estimate with its training range made from ``cal`` (the deployment part keeps the
    default range: GPU-hours are not learned yet), and the sentence that says how."""
    if cost.total_usd is None or cost.training_usd is None or cost.low_usd is None or cost.high_usd is None:
        return cost
    training = cost.training_usd
    rest_low = cost.low_usd - training * default_low
    rest_high = cost.high_usd - training * default_high
    return cost.model_copy(
        update={
            "low_usd": round(training * cal.low + rest_low, 6),
            "high_usd": round(training * cal.high + rest_high, 6),
            "calibration": cal.basis,
        }
    )
