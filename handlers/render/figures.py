"""Every money figure Slack shows, one function per figure.

Each message takes its amounts from here, so when the figures come from one typed read
model (#20) only these functions change. Formatting itself is ``pipeline.domain.money``.
"""

from __future__ import annotations

from pipeline.domain.money import UNTIL_GONE, money, open_ended, rate
from pipeline.planning.cost import usd_per_hour
from pipeline.planning.plan_types import Plan
from pipeline.run.bill import OVERRUN_FLAG, Bill


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
    """A live deployment's rate, and what a day of it costs: "$8/h, up to $192.00/day"."""
    return f"{rate(usd_per_hour)}, up to {money(usd_per_hour * 24)}/day" if usd_per_hour else "rate unknown"


def bill_fact(bill: Bill | None, *, estimated: float | None = None) -> str | None:
    """The run's money in one phrase, in exact words: committed (jobs priced at submission) and
    spent (what ran) against what was approved: "≈ $0.24 committed, $0.05 spent of $21.28 approved"."""
    if bill is None or not bill.lines:
        return f"estimate {money(estimated)}" if estimated is not None else None
    warn = "⚠️ " if bill.warning else ""
    of = f" of {money(bill.approved_usd)} approved" if bill.approved_usd is not None else ""
    if round(bill.committed_usd, 2) == round(bill.spent_usd, 2):
        return f"{warn}≈ {money(bill.spent_usd)} spent{of}"
    return f"{warn}≈ {money(bill.committed_usd)} committed, {money(bill.spent_usd)} spent{of}"


def spent(bill: Bill) -> str:
    """An ended run's money: "≈ $0.02 was spent." """
    return f"≈ {money(bill.spent_usd)} was spent."


def overrun_flag(overrun: float | None) -> str | None:
    """ "⚠️ jobs cost 2.3× their estimate", from 1.5× on (None below it)."""
    if overrun is None or overrun < OVERRUN_FLAG:
        return None
    return f"⚠️ jobs cost {overrun:.1f}× their estimate (flagged from {OVERRUN_FLAG:g}×)"


def cost_so_far(spent: float | None, training: str, deployments: float) -> str:
    """A finished run: "≈ $0.45 spent: $0.09 training (est. $0.09), $0.36 deployments so far"."""
    head = f"≈ {money(spent)} spent: " if spent is not None else ""
    return head + training + (f", {money(deployments)} deployments so far" if deployments else "")


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
