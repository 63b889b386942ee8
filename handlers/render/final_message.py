"""The message a run's thread ends with: the model, how to call it, what it cost, what keeps billing.

Posted after the report and chart uploads, so the last thing in the thread is the answer.
The snippet is code and goes in a preformatted rich-text block; everything else is short
proportional text that reads at 480 px.
"""

from __future__ import annotations

from typing import Any

from handlers.render.mrkdwn import Block, Message, clip, code, context, escape, fields, section, user
from pipeline.domain.money import money
from pipeline.platforms.lifecycle import gpus
from pipeline.run.summary import RunSummary
from pipeline.run.timing import minutes

SNIPPET_MAX = 2900


def preformatted(body: str) -> Block:
    """Code as Slack shows code (monospace, its own scroll), never parsed as mrkdwn."""
    text = body if len(body) <= SNIPPET_MAX else body[: SNIPPET_MAX - 2] + "\n…"
    element: dict[str, Any] = {"type": "rich_text_preformatted", "elements": [{"type": "text", "text": text}]}
    return {"type": "rich_text", "elements": [element]}


def _cost(s: RunSummary) -> str:
    c = s.cost
    if s.run.platform == "local":
        return "free (this machine)"
    actual = f"training {money(c.training_actual)}" if c.training_actual is not None else "training cost not reported yet"
    est = f" (estimated {money(c.training_est)})" if c.training_est is not None else ""
    return actual + est


def _billing(s: RunSummary, teardown: str | None) -> str | None:
    """What keeps costing money after the run, and how to stop it."""
    dep = s.deployment
    if dep is None or s.run.platform == "local":
        return None
    rate = s.plan.cost.deployment_usd_per_hour if s.plan is not None else None
    per_hour = f"{money(rate)}/hour" if rate else "by the hour"
    shape = s.plan.shapes.get(s.shipped.base_model) if s.plan is not None and s.shipped is not None else None
    on = f" on {gpus(shape)}" if shape is not None else ""
    stop = teardown or f"`/sft teardown {s.run.number}`"
    return (
        f"💸 *Keeps billing:* deployment {code(dep.deployment_id)}{on} costs {per_hour} while a replica is up; "
        f"it scales to zero when idle (the first call after that waits for a cold start). Stop it: {stop}"
    )


def final_message(s: RunSummary, *, teardown: str | None = None) -> Message:
    """✅ to the requester: the model and its endpoint, held-out result, cost, the snippet."""
    run, dep = s.run, s.deployment
    took = minutes(max(0.0, run.updated_at - run.created_at))
    what = f"{code(s.model or '?')} is deployed." if dep else f"{code(s.model or '?')} is ready (not deployed, as planned)."
    result = escape(clip(s.evaluation, 400)).removeprefix("Final model: ")
    blocks: list[Block] = [section(f"✅ *SFT run #{run.number} is done*, {user(run.requester)} ({took}): {what}")]
    if dep is not None:  # long ids: full-width lines (a field column would break them every few characters)
        blocks.append(
            section(f"*Model string* {code(clip(dep.model_string, 600))}\n*Endpoint* {escape(clip(dep.endpoint, 300))}")
        )
    blocks.append(fields(("Held-out result", result), ("Cost", _cost(s))))
    if s.pruning:
        blocks.append(context(f"✂️ {escape(s.pruning)}"))
    billing = _billing(s, teardown)
    if billing:
        blocks.append(section(billing))
    if s.snippet:
        blocks += [section("*Use it:*"), preformatted(s.snippet)]
    blocks.append(context("The full report (`final_report.md`) is attached just above."))
    return Message(text=clip(f"✅ SFT run #{run.number} is done: {escape(s.model or '')}", 3000), blocks=blocks)
