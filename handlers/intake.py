"""Evaluator files and replies people send in a run's thread (the review of a plan's evaluator
is rendered by ``handlers.render.review``).

- "Use my evaluator" does not answer the question by itself: it asks (once per question)
  for the ``.py`` file in the thread. A file shared there, or a reply ``evaluator: x.py``
  naming a file already in the evaluator folder, answers it through ``Runner.decide`` —
  which authorizes and audits it like a click.
- Attached files are fetched with ``files.info`` + ``url_private_download`` (the bot token,
  through the app's one client and HTTP session), size-capped, ``.py`` only, and saved as
  ``<evaluator folder>/<run id>-<random>-<sanitised name>.py``, and only once the sender was
  found allowed to answer: the folder the runner resolves
  ``eval=evaluator:<file>`` in, so the engine checks the file exactly as it checks any other.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slack_sdk.web.async_client import AsyncWebClient

from handlers import attachments
from handlers.commands import strip_mentions
from handlers.messages import MessageKey
from handlers.render import questions, replies
from handlers.render.mrkdwn import Message, code, user
from pipeline.domain.gates import Question
from pipeline.domain.machine import Phase
from pipeline.domain.records import RunRecord
from pipeline.domain.spec import SpecError
from pipeline.evaluation.strategy import resolve_user_evaluator
from pipeline.run.decisions import Answer

if TYPE_CHECKING:
    from handlers.surface import Surface

log = logging.getLogger("sftbot.slack.evaluation")

# Thread replies the bot reads: plain, with files, or also sent to the channel.
THREAD_SUBTYPES = (None, "file_share", "thread_broadcast")
# "evaluator: my_eval.py", "use my evaluator `my_eval.py`", "eval=evaluator:my_eval.py" (a bare name, no folders).
_NAMED = re.compile(r"(?:use\s+)?(?:my\s+)?(?:eval\s*=\s*)?evaluator\s*[:=]?\s*`?([A-Za-z0-9_.\-]+\.py)`?\.?", re.IGNORECASE)


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

    problem = await _take(s, run, event, files=files, named=named)
    if problem is not None:
        await s.messages.client.chat_postEphemeral(channel=channel, user=who, thread_ts=thread_ts, **problem.kwargs())
    return True


async def _take(
    s: Surface, run: RunRecord, event: dict[str, Any], *, files: list[dict[str, Any]], named: re.Match[str] | None
) -> Message | None:
    """Answer the run's evaluation question with the attached or named file; what to tell the sender otherwise."""
    channel, who = str(event["channel"]), str(event["user"])
    question = run.question
    if run.phase is not Phase.AWAITING_INPUT or question is None or not question.kind.about_evaluation:
        state = run.phase.value.replace("_", " ")
        return replies.problem_message(
            f"Run #{run.number} isn't waiting for an evaluator now (it is {state}). To use one, start a run with "
            "`eval=evaluator:<file>` or choose “Use my evaluator” when I ask how to judge the candidates."
        )
    folder = s.runner.config.evaluator_dir
    if folder is None:
        return replies.problem_message(
            "No evaluator folder is configured (SFTBOT_EVALUATOR_DIR), so I can't take evaluator files."
        )
    # Asked before anything is downloaded or saved: someone who may not answer this question
    # gets the refusal (audited), and nobody else's file is touched.
    probe = Answer("evaluator:x.py", question=question.number)
    if (denied := await s.refused(run, probe, user=who, name=None, channel=channel, audit=True)) is not None:
        return denied
    if files:
        name, problem = await fetch_evaluator(s.messages.client, files, run_id=run.id, folder=folder)
        if problem is not None or name is None:
            return replies.problem_message(problem or "I couldn't take that file.")
        got = f"📎 Got {code(name)} from {user(who)}. I'm trying it on a few of your data's own answers; the plan follows."
    else:
        assert named is not None
        name = named.group(1)
        try:
            resolve_user_evaluator(name, folder)
        except SpecError as exc:
            return replies.problem_message(f"{exc}. Attach the `.py` file in this thread instead.")
        got = f"📎 Using {code(name)} from the evaluator folder ({user(who)}). I'm trying it on a few of your data's own answers."
    _, problem_msg = await s.decide(run.id, Answer(f"evaluator:{name}"), user=who, name=None, channel=channel)
    if problem_msg is None:
        s.notifier.post(run.id, replies.note_message(got))
    return problem_msg


async def fetch_evaluator(
    client: AsyncWebClient, files: list[dict[str, Any]], *, run_id: str, folder: Path
) -> tuple[str | None, str | None]:
    """Download the first ``.py`` of ``files`` into ``folder``: (saved file name, None) or (None, problem)."""

    async def dest(name: str, _size: int) -> Path:
        # A name of its own per file: a second attachment never replaces one an answer named.
        return folder / f"{run_id}-{secrets.token_hex(3)}-{attachments.safe_stem(name, '.py', 'evaluator')}.py"

    try:
        name, path = await attachments.fetch(client, files, attachments.EVALUATOR, dest=dest)
    except attachments.FetchError as exc:
        return None, str(exc)
    try:
        (await asyncio.to_thread(path.read_bytes)).decode("utf-8")
    except UnicodeDecodeError:
        path.unlink(missing_ok=True)
        return None, f"{code(name)} is not UTF-8 text, so it can't be a Python evaluator."
    return path.name, None
