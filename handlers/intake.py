"""Evaluator files and replies people send in a run's thread (the review of a plan's evaluator
is rendered by ``handlers.render.review``).

- "Use my evaluator" does not answer the question by itself: it asks (once per question)
  for the ``.py`` file in the thread. A file shared there, or a reply ``evaluator: x.py``
  naming a file already in the evaluator folder, answers it through ``Runner.decide`` —
  which authorizes and audits it like a click.
- Attached files are fetched with ``files.info`` + ``url_private_download`` (the bot token,
  through the app's one client and HTTP session), size-capped, ``.py`` only, and saved as
  ``<evaluator folder>/<run id>-<sanitised name>.py``: the folder the runner resolves
  ``eval=evaluator:<file>`` in, so the engine checks the file exactly as it checks any other.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.commands import strip_mentions
from handlers.messages import MessageKey
from handlers.render import questions, replies
from handlers.render.mrkdwn import Message, code, user
from handlers.slack_client import trusted_slack_url
from pipeline.evaluation.strategy import resolve_user_evaluator
from pipeline.fsio import write_atomic
from pipeline.run.decisions import Answer
from pipeline.run.gates import Question
from pipeline.run.machine import Phase
from pipeline.spec import SpecError
from pipeline.store.records import RunRecord

if TYPE_CHECKING:
    from handlers.surface import Surface

log = logging.getLogger("sftbot.slack.evaluation")

MAX_EVALUATOR_BYTES = 256 * 1024  # an evaluator is a script, not a data file
DOWNLOAD_SECONDS = 30.0
# Thread replies the bot reads: plain, with files, or also sent to the channel.
THREAD_SUBTYPES = (None, "file_share", "thread_broadcast")
# "evaluator: my_eval.py", "use my evaluator `my_eval.py`", "eval=evaluator:my_eval.py" (a bare name, no folders).
_NAMED = re.compile(r"(?:use\s+)?(?:my\s+)?(?:eval\s*=\s*)?evaluator\s*[:=]?\s*`?([A-Za-z0-9_.\-]+\.py)`?\.?", re.IGNORECASE)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


# --- "Use my evaluator" ----------------------------------------------------------------------


async def request_file(s: Surface, run: RunRecord, question: Question) -> bool:
    """Ask in the thread for the evaluator file; False when it was asked for this question already."""
    if not await s.messages.mark(run.id, MessageKey.evaluator_request(question.number)):
        return False
    s.notifier.post(run.id, questions.evaluator_request(run))
    return True


# --- files and replies in a run's thread -----------------------------------------------------


def _is_py(name: object) -> bool:
    return isinstance(name, str) and name.lower().endswith(".py")


def maybe_for_a_run(event: dict[str, Any]) -> bool:
    """Cheap pre-check (no I/O): a thread reply with files, or one naming an evaluator."""
    thread_ts = event.get("thread_ts")
    if not thread_ts or thread_ts == event.get("ts") or event.get("bot_id") or event.get("subtype") not in THREAD_SUBTYPES:
        return False
    return bool(event.get("files")) or _NAMED.fullmatch(strip_mentions(event.get("text") or "")) is not None


async def on_thread_message(s: Surface, event: dict[str, Any], *, bot_user: str | None) -> bool:
    """An evaluator file or ``evaluator: x.py`` in a run's thread answers its evaluation question.

    Returns True when the message was for a run (handled, or answered with a note), False
    when it is someone else's business (the caller may treat it as a mention or DM).
    """
    channel, ts, thread_ts, who = event.get("channel"), event.get("ts"), event.get("thread_ts"), event.get("user")
    if not (channel and ts and thread_ts and who) or who == bot_user or not maybe_for_a_run(event):
        return False
    run_id = await s.messages.run_for_thread(str(channel), str(thread_ts))
    if run_id is None:
        return False
    run = await s.runner.get(run_id)
    waiting = run.phase is Phase.AWAITING_INPUT and run.question is not None and run.question.kind.about_evaluation
    files = [f for f in event.get("files") or [] if isinstance(f, dict)]
    named = _NAMED.fullmatch(strip_mentions(event.get("text") or ""))
    if files and not waiting and not any(_is_py(f.get("name")) for f in files):
        return False  # a screenshot or a log in the thread: people talk there too
    # The same message can arrive as a mention and as a channel message: act once.
    if not await s.fresh(f"msg:{channel}:{ts}"):
        return True

    async def tell(msg: Message) -> None:
        await s.messages.client.chat_postEphemeral(channel=channel, user=who, thread_ts=thread_ts, **msg.kwargs())

    if not waiting:
        state = run.phase.value.replace("_", " ")
        await tell(
            replies.problem_message(
                f"Run #{run.number} isn't waiting for an evaluator now (it is {state}). To use one, start a run with "
                "`eval=evaluator:<file>` or choose “Use my evaluator” when I ask how to judge the candidates."
            )
        )
        return True
    folder = s.runner.config.evaluator_dir
    if folder is None:
        await tell(
            replies.problem_message("No evaluator folder is configured (SFTBOT_EVALUATOR_DIR), so I can't take evaluator files.")
        )
        return True
    if files:
        name, problem = await fetch_evaluator(s.messages.client, files, run_id=run.id, folder=folder)
        if problem is not None or name is None:
            await tell(replies.problem_message(problem or "I couldn't take that file."))
            return True
        got = f"📎 Got {code(name)} from {user(who)}. I'm trying it on a few of your data's own answers; the plan follows."
    else:
        assert named is not None
        name = named.group(1)
        try:
            resolve_user_evaluator(name, folder)
        except SpecError as exc:
            await tell(replies.problem_message(f"{exc}. Attach the `.py` file in this thread instead."))
            return True
        got = f"📎 Using {code(name)} from the evaluator folder ({user(who)}). I'm trying it on a few of your data's own answers."
    _, problem_msg = await s.decide(run.id, Answer(f"evaluator:{name}"), user=who, name=None, channel=channel)
    if problem_msg is not None:
        await tell(problem_msg)
        return True
    s.notifier.post(run.id, replies.note_message(got))
    return True


async def fetch_evaluator(
    client: AsyncWebClient, files: list[dict[str, Any]], *, run_id: str, folder: Path
) -> tuple[str | None, str | None]:
    """Download the first ``.py`` of ``files`` into ``folder``: (saved file name, None) or (None, problem)."""
    info: dict[str, Any] | None = None
    for f in files[:10]:
        if f.get("name") and not _is_py(f.get("name")):
            continue  # the event already says what it is; only unnamed files need a look
        try:
            resp = await client.files_info(file=str(f.get("id") or ""))
        except SlackApiError as exc:
            err = str(exc.response.get("error") or "error")
            scope = ": the Slack app needs the `files:read` scope" if err in ("missing_scope", "not_allowed_token_type") else ""
            return None, f"I couldn't read that file from Slack ({err}){scope}."
        meta = resp.get("file") or {}
        if _is_py(meta.get("name")):
            info = meta
            break
    if info is None:
        return None, "Attach your evaluator as a Python file (`.py`); I only take `.py` files as evaluators."
    name = str(info["name"])
    size = int(info.get("size") or 0)
    if size > MAX_EVALUATOR_BYTES:
        return None, f"{code(name)} is {size / 1024:,.0f} KB; an evaluator must be under {MAX_EVALUATOR_BYTES // 1024} KB."
    url = str(info.get("url_private_download") or info.get("url_private") or "")
    if not trusted_slack_url(url, client.base_url):
        return None, f"Slack gave me an unexpected download link for {code(name)}, so I didn't fetch it."
    try:
        data = await _download(client, url)
    except _DownloadError as exc:
        return None, f"I couldn't download {code(name)}: {exc}."
    if not data.strip():
        return None, f"{code(name)} is empty."
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"{code(name)} is not UTF-8 text, so it can't be a Python evaluator."
    safe = _UNSAFE.sub("_", name[: -len(".py")]).strip("_")[:60] or "evaluator"  # no folders, dots or spaces
    dest = folder / f"{run_id}-{safe}.py"
    await asyncio.to_thread(write_atomic, dest, data)
    return dest.name, None


class _DownloadError(Exception):
    pass


async def _download(client: AsyncWebClient, url: str) -> bytes:
    session, own = client.session, client.session is None
    if session is None:
        session = aiohttp.ClientSession()
    try:
        headers = {"Authorization": f"Bearer {client.token}"}
        # No redirects: a redirect means Slack sent us to its login page (no files:read), and
        # following one could hand the token to another host.
        async with session.get(
            url, headers=headers, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=DOWNLOAD_SECONDS)
        ) as resp:
            if resp.status != 200 or resp.content_type == "text/html":
                hint = (
                    " (the Slack app needs the `files:read` scope)"
                    if resp.status in (301, 302, 303, 401, 403) or resp.content_type == "text/html"
                    else ""
                )
                raise _DownloadError(f"Slack answered HTTP {resp.status}{hint}")
            data = bytearray()
            async for chunk in resp.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > MAX_EVALUATOR_BYTES:
                    raise _DownloadError(f"it is larger than {MAX_EVALUATOR_BYTES // 1024} KB")
            return bytes(data)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _DownloadError(type(exc).__name__) from None
    finally:
        if own:
            await session.close()
