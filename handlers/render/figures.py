"""Every money figure Slack shows, one function per figure.

Each message takes its amounts from here, so when the figures come from one typed read
model (#20) only these functions change. Formatting itself is ``pipeline.domain.money``.
"""

from __future__ import annotations

from pipeline.domain.money import UNTIL_GONE, money, open_ended, rate
from pipeline.planning.cost import usd_per_hour
from pipeline.planning.plan_types import Plan


def estimate(usd: float | None) -> str:
    """A plan's or a step's estimate: "≈ $5.30"."""
    return f"≈ {money(usd)}"


def small_estimate(usd: float | None) -> str:
    """An estimate that may round to nothing: "under $0.01" rather than "≈ <$0.01"."""
    return "under $0.01" if usd is not None and usd < 0.005 else estimate(usd)


def per_hour(usd: float | None) -> str:
    """What a deployment bills while a replica is up: "$4.00/hour"."""
    return f"{money(usd)}/hour" if usd else "by the hour"


def until_gone() -> str:
    """The words that say a deployment's price is open-ended (after the rates it depends on)."""
    return open_ended(None).removeprefix(rate(None) + " ")


def per_day(usd_per_hour: float | None) -> str:
    return f"up to {money(usd_per_hour * 24)}/day" if usd_per_hour else "rate unknown"


def spent_of(spent: float | None, approved: float | None, *, warn: bool = False) -> str | None:
    """What was spent against what was approved: "≈ $0.24 of $5.30 approved" (⚠️ near the cap)."""
    if spent is None:
        return None
    if approved is not None:
        return f"{'⚠️ ' if warn else ''}≈ {money(spent)} of {money(approved)} approved"
    return f"≈ {money(spent)} so far"


def price_range(plan: Plan) -> str:
    """The plan's range: "$15.03–$40.20"."""
    return f"{money(plan.cost.low_usd)}–{money(plan.cost.high_usd)}"


def training(plan: Plan) -> str:
    return money(plan.cost.training_usd) if plan.billed else "free (this machine)"


def evaluation(plan: Plan) -> str:
    """The short-lived deployments that produce evaluation outputs, a line of the total."""
    return money(plan.cost.evaluation_usd)


def deployment_rate(plan: Plan, base_model: str) -> float | None:
    """What deploying ``base_model`` bills per hour: its own shape's price (the plan's headline
    figure is the dearest of its base models)."""
    own = usd_per_hour(plan.shapes.get(base_model))
    return own if own is not None else plan.cost.deployment_usd_per_hour


def final_run(plan: Plan) -> float | None:
    """The plan's price of the final run (None: no final run, or unknown)."""
    line = next((ln for ln in plan.cost.lines if ln.label == "final run"), None)
    return line.usd if plan.final is not None and line is not None else None


def actual_training(actual: float | None, estimated: float | None) -> str:
    """A finished run's training cost: "$0.25 training (est. $0.28)"."""
    got = f"{money(actual)} training" if actual is not None else "training cost not reported yet"
    return got + (f" (est. {money(estimated)})" if estimated is not None else "")


__all__ = ["UNTIL_GONE", "money", "open_ended", "rate"]
