"""``/sft spend``: the team's spend in a window, in lines that read on a phone.

Totals first (and what still bills per hour, the surprise people ask about), then per
person, then one line per run. The figures come from the run ledgers (pipeline/planning/ledger.py),
the same ones the reports show.
"""

from __future__ import annotations

from handlers.render.mrkdwn import Message, chunked_sections, context, fit, section, user
from pipeline.domain.money import money, rate
from pipeline.run.spending import RunSpend, Spend

SHOWN_RUNS = 15


def _run_line(r: RunSpend) -> str:
    est = money(r.estimated_usd) if r.estimated_usd is not None else "no estimate"
    approved = f" · approved {money(r.approved_usd)}" if r.approved_usd is not None else ""
    live = f" · 💸 {rate(r.usd_per_hour)} now" if r.usd_per_hour else ""
    cost = f"{money(r.actual_usd)} spent of est {est}{approved}" if r.billed else "free (this machine)"
    return f"*#{r.number}* {user(r.requester)} · {r.phase.replace('_', ' ')} · {cost}{live}"


def spend_message(s: Spend, *, days: float) -> Message:
    head = f"*Spend, last {days:g} days:* {money(s.actual_usd)} over {len(s.runs)} run{'s' if len(s.runs) != 1 else ''}"
    if s.usd_per_hour:
        head += f"\n💸 Still billing: {rate(s.usd_per_hour)} (`/sft teardown <number>` stops a deployment)"
    blocks = [section(head)]
    if s.people:
        people = " · ".join(f"{user(t.key)} {money(t.actual_usd)}" for t in s.people[:8])
        blocks.append(context(f"By person: {people}"))
    if s.runs:
        blocks += chunked_sections([_run_line(r) for r in s.runs[:SHOWN_RUNS]])
    more = f" · {len(s.runs) - SHOWN_RUNS} more in `sftbot spend`" if len(s.runs) > SHOWN_RUNS else ""
    blocks.append(context(f"Actual: the platform's job figures and deployment GPU-hours so far{more} · `/sft spend 7d`"))
    return Message(text=f"Spend, last {days:g} days: {money(s.actual_usd)}", blocks=fit(blocks))
