"""The App Home: what waits for you first, then your runs and the team's, and a button that
starts a run without remembering the command.

"Waiting for you" asks the same authorization rules as the buttons do (``permission``), so
it lists exactly the gates this person could decide: plans they may approve, sweeps they
may promote, questions of their own runs. Each run links to its thread.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.commands import Command, parse_start
from handlers.render import action_ids, replies
from handlers.render.home_tab import home_view
from handlers.render.mrkdwn import Message
from handlers.render.start import START_CALLBACK, start_modal
from handlers.surface import Surface, run_started_text
from pipeline.domain.authz import member
from pipeline.domain.machine import Phase
from pipeline.domain.records import RunRecord
from pipeline.domain.slots import FINAL
from pipeline.run.decisions import Approve, Decision, Promote, permission
from pipeline.run.idle import live_deployments
from pipeline.store import runs

log = logging.getLogger("sftbot.slack.home")


async def waiting_for(s: Surface, user: str, runs: list[RunRecord]) -> list[RunRecord]:
    """The runs whose open gate this person can decide now."""
    actor = await s.directory.actor(user)
    out = []
    for run in runs:
        decision: Decision | None = None
        if run.phase is Phase.AWAITING_PLAN_APPROVAL:
            decision = Approve(plan_version=run.plan_version)
        elif run.phase is Phase.AWAITING_PROMOTION:
            decision = Promote(slot=FINAL)  # who may promote does not depend on which candidate
        elif run.phase is Phase.AWAITING_INPUT and run.requester == user:
            out.append(run)
            continue
        if decision is not None and await permission(s.runner, run, decision, actor, channel=run.channel) is None:
            out.append(run)
    return out


def register(app: AsyncApp, s: Surface) -> None:
    @app.event("app_home_opened")
    async def on_home(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") != "home":
            return
        user = event["user"]
        policy = s.runner.policy
        # With SFTBOT_CHANNELS set, the Home tab shows only runs of those channels (others may be private).
        channels = policy.channels or None
        actor = await s.directory.actor(user)
        # Only runs of channels this person is in (admins see all): run names carry data names.
        mine = (await s.visible(actor, await runs.list_runs(s.db, requester=user, channels=channels, limit=50)))[:10]
        active = (await s.visible(actor, await runs.list_runs(s.db, unfinished=True, channels=channels, limit=200)))[:30]
        waiting = await waiting_for(s, user, active)
        links = {r.id: link for r in [*waiting, *mine, *active] if (link := await s.messages.permalink(r.id))}
        view = home_view(
            user,
            waiting=waiting,
            mine=mine,
            active=active[:10],
            policy=policy,
            platform=s.runner.platform.name,
            admin=member(actor, policy.admins),
            links=links,
            deployments=[d for d in await live_deployments(s.db) if await s.sees(actor, d.run)],
        )
        await client.views_publish(user_id=user, view=view)

    @app.action(action_ids.START)
    async def on_start(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        try:
            await client.views_open(trigger_id=body["trigger_id"], view=start_modal(channels=s.runner.policy.channels))
        except SlackApiError as exc:  # trigger ids live 3 s: a slow start cannot open it
            log.warning("could not open the start form: %s", exc.response.get("error"))

    @app.view(START_CALLBACK)
    async def on_start_submit(ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient) -> None:
        # Pure parsing first, so problems show inline on their field; the run starts after the ack.
        instruction, channel, spec, errors = parse_start(view.get("state", {}).get("values", {}))
        if errors or spec is None:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        user = str((body.get("user") or {}).get("id"))

        async def reply(msg: Message) -> None:
            try:
                await client.chat_postEphemeral(channel=channel, user=user, **msg.kwargs())
            except SlackApiError as exc:  # the bot is not in that channel: say so in a DM
                err = exc.response.get("error")
                note = replies.problem_message(f"I can't post in <#{channel}> ({err}): invite me there with `/invite`.")
                await client.chat_postMessage(channel=user, **note.kwargs())

        cmd = Command(kind="run", instruction=instruction, spec=spec)
        run = await s.execute(cmd, user=user, name=None, channel=channel, reply=reply)
        if run is not None:
            await reply(replies.note_message(run_started_text(run)))
