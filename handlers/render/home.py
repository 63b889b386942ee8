"""The App Home tab: your runs, what is running for the team, how to start, who may approve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from handlers.render.mrkdwn import VIEW_BLOCKS_MAX, Block, context, divider, escape, fit, header, section, user
from handlers.render.replies import HELP_LINES, run_line
from pipeline.authz import Policy
from pipeline.planning.cost import money
from pipeline.store.records import RunRecord


def _who(ids: Sequence[str]) -> str:
    if not ids:
        return "anyone"
    return ", ".join(f"<!subteam^{i}>" if i.startswith("S") else user(i) for i in ids[:20])


def policy_lines(policy: Policy) -> list[str]:
    """The permission settings in force, as a person reads them (names the env variables)."""
    budget = money(policy.budget_usd) if policy.budget_usd is not None else "no limit"
    channels = ", ".join(f"<#{c}>" for c in policy.channels[:20]) if policy.channels else "any channel"
    return [
        f"• Approve plans and promote candidates (`SFTBOT_APPROVERS`): {_who(policy.approvers)}",
        f"• Admins (`SFTBOT_ADMINS`): {_who(policy.admins) if policy.admins else 'none'}",
        f"• Requesters may approve their own plans (`SFTBOT_ALLOW_SELF_APPROVAL`): {'yes' if policy.allow_self_approval else 'no'}",
        f"• Plans above (`SFTBOT_BUDGET_USD`) need an admin: {budget}",
        f"• Channels (`SFTBOT_CHANNELS`): {channels}",
    ]


def home_view(
    user_id: str, *, mine: Sequence[RunRecord], active: Sequence[RunRecord], policy: Policy, platform: str
) -> dict[str, Any]:
    """The Home tab view for ``views.publish`` (≤ 100 blocks)."""
    blocks: list[Block] = [
        header("sftbot — fine-tuning from Slack"),
        section(
            f"Hi {user(user_id)}. I inspect a dataset, propose a costed plan, sweep LoRA settings on "
            f"*{escape(platform)}*, and deploy the model a person promotes."
        ),
        divider(),
        section("*Your recent runs*"),
        *([section(run_line(r)) for r in mine[:10]] or [context("None yet. Start one with `/sft run`.")]),
        divider(),
        section("*Running now for the team*"),
        *([section(run_line(r)) for r in active[:10]] or [context("Nothing running.")]),
        divider(),
        section("*Commands*\n" + "\n".join(HELP_LINES)),
        section("*Who may do what*\n" + "\n".join(policy_lines(policy))),
    ]
    running = sum(1 for r in active if r.estimated_usd is not None)
    blocks.append(context(f"{len(active)} unfinished run(s); {running} with an estimate"))
    return {"type": "home", "blocks": fit(blocks, VIEW_BLOCKS_MAX, budget=200_000)}
