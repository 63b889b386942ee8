"""The message a run's thread ends with: the result first, then what it cost, what bills now
and how to stop it, and a call of at most six lines.

Posted after the report upload, so the last thing in the thread is the answer. The full
snippet (retries for a cold start, the system prompt) is in ``final_report.md``; here a
short ``curl`` that fits a phone. Code goes in a preformatted rich-text block; everything
else is short proportional text.
"""

from __future__ import annotations

import json
from typing import Any

from handlers.render import figures
from handlers.render.action_ids import TEARDOWN
from handlers.render.mrkdwn import (
    Block,
    Message,
    actions,
    button,
    clip,
    code,
    confirm,
    context,
    encode,
    escape,
    section,
    user,
)
from pipeline.domain import ids
from pipeline.domain.platform import DeploymentStatus
from pipeline.domain.provenance import Ref, ResourceKind, ResourceState
from pipeline.platforms.lifecycle import gpus
from pipeline.run.summary import RunSummary
from pipeline.run.timing import minutes

SNIPPET_MAX = 2900
SNIPPET_LINES = 6


def preformatted(body: str) -> Block:
    """Code as Slack shows code (monospace, its own scroll), never parsed as mrkdwn."""
    text = body if len(body) <= SNIPPET_MAX else body[: SNIPPET_MAX - 2] + "\n…"
    element: dict[str, Any] = {"type": "rich_text_preformatted", "elements": [{"type": "text", "text": text}]}
    return {"type": "rich_text", "elements": [element]}


def short_snippet(dep: DeploymentStatus, *, key_env: str | None) -> str:
    """One OpenAI-compatible chat call with curl, five lines (the report has the full program);
    ``key_env``: the variable the platform's clients keep their key in."""
    key = key_env or "API_KEY"
    model = json.dumps(dep.model_string)
    return "\n".join(
        [
            f"curl {dep.endpoint.rstrip('/')}/chat/completions \\",
            f'  -H "Authorization: Bearer ${key}" \\',
            '  -H "Content-Type: application/json" \\',
            f'  -d \'{{"model": {model},',
            '       "messages": [{"role": "user", "content": "Hello!"}]}\'',
        ]
    )


def _result(s: RunSummary) -> str:
    """ "score *0.910* on held-out prompts (base 0.400)" or "val loss 0.6821" ."""
    shipped = s.shipped
    if shipped is None:
        return "no model was trained"
    base = s.comparison.base if s.comparison is not None else None
    if shipped.score is not None:
        vs = f" (base {base.score:.3f})" if base is not None and base.score is not None else ""
        return f"score *{shipped.score:.3f}* on held-out prompts{vs}"
    if shipped.val_loss is not None:
        vs = f" (base {base.val_loss:.4f})" if base is not None and base.val_loss is not None else ""
        return f"validation loss *{shipped.val_loss:.4f}*{vs}"
    return "no held-out metric was reported"


def torn_down(s: RunSummary) -> bool:
    """The run's production deployment was deleted (by a teardown or the idle guard)."""
    dep_id = ids.deployment_id(s.run.id)
    production = Ref(kind=ResourceKind.DEPLOYMENT, id=dep_id)
    return any(r.ref == production and r.state is ResourceState.DELETED for r in s.resources)


def _billing(s: RunSummary) -> str:
    """What keeps costing money now, and how to stop it."""
    if torn_down(s):
        return "nothing: the deployment was torn down"
    dep = s.deployment
    if dep is None:
        return "nothing (no deployment)"
    if not s.run.billed:
        return "nothing: it runs on this machine"
    # The rate the bill charges for this deployment, the one every surface shows.
    rate = s.cost.deployment_usd_per_hour
    shape = s.plan.shapes.get(s.shipped.base_model) if s.plan is not None and s.shipped is not None else None
    on = f" on {gpus(shape)}" if shape is not None else ""
    return f"{figures.open_ended(rate)}{on}"


def _cost(s: RunSummary) -> str:
    if not s.run.billed:
        return "free (this machine)"
    c = s.cost
    return figures.cost_so_far(c.actual_usd, figures.actual_training(c.training_actual, c.training_est), c.deployments_usd)


def final_message(s: RunSummary) -> Message:
    """✅ to the requester: the result vs base, what it cost, what bills now and how to stop it, a short call."""
    run, dep = s.run, s.deployment
    took = minutes(max(0.0, run.updated_at - run.created_at))
    gone = torn_down(s)
    live = dep is not None and not gone
    state = "your model is live" if live else "your model is ready" + ("" if dep or gone else " (not deployed, as planned)")
    lines = [
        f"✅ {user(run.requester)}, *{state}* · {_result(s)}",
        f"💸 *Billing now:* {_billing(s)}",
        f"*Cost so far:* {_cost(s)} · took {took}",
    ]
    if (flag := figures.overrun_flag(s.cost.overrun)) is not None:
        lines.append(flag)
    if not live:
        lines.append(f"*Model:* {code(clip(s.model or '?', 300))}")
    blocks: list[Block] = [section("\n".join(lines))]
    if live and dep is not None:
        blocks.append(preformatted(short_snippet(dep, key_env=s.api_key_env)))
    notes = []
    if s.pruning:
        notes.append(f"✂️ {escape(s.pruning)}")
    if s.start_command and live:
        notes.append(f"Nothing answering? `{escape(s.start_command)}` starts the endpoint.")
    if (tracked := tracking_url(s)) is not None:
        notes.append(f"📈 <{tracked}|W&B run> of the shipped model's training.")
    notes.append("The full snippet and every number: `final_report.md`, just above.")
    if live and run.billed:
        notes.append(f"Or `/sft teardown {run.number}`.")
        blocks.append(actions(_delete_button(run.id), block_id=f"final|{run.id}"))
    blocks.append(context(*notes))
    plain = f"✅ SFT run #{run.number} is done: {escape(s.model or '')}"
    return Message(text=clip(plain, 3000), blocks=blocks)


def tracking_url(s: RunSummary) -> str | None:
    """The shipped model's W&B run, when its job logged to one (never the key: only the url is kept)."""
    job = s.shipped.job_id if s.shipped is not None else None
    for res in s.resources:
        url = res.details.get("tracking_url")
        if res.resource_id == job and isinstance(url, str) and url.startswith("https://") and not any(c in url for c in "<>|"):
            return url
    return None


def _delete_button(run_id: str) -> Block:
    return button(
        "Delete deployment",
        TEARDOWN,
        encode(run=run_id),
        style="danger",
        confirm_=confirm(
            "Delete this deployment?",
            "It stops billing at once and requests to it fail; the model stays and can be deployed again.",
            "Delete",
            "Keep it",
        ),
    )
