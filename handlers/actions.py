"""Button, select and modal listeners: every decision is a call to ``Surface.decide``.

Values carry the run id and plan version (or candidate / question number), so a click on
an old message — after a restart, or after a revision — is judged against the run as it is
now: the first decision on a gate wins, later ones get a polite ephemeral note.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers import home, intake
from handlers.commands import CommandError, parse_slash
from handlers.details import DETAIL_ACTIONS, view_for
from handlers.messages import ROOT
from handlers.render import action_ids, replies
from handlers.render.modals import CALLBACK_ID, OTHER, modal_target, parse_revision, revise_modal
from handlers.render.mrkdwn import Message, decode
from handlers.surface import Surface, refusal_message
from pipeline.domain.authz import Action, authorize
from pipeline.domain.gates import Question, QuestionKind
from pipeline.domain.records import RunRecord
from pipeline.domain.slots import Slot
from pipeline.domain.spec import SpecError
from pipeline.run.decisions import (
    Answer,
    Approve,
    Cancel,
    Decision,
    Promote,
    RaiseBudget,
    Refusal,
    Revise,
    SkipStep,
    check_open,
)
from pipeline.run.runner import RunNotFound
from pipeline.store import runs

log = logging.getLogger("sftbot.slack.actions")

# What a deployment click does: (run id, user id, user name, the click's body) -> the reply.
InPlace = Callable[[str, str, str | None, dict[str, Any]], Awaitable[Message]]


def _who(body: dict[str, Any]) -> tuple[str, str | None]:
    u = body.get("user") or {}
    return str(u.get("id")), u.get("username") or u.get("name")


def _channel(body: dict[str, Any]) -> str | None:
    return (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id")


def _from_home(body: dict[str, Any]) -> bool:
    return (body.get("container") or {}).get("type") == "view" or (body.get("view") or {}).get("type") == "home"


def _selected(body: dict[str, Any]) -> list[str]:
    action = (body.get("actions") or [{}])[0]
    return str((action.get("selected_option") or {}).get("value") or "").split("|", 2)


def _int(value: object) -> int | None:
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() and len(text) <= 6 else None


def _slot(value: object) -> Slot | None:
    try:
        return Slot.parse(value)
    except ValueError:
        return None


def _promote(v: dict[str, Any]) -> Decision | None:
    slot = _slot(v.get("c"))
    return Promote(slot) if slot else None


# Button action id -> the decision its value makes, and the key a retried delivery is known by.
BUTTONS: dict[str, tuple[Callable[[dict[str, Any]], Decision | None], str]] = {
    action_ids.APPROVE: (lambda v: Approve(plan_version=_int(v.get("v"))), "approve"),
    action_ids.CANCEL: (lambda v: Cancel(), "cancel"),
    action_ids.PROMOTE: (_promote, "promote"),
    action_ids.BUDGET_RAISE: (lambda v: RaiseBudget(number=_int(v.get("b"))), "budget"),
    action_ids.BUDGET_SKIP: (lambda v: SkipStep(number=_int(v.get("b"))), "budget"),
}


def register(app: AsyncApp, s: Surface) -> None:
    """Attach the interactive listeners to ``app``, one small function per listener group."""
    _register_decisions(app, s)
    _register_answers(app, s)
    _register_confirmations(app, s)
    _register_deployment_clicks(app, s)
    register_evidence(app, s)
    _register_revise(app, s)


async def _decide(s: Surface, body: dict[str, Any], respond: Any, run: str | None, decision: Decision | None, key: str) -> bool:
    """One click's decision through ``Surface.decide``, once per click; True when it was taken."""
    if not run or decision is None:
        await _tell(respond, replies.problem_message("This button is missing its run; use `/sft status`."))
        return False
    if not await s.fresh(f"act:{body.get('trigger_id')}:{key}"):
        return False  # a retried delivery of a click we already handled
    user, name = _who(body)
    channel = await s.judged_in(run, _channel(body))
    _, problem = await s.decide(run, decision, user=user, name=name, channel=channel)
    return await _answered(s, body, respond, problem)


def _register_decisions(app: AsyncApp, s: Surface) -> None:
    """The decision buttons (Approve, Cancel, Promote, the budget's two) and the candidate select."""

    def on_button(make: Callable[[dict[str, Any]], Decision | None], key: str) -> Callable[..., Awaitable[None]]:
        """A decision button: its value names the run and what it decides (a version, a candidate, a request)."""

        async def listener(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            v = decode(action.get("value"))
            await _decide(s, body, s.responder(body), v.get("run"), make(v), key)

        return listener

    for action_id, (make, key) in BUTTONS.items():
        app.action(action_id)(on_button(make, key))

    @app.action(action_ids.CHOOSE)
    async def on_choose(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        parts = _selected(body)
        slot = _slot(parts[1]) if len(parts) > 1 else None
        await _decide(s, body, s.responder(body), parts[0], Promote(slot) if slot else None, "promote")


async def _answer(s: Surface, body: dict[str, Any], run_id: str | None, number: int | None, text: str) -> None:
    """A question's answer; on an evaluator question "cancel" cancels and "evaluator" asks for the file."""
    respond = s.responder(body)
    try:
        run = await s.runner.get(run_id or "")
    except RunNotFound:
        await _tell(respond, replies.problem_message("This run no longer exists."))
        return
    question = run.question
    if question is not None and question.number == number and question.kind.about_evaluation:
        if text == "cancel":  # "Cancel run" on an evaluator question
            await _decide(s, body, respond, run.id, Cancel(), "cancel")
            return
        if question.kind is QuestionKind.EVALUATION and text == "evaluator":
            await _ask_for_file(s, body, respond, run, question)
            return
    await _decide(s, body, respond, run.id, Answer(text, question=number), "answer")


def _register_answers(app: AsyncApp, s: Surface) -> None:
    """A question's answer buttons and its select menu."""

    @app.action(action_ids.ANSWER)
    async def on_answer(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        v = decode(action.get("value"))
        await _answer(s, body, v.get("run"), _int(v.get("q")), str(v.get("a") or ""))

    @app.action(action_ids.ANSWER_SELECT)
    async def on_answer_select(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        parts = _selected(body)
        number = _int(parts[1]) if len(parts) > 2 else None
        await _answer(s, body, parts[0], number, parts[2] if len(parts) > 2 else "")


def _register_confirmations(app: AsyncApp, s: Surface) -> None:
    """The "are you sure?" prompts: confirm a cancel, or keep the run / the deployment."""

    @app.action(action_ids.CONFIRM_CANCEL)
    async def on_confirm_cancel(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        respond = s.responder(body)
        run_id = str(decode(action.get("value")).get("run") or "")
        if await _decide(s, body, respond, run_id, Cancel(), "cancel"):
            run = await s.runner.get(run_id)
            await respond(replace_original=True, text=f"🚫 Run #{run.number} cancelled; its active jobs were cancelled.")

    @app.action(action_ids.KEEP)
    async def on_keep(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        await s.responder(body)(replace_original=True, text="OK, the run keeps going.")

    @app.action(action_ids.KEEP_DEPLOYMENT)
    async def on_keep_deployment(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        await s.responder(body)(
            replace_original=True, text="OK, the deployment stays up (and keeps billing while a replica is up)."
        )


def _register_deployment_clicks(app: AsyncApp, s: Surface) -> None:
    """Clicks on a run's deployment (teardown confirm, the idle DM's choices): acted on once
    per click, for the run named in the button's value, and answered by replacing the message."""

    def in_place(tag: str, act: InPlace) -> Callable[..., Awaitable[None]]:
        async def listener(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            if not await s.fresh(f"act:{body.get('trigger_id')}:{tag}"):
                return  # a retried delivery of a click we already handled
            user, name = _who(body)
            run_id = str(decode(action.get("value")).get("run") or "")
            msg = await act(run_id, user, name, body)
            await s.responder(body)(replace_original=True, **msg.kwargs())

        return listener

    app.action(action_ids.CONFIRM_TEARDOWN)(
        in_place("teardown", lambda run, user, name, body: s.teardown(run, user=user, name=name, channel=_channel(body)))
    )

    def idle(choice: str) -> InPlace:
        """Keep / Scale to zero / Delete in the idle-deployment DM."""
        return lambda run, user, name, _: s.idle_choice(choice, run, user=user, name=name)

    for action_id, choice in (
        (action_ids.IDLE_KEEP, "keep"),
        (action_ids.IDLE_SCALE, "scale"),
        (action_ids.IDLE_DELETE, "delete"),
    ):
        app.action(action_id)(in_place("idle", idle(choice)))


def _register_revise(app: AsyncApp, s: Surface) -> None:
    """Revise: the button opens the plan's form, and the form's submission is the decision."""

    @app.action(action_ids.REVISE)
    async def on_revise(ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await open_revise(s, body, action, client)

    @app.view(CALLBACK_ID)
    async def on_revise_submit(ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient) -> None:
        await submit_revision(s, ack, body, view, client)


async def open_revise(s: Surface, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
    """The Revise form for the plan the button belongs to, unless the click would be refused anyway."""
    respond = s.responder(body)
    v = decode(action.get("value"))
    try:
        run = await s.runner.get(v.get("run") or "")
    except RunNotFound:
        await _tell(respond, replies.problem_message("This run no longer exists."))
        return
    version = _int(v.get("v")) or run.plan_version
    try:
        await check_open(s.db, run, Approve(plan_version=version))
    except Refusal as exc:
        await _tell(respond, refusal_message(exc))
        return
    user, name = _who(body)
    where = await s.judged_in(run.id, _channel(body))  # Revise from a DM is judged in the run's channel
    denied = await s.refused(run, Revise(run.spec, plan_version=version), user=user, name=name, channel=where)
    if denied is not None:  # say so now, not after they have filled in the form
        await _tell(respond, denied)
        return
    plan = await runs.get_plan(s.db, run.id, version)
    if plan is None:
        return
    try:
        await client.views_open(trigger_id=body["trigger_id"], view=revise_modal(run, plan))
    except SlackApiError as exc:
        # trigger ids live 3 s and work once; a retry or a slow start cannot open the modal.
        err = exc.response.get("error")
        await _tell(respond, replies.problem_message(f"Slack would not open the form ({err}); click Revise again."))


async def _revision(s: Surface, view: dict[str, Any]) -> tuple[Revise | None, RunRecord | None, dict[str, str]]:
    """The submitted form as a Revise decision on its run, or the inline errors to show."""
    run_id, version = modal_target(view)
    try:
        run = await s.runner.get(run_id or "")
    except RunNotFound:
        return None, None, {OTHER: "This run no longer exists."}
    version = version or run.plan_version
    plan = await runs.get_plan(s.db, run.id, version)
    try:
        await check_open(s.db, run, Approve(plan_version=version))
    except Refusal as exc:
        return None, run, {OTHER: exc.sentence()[:150]}
    if plan is None:
        return None, run, {OTHER: "The plan is gone."}
    spec, errors = parse_revision(run, plan, view.get("state", {}).get("values", {}))
    if errors or spec is None:
        return None, run, errors
    return Revise(spec, plan_version=version), run, {}


async def submit_revision(s: Surface, ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient) -> None:
    """The Revise form submitted: inline errors in the ack, else the decision after it."""
    # Inline errors can only be given in the ack, so this validates first: local reads
    # and pure parsing only, milliseconds; the decision itself comes after the ack.
    decision, run, errors = await _revision(s, view)
    if decision is None or run is None:
        await ack(response_action="errors", errors=errors)
        return
    await ack()
    user, name = _who(body)
    channel = await s.messages.channel(run.id)
    _, problem = await s.decide(run.id, decision, user=user, name=name, channel=channel)
    if problem is not None and channel is not None:
        root = await s.messages.get(run.id, ROOT)
        await client.chat_postEphemeral(channel=channel, user=user, thread_ts=root.ts if root else None, **problem.kwargs())


async def _ask_for_file(s: Surface, body: dict[str, Any], respond: Any, run: RunRecord, question: Question) -> None:
    """ "Use my evaluator" is not an answer yet: the answer is the file. Ask for it in the thread
    (once); the file, or a reply naming one, answers through Surface.decide. Only someone who
    may answer gets the thread asked for a file (a denial is audited)."""
    if not await s.fresh(f"act:{body.get('trigger_id')}:evaluator_file"):
        return
    user, name = _who(body)
    probe = Answer("evaluator:x.py", question=question.number)
    if (denied := await s.refused(run, probe, user=user, name=name, channel=_channel(body), audit=True)) is not None:
        await _tell(respond, denied)
        return
    if not await intake.request_file(s, run, question):
        await _tell(
            respond,
            replies.note_message(
                "I've asked for your evaluator in this run's thread: attach the `.py` file there "
                "(or reply `evaluator: my_eval.py`), or pick another option."
            ),
        )


async def _answered(s: Surface, body: dict[str, Any], respond: Any, problem: Message | None) -> bool:
    """After a decision: the refusal to the clicker, and a click on the App Home refreshes it."""
    if _from_home(body):
        await home.publish(s, _who(body)[0], s.messages.client, note=problem)
    if problem is not None:
        await _tell(respond, problem)
        return False
    return True


def register_evidence(app: AsyncApp, s: Surface) -> None:
    """The evidence buttons (a modal each), Retry on a failed run, and Delete deployment."""

    async def on_details(ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await open_details(s, body, action, client)

    for action_id in DETAIL_ACTIONS:
        app.action(action_id)(on_details)

    @app.action(action_ids.RETRY)
    async def on_retry(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        if await s.fresh(f"act:{body.get('trigger_id')}:retry"):
            await retry(s, body, action)

    @app.action(action_ids.TEARDOWN)
    async def on_teardown(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        if await s.fresh(f"act:{body.get('trigger_id')}:teardown"):
            await delete_deployment(s, body, action)


async def retry(s: Surface, body: dict[str, Any], action: dict[str, Any]) -> None:
    """The failed run's own request again, for whoever pressed Retry: a new run, a new plan to approve."""
    respond = s.responder(body)
    try:
        run = await s.runner.get(str(decode(action.get("value")).get("run") or ""))
        cmd = parse_slash(f"run {run.instruction}")
    except RunNotFound:
        await _tell(respond, replies.problem_message("This run no longer exists."))
        return
    except (CommandError, SpecError) as exc:
        await _tell(respond, replies.problem_message(f"{exc} Start it again with `/sft run …`."))
        return
    user, name = _who(body)
    started = await s.execute(cmd, user=user, name=name, channel=run.channel or "", reply=lambda m: _tell(respond, m))
    if started is not None:
        await _tell(respond, replies.note_message(f"🔁 Retrying run #{run.number} as run #{started.number}."))


async def delete_deployment(s: Surface, body: dict[str, Any], action: dict[str, Any]) -> None:
    """Delete deployment (Slack's confirm dialog came first): answered to the clicker alone; the
    thread's note and the edited final message tell everyone else."""
    user, name = _who(body)
    run_id = str(decode(action.get("value")).get("run") or "")
    msg = await s.teardown(run_id, user=user, name=name, channel=await s.judged_in(run_id, _channel(body)))
    if _from_home(body):
        await home.publish(s, user, s.messages.client, note=msg)
    else:
        await _tell(s.responder(body), msg)


async def open_details(s: Surface, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
    """An evidence button's modal, for whoever may see the run (the run's channel rule)."""
    respond = s.responder(body)
    v = decode(action.get("value"))
    try:
        run = await s.runner.get(str(v.get("run") or ""))
    except RunNotFound:
        await _tell(respond, replies.problem_message("This run no longer exists."))
        return
    user, name = _who(body)
    actor = await s.directory.actor(user, name)
    verdict = authorize(actor, Action.VIEW, policy=s.runner.policy, channel=run.channel)
    if verdict.denied:
        await _tell(respond, refusal_message(Refusal.denied(verdict.rule, s.runner.policy)))
        return
    if not await s.sees(actor, run):  # the evidence names data and prompts: members of the run's channel only
        await _tell(respond, replies.problem_message("There is no such run in your channels."))
        return
    view = await view_for(s.db, str(action.get("action_id")), run, _int(v.get("v")))
    try:
        await client.views_open(trigger_id=body["trigger_id"], view=view)
    except SlackApiError as exc:  # trigger ids live 3 s and work once
        err = exc.response.get("error")
        await _tell(respond, replies.problem_message(f"Slack would not open the details ({err}); click again."))


async def _tell(respond: Any, msg: Message) -> None:
    """An ephemeral note to the person who clicked, where they clicked."""
    try:
        await respond(response_type="ephemeral", replace_original=False, **msg.kwargs())
    except Exception:  # response_url expired (30 min / 5 uses): nothing else reaches them
        log.warning("could not answer a click: %s", msg.text)
