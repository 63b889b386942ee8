"""Button, select and modal listeners: every decision goes through ``Runner.decide``.

Values carry the run id and plan version (or candidate / question number), so a click on
an old message — after a restart, or after a revision — is judged against the run as it is
now: the first decision on a gate wins, later ones get a polite ephemeral note.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers import blocks as b
from handlers import evaluation, replies
from handlers.modals import CALLBACK_ID, OTHER, modal_target, parse_revision, revise_modal
from handlers.mrkdwn import Message, decode
from handlers.surface import Surface
from pipeline.machine import Event, Phase
from pipeline.runner import RunNotFound
from pipeline.store import runs as q

log = logging.getLogger("sftbot.slack.actions")


def _who(body: dict[str, Any]) -> tuple[str, str | None]:
    u = body.get("user") or {}
    return str(u.get("id")), u.get("username") or u.get("name")


def _channel(body: dict[str, Any]) -> str | None:
    return (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id")


def _selected(body: dict[str, Any]) -> list[str]:
    action = (body.get("actions") or [{}])[0]
    return str((action.get("selected_option") or {}).get("value") or "").split("|", 2)


def register(app: AsyncApp, s: Surface) -> None:
    """Attach the interactive listeners to ``app``."""

    async def decide(body: dict[str, Any], respond: Any, run: str | None, event: Event, **kw: Any) -> bool:
        if not run:
            await _tell(respond, replies.problem_message("This button is missing its run; use `/sft status`."))
            return False
        if not await s.fresh(f"act:{body.get('trigger_id')}:{event.value}"):
            return False  # a retried delivery of a click we already handled
        user, name = _who(body)
        _, problem = await s.decide(run, event, user=user, name=name, channel=_channel(body), **kw)
        if problem is not None:
            await _tell(respond, problem)
            return False
        return True

    # Buttons that are one decision each: the button's value carries the run id and the
    # decision's argument (plan version, candidate); the table says which key is which.
    buttons: dict[str, tuple[Event, dict[str, str]]] = {
        b.APPROVE: (Event.APPROVE, {"plan_version": "v"}),
        b.CANCEL: (Event.CANCEL, {}),
        b.PROMOTE: (Event.PROMOTE, {"candidate": "c"}),
    }

    def decision_button(event: Event, fields: dict[str, str]) -> Any:
        async def on_click(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            v = decode(action.get("value"))
            await decide(body, s.responder(body), v.get("run"), event, **{k: v.get(key) for k, key in fields.items()})

        return on_click

    for action_id, (event, fields) in buttons.items():
        app.action(action_id)(decision_button(event, fields))

    @app.action(b.CHOOSE)
    async def on_choose(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        respond = s.responder(body)
        parts = _selected(body)
        idx = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        await decide(body, respond, parts[0], Event.PROMOTE, candidate=idx)

    async def answer(ack: Any, body: dict[str, Any], respond: Any, run_id: str | None, number: object, text: str) -> None:
        await ack()
        try:
            run = await s.runner.get(run_id or "")
        except RunNotFound:
            await _tell(respond, replies.problem_message("This run no longer exists."))
            return
        if run.question is None or run.question.number != number:
            # An old question's button must not answer the one asked since.
            first = next((g for g in await s.db.gate_decisions(run.id) if g.gate == f"input:{number}"), None)
            msg = (
                replies.already_decided_message(first, what="question")
                if first
                else replies.problem_message("This question is closed.")
            )
            await _tell(respond, msg)
            return
        if run.question.what in b.EVALUATION_QUESTIONS and text == "cancel":
            await decide(body, respond, run.id, Event.CANCEL)  # "Cancel run" on an evaluator question
            return
        if run.question.what == "evaluation" and text == "evaluator":
            # Not an answer yet: the answer is the file. Ask for it in the thread (once);
            # the file, or a reply naming one, answers through Runner.decide.
            if not await s.fresh(f"act:{body.get('trigger_id')}:evaluator_file"):
                return
            if not await evaluation.request_file(s, run, run.question):
                await _tell(
                    respond,
                    replies.note_message(
                        "I've asked for your evaluator in this run's thread: attach the `.py` file there "
                        "(or reply `evaluator: my_eval.py`), or pick another option."
                    ),
                )
            return
        await decide(body, respond, run.id, Event.ANSWER, answer=text)

    @app.action(b.ANSWER)
    async def on_answer(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        respond = s.responder(body)
        v = decode(action.get("value"))
        await answer(ack, body, respond, v.get("run"), v.get("q"), str(v.get("a") or ""))

    @app.action(b.ANSWER_SELECT)
    async def on_answer_select(ack: Any, body: dict[str, Any]) -> None:
        respond = s.responder(body)
        parts = _selected(body)
        number = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None
        await answer(ack, body, respond, parts[0], number, parts[2] if len(parts) > 2 else "")

    @app.action(b.CONFIRM_CANCEL)
    async def on_confirm_cancel(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        respond = s.responder(body)
        run_id = str(decode(action.get("value")).get("run") or "")
        if await decide(body, respond, run_id, Event.CANCEL):
            run = await s.runner.get(run_id)
            await respond(replace_original=True, text=f"🚫 Run #{run.number} cancelled; its active jobs were cancelled.")

    @app.action(b.KEEP)
    async def on_keep(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        respond = s.responder(body)
        await respond(replace_original=True, text="OK, the run keeps going.")

    @app.action(b.REVISE)
    async def on_revise(ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        respond = s.responder(body)
        v = decode(action.get("value"))
        try:
            run = await s.runner.get(v.get("run") or "")
        except RunNotFound:
            await _tell(respond, replies.problem_message("This run no longer exists."))
            return
        version = v.get("v") or run.plan_version
        problem = await _plan_closed(s, run, version)
        if problem is not None:
            await _tell(respond, problem)
            return
        plan = await q.get_plan(s.db, run.id, version)
        if plan is None:
            return
        try:
            await client.views_open(trigger_id=body["trigger_id"], view=revise_modal(run, plan))
        except SlackApiError as exc:
            # trigger ids live 3 s and work once; a retry or a slow start cannot open the modal.
            err = exc.response.get("error")
            await _tell(respond, replies.problem_message(f"Slack would not open the form ({err}); click Revise again."))

    @app.view(CALLBACK_ID)
    async def on_revise_submit(ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient) -> None:
        # Inline errors can only be given in the ack, so this validates first: local reads
        # and pure parsing only, milliseconds; the decision itself comes after the ack.
        run_id, version = modal_target(view)
        try:
            run = await s.runner.get(run_id or "")
        except RunNotFound:
            await ack(response_action="errors", errors={OTHER: "This run no longer exists."})
            return
        version = version or run.plan_version
        closed = await _plan_closed(s, run, version)
        plan = await q.get_plan(s.db, run.id, version)
        if closed is not None or plan is None:
            await ack(response_action="errors", errors={OTHER: closed.text if closed else "The plan is gone."})
            return
        spec, errors = parse_revision(run, plan, view.get("state", {}).get("values", {}))
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        user, name = _who(body)
        channel = await s.messages.channel(run.id)
        _, problem = await s.decide(run.id, Event.REVISE, user=user, name=name, channel=channel, plan_version=version, spec=spec)
        if problem is not None and channel is not None:
            thread = await s.messages.ref(run.id, "slack:root_ts")
            await client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread, **problem.kwargs())


async def _plan_closed(s: Surface, run: Any, version: int) -> Message | None:
    """Why plan ``version`` can no longer be revised, or None while it is open."""
    first = next((g for g in await s.db.gate_decisions(run.id) if g.gate == f"plan:v{version}"), None)
    if first is not None:
        return replies.already_decided_message(first, what="plan")
    if version < run.plan_version:
        return replies.problem_message(f"Plan v{version} was replaced by v{run.plan_version}; revise the newest plan.")
    if run.phase is not Phase.AWAITING_PLAN_APPROVAL:
        return replies.problem_message(f"Run #{run.number} is not waiting for plan approval (it is {run.phase.value}).")
    return None


async def _tell(respond: Any, msg: Message) -> None:
    """An ephemeral note to the person who clicked, where they clicked."""
    try:
        await respond(response_type="ephemeral", replace_original=False, **msg.kwargs())
    except Exception:  # response_url expired (30 min / 5 uses): nothing else reaches them
        log.warning("could not answer a click: %s", msg.text)
