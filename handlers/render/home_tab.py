"""The App Home tab: what waits for you, a button to start a run, your runs, the team's runs,
and who may decide — in people's names; the settings' variable names only for admins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from handlers.render.action_ids import START
from handlers.render.mrkdwn import (
    VIEW_BLOCKS_MAX,
    Block,
    actions,
    button,
    code,
    context,
    divider,
    fit,
    header,
    section,
    user,
)
from handlers.render.people import either
from handlers.render.replies import HELP_LINES, run_line
from pipeline.domain.authz import Policy
from pipeline.domain.machine import Phase
from pipeline.domain.money import money
from pipeline.domain.records import RunRecord
from pipeline.run.idle import Live

_ASK = {
    Phase.AWAITING_PLAN_APPROVAL: "approve or revise its plan",
    Phase.AWAITING_PROMOTION: "promote a candidate",
    Phase.AWAITING_INPUT: "answer its question",
}


def _who(ids: Sequence[str]) -> str:
    return either(list(ids)) if ids else "anyone"


def policy_lines(policy: Policy, *, admin: bool) -> list[str]:
    """The permission settings in force, as a person reads them (variable names for admins)."""

    def var(name: str) -> str:
        return f" (`{name}`)" if admin else ""

    budget = money(policy.budget_usd) if policy.budget_usd is not None else None
    channels = ", ".join(f"<#{c}>" for c in policy.channels[:20]) if policy.channels else "any channel I'm in"
    return [
        f"• Approve plans and promote candidates{var('SFTBOT_APPROVERS')}: {_who(policy.approvers)}",
        f"• Admins{var('SFTBOT_ADMINS')}: {_who(policy.admins) if policy.admins else 'none'}",
        f"• Whoever wrote a plan may approve it too{var('SFTBOT_ALLOW_SELF_APPROVAL')}: "
        + ("yes" if policy.allow_self_approval else "no, someone else approves"),
        f"• Plans above {budget} need an admin{var('SFTBOT_BUDGET_USD')}"
        if budget
        else f"• No budget limit{var('SFTBOT_BUDGET_USD')}",
        f"• Runs happen in{var('SFTBOT_CHANNELS')}: {channels}",
    ]


def _deployments_head(deps: Sequence[Live]) -> str:
    per_day = sum((d.usd_per_hour or 0.0) * 24 for d in deps)
    return "*Live deployments*" + (f" · up to {money(per_day)}/day in all" if per_day else "")


def _deployment_line(d: Live, link: str | None) -> str:
    rate = (
        f"up to {money(d.usd_per_hour * 24)}/day"
        if d.usd_per_hour
        else "free (this machine)"
        if d.run.platform == "local"
        else "rate unknown"
    )
    run = f"<{link}|run #{d.run.number}>" if link else f"run #{d.run.number}"
    return f"{code(d.deployment.resource_id)} · {run} by {user(d.run.requester)} · {rate} · `/sft teardown {d.run.number}`"


def home_view(
    user_id: str,
    *,
    waiting: Sequence[RunRecord] = (),
    mine: Sequence[RunRecord],
    active: Sequence[RunRecord],
    policy: Policy,
    platform: str,
    admin: bool = False,
    links: dict[str, str] | None = None,
    deployments: Sequence[Live] = (),
) -> dict[str, Any]:
    """The Home tab view for ``views.publish`` (≤ 100 blocks)."""
    links = links or {}
    blocks: list[Block] = [
        header("sftbot — fine-tuning from Slack"),
        section(
            f"Hi {user(user_id)}. I inspect a dataset, propose a costed plan, sweep LoRA settings on "
            f"*{platform}*, and deploy the model a person promotes."
        ),
        actions(button("Start a run", START, "{}", style="primary"), block_id="home_start"),
        divider(),
        section("*Waiting for you*"),
        *(
            [section(f"{run_line(r, links.get(r.id))}\n👉 {_ASK.get(r.phase, 'decide')}") for r in waiting[:10]]
            or [context("Nothing waits for you.")]
        ),
        divider(),
        section("*Your recent runs*"),
        *(
            [section(run_line(r, links.get(r.id))) for r in mine[:10]]
            or [context("None yet. Start one above or with `/sft run`.")]
        ),
        divider(),
        section("*Running now for the team*"),
        *([section(run_line(r, links.get(r.id))) for r in active[:10]] or [context("Nothing running.")]),
        divider(),
        section(_deployments_head(deployments)),
        *([section(_deployment_line(d, links.get(d.run.id))) for d in deployments[:10]] or [context("No deployment is up.")]),
        divider(),
        section("*Commands*\n" + "\n".join(HELP_LINES)),
        section("*Who may do what*\n" + "\n".join(policy_lines(policy, admin=admin))),
    ]
    return {"type": "home", "blocks": fit(blocks, VIEW_BLOCKS_MAX, budget=200_000)}
