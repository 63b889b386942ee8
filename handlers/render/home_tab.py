"""The App Home tab: what waits for you, a button to start a run, your runs, the team's runs,
and who may decide — in people's names; the settings' variable names only for admins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from handlers.render import figures
from handlers.render.action_ids import START, TEARDOWN
from handlers.render.mrkdwn import (
    VIEW_BLOCKS_MAX,
    Block,
    actions,
    button,
    code,
    confirm,
    context,
    divider,
    encode,
    fit,
    header,
    section,
    user,
)
from handlers.render.people import either, mention
from handlers.render.replies import HELP_LINES, run_line
from pipeline.domain.authz import Policy
from pipeline.domain.money import money
from pipeline.domain.records import RunRecord
from pipeline.run.idle import Live, total_usd_per_hour


@dataclass(frozen=True)
class Waiting:
    """An open decision this person may make, with its buttons (the thread's own)."""

    run: RunRecord
    what: str  # "approve or revise its plan", "deploy anyway or cancel"
    buttons: list[Block] = field(default_factory=list)


def _who(ids: Sequence[str]) -> str:
    return either([mention(i) for i in ids]) if ids else "anyone"


def _waiting_blocks(w: Waiting, link: str | None) -> list[Block]:
    out = [section(f"{run_line(w.run, link)}\n👉 {w.what}")]
    if w.buttons:
        out.append(actions(*w.buttons, block_id=f"home|{w.run.id}"))
    return out


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
    hourly = total_usd_per_hour(deps)
    return "*Live deployments*" + (f" · {figures.per_day(hourly)} in all" if hourly else "")


def _deployment_line(d: Live, link: str | None) -> str:
    rate = figures.per_day(d.usd_per_hour) if d.usd_per_hour else "free (this machine)" if not d.run.billed else "rate unknown"
    run = f"<{link}|run #{d.run.number}>" if link else f"run #{d.run.number}"
    return f"{code(d.deployment.resource_id)} · {run} by {user(d.run.requester)} · {rate}"


def _deployment_block(d: Live, link: str | None) -> Block:
    """One live deployment with Delete (Slack's confirm dialog first; the same rules as /sft teardown)."""
    delete = button(
        "Delete",
        TEARDOWN,
        encode(run=d.run.id),
        style="danger",
        confirm_=confirm(
            "Delete this deployment?",
            f"Run #{d.run.number}'s deployment stops billing at once; the model stays and can be deployed again.",
            "Delete",
            "Keep it",
        ),
    )
    return section(_deployment_line(d, link), accessory=delete)


@dataclass(frozen=True)
class HomeLists:
    """What the Home tab lists for one person, and the thread link of each run it names."""

    mine: Sequence[RunRecord]
    active: Sequence[RunRecord]
    waiting: Sequence[Waiting] = ()
    deployments: Sequence[Live] = ()
    links: dict[str, str] = field(default_factory=dict)


def home_view(user_id: str, lists: HomeLists, *, policy: Policy, platform: str, admin: bool = False) -> dict[str, Any]:
    """The Home tab view for ``views.publish`` (≤ 100 blocks)."""
    waiting, mine, active, deployments, links = lists.waiting, lists.mine, lists.active, lists.deployments, lists.links
    blocks: list[Block] = [
        header("sftbot — fine-tuning from Slack"),
        section(
            f"Hi {user(user_id)}. I inspect a dataset, propose a costed plan, sweep LoRA settings on "
            f"*{platform}*, and deploy the model a person promotes."
        ),
        actions(button("Start a run", START, "{}", style="primary"), block_id="home_start"),
        divider(),
        section("*Waiting for you*"),
        *([b for w in waiting[:10] for b in _waiting_blocks(w, links.get(w.run.id))] or [context("Nothing waits for you.")]),
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
        *([_deployment_block(d, links.get(d.run.id)) for d in deployments[:10]] or [context("No deployment is up.")]),
        divider(),
        section("*Commands*\n" + "\n".join(HELP_LINES)),
        section("*Who may do what*\n" + "\n".join(policy_lines(policy, admin=admin))),
    ]
    return {"type": "home", "blocks": fit(blocks, VIEW_BLOCKS_MAX, budget=200_000)}


def with_note(view: dict[str, Any], note: str) -> dict[str, Any]:
    """The view with the answer to a click made on it, under the Start button (Home has no ephemerals)."""
    blocks = [*view["blocks"][:3], context(note), *view["blocks"][3:]]
    return {**view, "blocks": fit(blocks, VIEW_BLOCKS_MAX, budget=200_000)}
