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
