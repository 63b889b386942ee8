"""Every Slack listener: the ``/sft`` command, mentions, DMs, the App Home, and (via
:mod:`handlers.actions`) buttons and the revise modal.

Rules kept here: ``ack`` comes first, before parsing and any I/O; the command's one answer
follows as an ephemeral on its response_url. A typo is caught by the pure parser before
anything is created, so no run is ever half-started.
Deliveries are de-duplicated by Slack's own ids (trigger, event id, channel+ts), so a
retry never starts a second run. Each subscribed event has a listener (no-ops included):
an unhandled event is a 404, which Slack retries and may eventually disable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from handlers import actions, attachments, home, intake
from handlers.commands import MAX_TEXT, Command, CommandError, parse_message, parse_slash, too_long
from handlers.render import replies
from handlers.render.mrkdwn import Message, code
from handlers.render.root_message import short_name
from handlers.surface import Surface, run_started_text
from pipeline.dataset.access import UPLOAD_PREFIX, quota_refusal
from pipeline.domain.spec import SpecError
from pipeline.store import uploads
from pipeline.store.db import storage_problem

log = logging.getLogger("sftbot.slack")

COMMAND = "/sft"
# Bolt notices an ack by polling every 10 ms; yielding that long first lets it send ours
# before this command's parsing and database work compete with other requests' acks.
ACK_FLUSH_SECONDS = 0.012
EVENTS = ("app_mention", "message", "app_home_opened")


def _parse_slash(text: str) -> tuple[Command | None, Message | None]:
    try:
        return parse_slash(text), None
    except (CommandError, SpecError) as exc:  # InstructionError is a SpecError
        return None, replies.help_message(problem=str(exc)) if isinstance(exc, CommandError) else replies.problem_message(
            str(exc)
        )


async def save_dataset(
    s: Surface, client: AsyncWebClient, cmd: Command, files: list[dict[str, Any]], *, user: str, channel: str
) -> Command:
    """Fetch the ``.jsonl`` sent with a run request into the uploads folder; the run names it
    ``upload:<saved name>``, and only runs of ``channel`` may use it. Within the sender's and
    everyone's quota (uploads whose time is up are deleted first). Raises FetchError with the
    sentence to show."""
    rules = s.runner.files
    folder = rules.uploads_dir
    if folder is None or cmd.spec is None:
        raise attachments.FetchError("This bot takes no attached datasets: name a platform dataset id instead.")
    await uploads.sweep(s.db, rules)
    reserved: list[str] = []

    async def admit(name: str, size: int) -> Path:
        mine, everyone = await uploads.usage(s.db, user)
        if why := quota_refusal(size, mine=mine, everyone=everyone, files=rules):
            raise attachments.FetchError(f"I can't keep {code(name)}: {why}.")
        path = attachments.new_upload_path(folder, name)
        await uploads.reserve(s.db, path.name, channel=channel, uploader=user, size=size)
        reserved.append(path.name)
        return path

    try:
        _, path = await attachments.fetch(client, files, attachments.dataset(rules.max_dataset_bytes), dest=admit)
    except BaseException:
        await uploads.forget(s.db, reserved)
        raise
    await uploads.saved(s.db, path.name, path.stat().st_size)
    return replace(cmd, spec=cmd.spec.model_copy(update={"dataset": UPLOAD_PREFIX + path.name}))


async def _with_attachment(
    s: Surface, client: AsyncWebClient, cmd: Command, event: dict[str, Any], reply: Callable[[Message], Awaitable[None]]
) -> Command | None:
    """``cmd`` training on the dataset attached to ``event`` once it is saved; None when it was
    refused (told through ``reply``). Nothing is downloaded for someone who may not start a run
    here (a DM from outside SFTBOT_CHANNELS, say): refused, and audited, before a byte is fetched."""
    user, channel = str(event["user"]), str(event["channel"])
    refused = await s.start_refused(user, channel)
    if refused is not None:
        await reply(refused)
        return None
    try:
        return await save_dataset(s, client, cmd, event.get("files") or [], user=user, channel=channel)
    except attachments.FetchError as exc:
        await reply(replies.problem_message(f"{exc} Nothing was started."))
        return None


def _bot_user(body: dict[str, Any]) -> str | None:
    return ((body.get("authorizations") or [{}])[0] or {}).get("user_id")


def register(app: AsyncApp, s: Surface) -> None:
    """Attach all listeners to ``app``, one small function per listener group."""
    _register_command(app, s)
    _register_events(app, s)
    _register_errors(app, s)
    actions.register(app, s)
    home.register(app, s)


def _register_command(app: AsyncApp, s: Surface) -> None:
    """``/sft``."""

    @app.command(COMMAND)
    async def on_sft(ack: Any, command: dict[str, Any]) -> None:
        # An empty ack, at once; the one answer (problem, usage or "starting") follows on the
        # response_url as an ephemeral, so even parsing never delays the ack.
        await ack()
        await asyncio.sleep(ACK_FLUSH_SECONDS)
        if await s.fresh(f"cmd:{command.get('trigger_id') or command.get('response_url')}"):
            await on_command(s, command)


async def on_command(s: Surface, command: dict[str, Any]) -> None:
    """A fresh ``/sft`` delivery, acknowledged: parse it, act, and answer on its response_url."""
    respond = s.responder(command)

    async def reply(msg: Message) -> None:
        await respond(response_type="ephemeral", replace_original=False, **msg.kwargs())

    # Parsing is pure but not free: off the event loop, so other requests' acks never wait on it.
    cmd, problem = await asyncio.to_thread(_parse_slash, command.get("text") or "")
    if problem is not None or cmd is None:
        await reply(problem or replies.help_message())
        return
    run = await s.execute(cmd, user=command["user_id"], name=command.get("user_name"), channel=command["channel_id"], reply=reply)
    if run is not None and cmd.kind == "run":  # a refused start already got its one answer
        dataset = code(short_name(run.spec.dataset))  # code() escapes: a dataset name is user text
        await reply(
            replies.note_message(
                f"⏳ Inspecting {dataset} for run #{run.number}. The plan appears in this channel; "
                "if the data has a problem, I'll tell you here."
            )
        )


async def converse(s: Surface, event: dict[str, Any], client: AsyncWebClient, *, thread: bool) -> None:
    """A mention or DM: parse the English, answer in the thread (channel) or inline (DM)."""
    channel, ts = event["channel"], event["ts"]
    if not await s.fresh(f"msg:{channel}:{ts}"):
        return  # the same message as app_mention and as message.im, or a retry
    thread_ts = (event.get("thread_ts") or ts) if thread else None

    async def reply(msg: Message) -> None:
        await s.messages.limiter.wait(channel)
        await client.chat_postMessage(channel=channel, thread_ts=thread_ts, **msg.kwargs())

    cmd = await _conversation_command(s, client, event, reply)
    if cmd is None:
        return
    run = await s.execute(cmd, user=event["user"], name=None, channel=channel, reply=reply)
    if run is not None and cmd.kind == "run":
        await reply(replies.note_message(run_started_text(run)))


async def _conversation_command(
    s: Surface, client: AsyncWebClient, event: dict[str, Any], reply: Callable[[Message], Awaitable[None]]
) -> Command | None:
    """What a mention or DM asks for, with its attached dataset saved; None when refused (told through ``reply``)."""
    text = event.get("text") or ""
    if len(text) > MAX_TEXT:  # the same cap as a slash command: a paste, not an instruction
        await reply(replies.problem_message(too_long(len(text))))
        return None
    attached = attachments.named(event.get("files"), ".jsonl")
    try:
        cmd = await asyncio.to_thread(parse_message, text, attached)  # off the event loop, like the slash command
    except (CommandError, SpecError) as exc:
        await reply(replies.problem_message(str(exc)))
        return None
    if attached and cmd.spec is not None and cmd.spec.dataset == UPLOAD_PREFIX + attached:
        return await _with_attachment(s, client, cmd, event, reply)
    return cmd


def _register_events(app: AsyncApp, s: Surface) -> None:
    """Mentions and messages (a run's thread, DMs); app_home_opened is :mod:`handlers.home`'s."""

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient) -> None:
        if not await s.fresh(f"ev:{body.get('event_id')}"):
            return
        if intake.maybe_for_a_run(event) and await intake.on_thread_message(s, event, bot_user=_bot_user(body)):
            return  # "@sftbot evaluator: x.py" or an evaluator file in a run's thread
        await converse(s, event, client, thread=True)

    @app.event("message")
    async def on_message(event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient) -> None:
        await on_message_event(s, event, body, client)


async def on_message_event(s: Surface, event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient) -> None:
    """A message event: an evaluator in a run's thread, a DM, or a mention that came only as a message."""
    # A run's thread may carry an evaluator (a file, or "evaluator: x.py"); otherwise only
    # DMs are conversations. Edits, deletions, joins and bot posts: acknowledged, ignored.
    for_run = intake.maybe_for_a_run(event)
    mention_with_file = event.get("subtype") == "file_share" and "<@" in (event.get("text") or "")
    # In a DM a file comes as subtype file_share: "train on this" with the dataset attached.
    plain = event.get("subtype") in (None, "file_share")
    dm = plain and not event.get("bot_id") and event.get("channel_type") == "im"
    if not (for_run or dm or mention_with_file):
        return
    if not await s.fresh(f"ev:{body.get('event_id')}"):
        return
    if for_run and await intake.on_thread_message(s, event, bot_user=_bot_user(body)):
        return
    if dm:
        await converse(s, event, client, thread=False)
    elif plain and event.get("files") and f"<@{_bot_user(body)}>" in (event.get("text") or ""):
        # A mention sent with a file sometimes arrives only as this message event, without
        # its app_mention (slackapi/bolt-python#925); converse() acts once per message.
        await converse(s, event, client, thread=True)


def _register_errors(app: AsyncApp, s: Surface) -> None:
    """A listener that raised: the bot's own storage failing is told to the person who asked."""

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        # The bot's own storage failing (a lock held by a backup, a full disk) must not leave a
        # person's command unanswered: say so where they asked; nothing was done.
        problem = storage_problem(error)
        if problem is None:
            log.error("listener failed", exc_info=error)
            return
        log.warning("answered during a storage fault: %s", problem)
        text = f"sftbot's storage is not available right now ({problem}); nothing was done. Try again in a minute."
        try:
            await s.responder(body)(response_type="ephemeral", replace_original=False, **replies.problem_message(text).kwargs())
        except Exception:
            log.warning("could not answer during a storage fault")
