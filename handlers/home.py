"""The App Home: what waits for you first, then your runs and the team's, and a button that
starts a run without remembering the command.

"Waiting for you" asks the same authorization rules as the buttons do (``permission``), so
it lists exactly the gates this person could decide — plans they may approve, sweeps they
may promote, budget gates, deploy blocks, questions of their own runs — each with the
buttons that decide it. Live deployments have Delete. Each run links to its thread.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.commands import Command, parse_start
from handlers.render import action_ids, board, budget_gate, plan_message, questions, replies
from handlers.render.home_tab import HomeLists, Waiting, home_view, with_note
from handlers.render.mrkdwn import Block, Message
from handlers.render.start import START_CALLBACK, start_modal
from handlers.surface import Surface, run_started_text
from pipeline.domain.authz import member
from pipeline.domain.machine import Phase
from pipeline.domain.records import RunRecord
from pipeline.domain.slots import FINAL, CandidateState
from pipeline.run.decisions import Answer, Approve, Decision, Promote, RaiseBudget, permission
from pipeline.run.idle import live_deployments
from pipeline.run.scoreboard import rank
from pipeline.store import runs

log = logging.getLogger("sftbot.slack.home")


async def _decision(s: Surface, run: RunRecord) -> tuple[Decision, str, list[Block]] | None:
    """The decision a run waits for, in words, with the buttons that make it (None: nothing to decide)."""
    q = run.question
    if run.phase is Phase.AWAITING_PLAN_APPROVAL:
        plan = await runs.get_plan(s.db, run.id, run.plan_version)
        buttons = [plan_message.approve_button(run, run.plan_version)]
        buttons += plan_message.detail_buttons(run, plan) if plan is not None else []
        return Approve(plan_version=run.plan_version), "approve or revise its plan", buttons
    if run.phase is Phase.AWAITING_PROMOTION:
        done = rank(c for c in await runs.candidates(s.db, run.id) if c.state is CandidateState.COMPLETED)
        plan = await runs.get_plan(s.db, run.id, run.plan_version) if run.plan_version else None
        buttons = [board.promote_button(run, done[0], plan, primary=True)] if done else []
        return Promote(slot=FINAL), "promote a candidate (the thread has the evidence)", buttons
    if run.phase is Phase.AWAITING_BUDGET and run.budget is not None:
        return (
            RaiseBudget(number=run.budget.number),
            "approve more money, or skip the step",
            budget_gate.decision_buttons(run, run.budget),
        )
    if run.phase is Phase.AWAITING_INPUT and q is not None and q.kind.blocks_deploy:
        return (
            Answer(questions.DEPLOY_ANYWAY, question=q.number),
            "deploy blocked: deploy anyway, or cancel",
            [questions.deploy_anyway(run, q)],
        )
    if run.phase is Phase.AWAITING_INPUT:
        return Answer("", question=q.number if q else None), "answer its question in the thread", []
    return None


async def waiting_for(s: Surface, user: str, runs_: list[RunRecord]) -> list[Waiting]:
    """Every open decision this person may make now, by the rules the buttons obey."""
    actor = await s.directory.actor(user)
    out = []
    for run in runs_:
        found = await _decision(s, run)
        if found is None:
            continue
        decision, what, buttons = found
        if run.phase is Phase.AWAITING_INPUT and not (run.question and run.question.kind.blocks_deploy):
            if run.requester == user:  # a question is asked of whoever asked for the run
                out.append(Waiting(run, what, buttons))
            continue
        if await permission(s.runner, run, decision, actor, channel=run.channel) is None:
            out.append(Waiting(run, what, buttons))
    return out


async def publish(s: Surface, user: str, client: AsyncWebClient, *, note: Message | None = None) -> None:
    """Build and publish ``user``'s Home tab (on opening it, and after a click made on it)."""
    policy = s.runner.policy
    # With SFTBOT_CHANNELS set, the Home tab shows only runs of those channels (others may be private).
    channels = policy.channels or None
    actor = await s.directory.actor(user)
    # Only runs of channels this person is in (admins see all): run names carry data names.
    mine = (await s.visible(actor, await runs.list_runs(s.db, requester=user, channels=channels, limit=50)))[:10]
    active = (await s.visible(actor, await runs.list_runs(s.db, unfinished=True, channels=channels, limit=200)))[:30]
    waiting = await waiting_for(s, user, active)
    links = {r.id: link for r in [*(w.run for w in waiting), *mine, *active] if (link := await s.messages.permalink(r.id))}
    lists = HomeLists(
        mine=mine,
        active=active[:10],
        waiting=waiting,
        deployments=[d for d in await live_deployments(s.db) if await s.sees(actor, d.run)],
        links=links,
    )
    view = home_view(user, lists, policy=policy, platform=s.runner.platform.facts.name, admin=member(actor, policy.admins))
    await client.views_publish(user_id=user, view=with_note(view, note.text) if note is not None else view)


def register(app: AsyncApp, s: Surface) -> None:
    @app.event("app_home_opened")
    async def on_home(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") != "home":
            return
        await publish(s, event["user"], client)

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
