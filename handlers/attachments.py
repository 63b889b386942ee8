"""Files people attach in Slack: an evaluator (``.py``) or a dataset (``.jsonl``).

Fetched with ``files.info`` + ``url_private_download`` (the bot token, through the app's one
client and HTTP session), size-capped while streaming, and saved under a name the bot makes
(no folders, no dots from the user). A dataset lands in the uploads folder as
``<random>-<name>.jsonl`` and is then named ``upload:<that>`` in the run — the only way a
Slack user's own file reaches the bot's disk (pipeline/dataset/access.py). The random part keeps one
person's upload from being named by someone who never saw it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.render.mrkdwn import code
from handlers.slack_client import trusted_slack_url
from pipeline.domain.fsio import atomic_output

MAX_EVALUATOR_BYTES = 256 * 1024  # an evaluator is a script, not a data file
DOWNLOAD_SECONDS = 30.0
DATASET_DOWNLOAD_SECONDS = 600.0  # a dataset can be large; Slack's own limit is 1 GB per file
_AS = {".py": "a Python file (`.py`)", ".jsonl": "a JSONL file (`.jsonl`, one conversation per line)"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def named(files: object, suffix: str) -> str | None:
    """The name of the first attached file ending in ``suffix``, from the event alone (no I/O)."""
    for f in files if isinstance(files, list) else []:
        name = f.get("name") if isinstance(f, dict) else None
        if isinstance(name, str) and name.lower().endswith(suffix):
            return name
    return None


def safe_stem(name: str, suffix: str, fallback: str) -> str:
    """``name`` without ``suffix``, reduced to letters, digits, ``_`` and ``-`` (no folders, no dots)."""
    stem = name[: -len(suffix)] if name.lower().endswith(suffix) else name
    return _UNSAFE.sub("_", stem).strip("_")[:60] or fallback


@dataclass(frozen=True)
class Wanted:
    """The file a fetch looks for: its suffix, what it is called in messages, its limits."""

    suffix: str
    kind: str  # "evaluator", "dataset": as the person is told
    max_bytes: int
    seconds: float = DOWNLOAD_SECONDS


EVALUATOR = Wanted(".py", "evaluator", MAX_EVALUATOR_BYTES)


def dataset(max_bytes: int) -> Wanted:
    """A ``.jsonl`` dataset of at most ``max_bytes`` (the deployment's setting); big ones take long."""
    return Wanted(".jsonl", "dataset", max_bytes, DATASET_DOWNLOAD_SECONDS)


class FetchError(Exception):
    """One sentence for the person who attached the file."""


async def _file_info(client: AsyncWebClient, files: list[dict[str, Any]], suffix: str, kind: str) -> dict[str, Any]:
    for f in files[:10]:
        if f.get("name") and not str(f["name"]).lower().endswith(suffix):
            continue  # the event already says what it is; only unnamed files need a look
        try:
            resp = await client.files_info(file=str(f.get("id") or ""))
        except SlackApiError as exc:
            err = str(exc.response.get("error") or "error")
            scope = ": the Slack app needs the `files:read` scope" if err in ("missing_scope", "not_allowed_token_type") else ""
            raise FetchError(f"I couldn't read that file from Slack ({err}){scope}.") from None
        meta = resp.get("file") or {}
        if str(meta.get("name") or "").lower().endswith(suffix):
            return dict(meta)
    raise FetchError(f"Attach your {kind} as {_AS.get(suffix, suffix)}; I only take `{suffix}` files as {kind}s.")


async def fetch(
    client: AsyncWebClient, files: list[dict[str, Any]], wanted: Wanted, *, dest: Callable[[str, int], Awaitable[Path]]
) -> tuple[str, Path]:
    """Download the first ``wanted.suffix`` file of ``files`` to ``await dest(its name, its size)``:
    (its name, the saved path). ``dest`` is asked before any byte is fetched, with the size Slack
    gives, and may refuse (a quota) by raising FetchError.

    Raises FetchError with one sentence naming the problem and what to do.
    """
    suffix, kind, max_bytes = wanted.suffix, wanted.kind, wanted.max_bytes
    info = await _file_info(client, files, suffix, kind)
    name = str(info["name"])
    size = int(info.get("size") or 0)
    if size > max_bytes:
        raise FetchError(f"{code(name)} is {_size(size)}; a {kind} must be under {_size(max_bytes)}.")
    url = str(info.get("url_private_download") or info.get("url_private") or "")
    if not trusted_slack_url(url, client.base_url):
        raise FetchError(f"Slack gave me an unexpected download link for {code(name)}, so I didn't fetch it.")
    path = await dest(name, size)
    try:
        with atomic_output(path) as tmp, tmp.open("wb") as out:
            got = await _download(client, url, out, max_bytes=max_bytes, seconds=wanted.seconds)
            if got == 0:
                raise FetchError(f"{code(name)} is empty.")
    except _TooBig:
        raise FetchError(f"{code(name)} is larger than {_size(max_bytes)}, the limit for a {kind}.") from None
    except _DownloadError as exc:
        raise FetchError(f"I couldn't download {code(name)}: {exc}.") from None
    return name, path


def new_upload_path(folder: Path, name: str) -> Path:
    """Where an attached dataset is saved: unguessable, so only its run's thread names it."""
    return folder / f"{secrets.token_hex(6)}-{safe_stem(name, '.jsonl', 'dataset')}.jsonl"


def _size(n: int) -> str:
    return f"{n / 1024:,.0f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:,.0f} MB"


class _DownloadError(Exception):
    pass


class _TooBig(Exception):
    pass


async def _download(client: AsyncWebClient, url: str, out: IO[bytes], *, max_bytes: int, seconds: float) -> int:
    session, own = client.session, client.session is None
    if session is None:
        session = aiohttp.ClientSession()
    try:
        headers = {"Authorization": f"Bearer {client.token}"}
        # No redirects: a redirect means Slack sent us to its login page (no files:read), and
        # following one could hand the token to another host.
        async with session.get(url, headers=headers, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=seconds)) as resp:
            if resp.status != 200 or resp.content_type == "text/html":
                hint = (
                    " (the Slack app needs the `files:read` scope)"
                    if resp.status in (301, 302, 303, 401, 403) or resp.content_type == "text/html"
                    else ""
                )
                raise _DownloadError(f"Slack answered HTTP {resp.status}{hint}")
            got = 0
            async for chunk in resp.content.iter_chunked(256 * 1024):
                got += len(chunk)
                if got > max_bytes:  # the size in files.info is what Slack says, this is what came
                    raise _TooBig
                out.write(chunk)  # at most 256 KB to the local disk: not worth a thread
            return got
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _DownloadError(type(exc).__name__) from None
    finally:
        if own:
            await session.close()
