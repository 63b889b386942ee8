"""How an amount of money is written, everywhere: Slack, the terminal, reports and templates.

A leaf of the domain so the one Jinja environment (``templates``) and every surface format
money the same way without importing the planner.
"""

from __future__ import annotations


def money(usd: float | None) -> str:
    """Format like the cookbook's estimator: cents below $100, whole dollars above, <$0.01."""
    if usd is None:
        return "unknown"
    if 0 < usd < 0.01:
        return "<$0.01"
    if usd >= 100:
        return f"${usd:,.0f}"
    return f"${usd:,.2f}"


UNTIL_GONE = "until deleted or scaled to zero"


def rate(usd_per_hour: float | None) -> str:
    """A deployment's price, which is a rate: "$8/h" ("$8.50/h"); "rate unknown" without one."""
    if usd_per_hour is None:
        return "rate unknown"
    whole = round(usd_per_hour, 2) == round(usd_per_hour)
    return f"${usd_per_hour:,.0f}/h" if whole else f"${usd_per_hour:,.2f}/h"


def open_ended(usd_per_hour: float | None, *, first_hours: float = 1.0, idle_hours: float = 24.0) -> str:
    """What a deployment costs, said as the open-ended rate it is (the plan, the budget gate and
    the final message use these words): "$8/h until deleted or scaled to zero (first hour in this
    estimate; the idle guard asks after 24 h)"."""
    first = "first hour" if first_hours == 1 else f"first {first_hours:g} h"
    return f"{rate(usd_per_hour)} {UNTIL_GONE} ({first} in this estimate; the idle guard asks after {idle_hours:g} h)"
