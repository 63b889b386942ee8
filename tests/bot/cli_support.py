"""The running `sftbot` command line, shared by the CLI tests: one-shot (``sftbot``) or as a
process whose output is read line by line as it comes (``sftbot_process``), so a test can wait
for a line (no sleeping) and then signal it; environments of the test's own (never the
developer's tokens or data dir), and a store the commands read."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import EventLog
from pipeline.run.runner import Runner
from pipeline.store.db import Database
from tests.pipeline.fireworks_support import running


async def sftbot(*args: str, env: dict[str, str], timeout: float = 60.0) -> tuple[int, str, str]:
    """`sftbot ARGS...` to its end: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def cli_store(fake: FakeFireworks) -> AsyncIterator[tuple[Database, Runner, EventLog]]:
    """A runner on the database the ``sftbot`` command reads (``SFTBOT_DATA_DIR``); everything is
    closed when the block ends, so the command run after it sees all that was committed."""
    data = Path(os.environ["SFTBOT_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    db = await Database.open(data / "sftbot.sqlite3")
    try:
        async with running(db, fake, data / "runs") as (runner, log):
            yield db, runner, log
    finally:
        await db.close()


ROOT = Path(__file__).resolve().parents[2]
# Carriage returns (how progress bars redraw) and ANSI escapes (colours, cursor moves).
CONTROL = re.compile(r"\r|\x1b\[|\x1b\]")


def repeated(text: str) -> list[str]:
    """Lines a command printed more than once (blank lines and a deployment's snippet aside: code)."""
    code = text.partition("Use it:")[2].partition("\n[run #")[0]
    lines = [ln for ln in text.replace(code, "").splitlines() if ln.strip()]
    return [ln for ln, n in Counter(lines).items() if n > 1]


def clean_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SFTBOT_", "SLACK_", "FIREWORKS_", "CI"))}
    return {**keep, **extra}


class Cli:
    """One running `sftbot` command; ``out`` and ``err`` grow as it prints."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self.seen: set[str] = set()  # lines a test has acted on
        self._changed = asyncio.Condition()
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(proc.stdout, self.out)),
            asyncio.create_task(self._read(proc.stderr, self.err)),
        ]

    async def _read(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        async for raw in stream:
            async with self._changed:
                into.append(raw.decode("utf-8", "replace"))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def line(self, pred: Callable[[str], bool], *, timeout: float = 120.0, stream: str = "out") -> str:
        """The first line on ``stream`` (out or err) that matches; fails if the process ends first."""
        lines = self.out if stream == "out" else self.err

        async def find() -> str:
            async with self._changed:
                while True:
                    found = next((ln for ln in lines if pred(ln)), None)
                    if found is not None:
                        return found
                    if all(r.done() for r in self._readers):
                        raise AssertionError(f"sftbot ended without that line:\n{self.text()}")
                    await self._changed.wait()

        return await asyncio.wait_for(find(), timeout)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    async def finish(self, timeout: float = 120.0) -> int:
        """Its exit code, once it has ended and all its output is read."""
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.gather(*self._readers)
        return code

    def text(self) -> str:
        return "".join(self.out) + "\n--- stderr ---\n" + "".join(self.err)


@contextlib.asynccontextmanager
async def sftbot_process(*args: str, env: dict[str, str], stdin: int = asyncio.subprocess.DEVNULL) -> AsyncIterator[Cli]:
    """`sftbot ARGS...` running (killed when the block ends, if it has not ended by then); ``stdin``
    a file descriptor (a pty's end: a person at a terminal) or none."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, env=env, cwd=ROOT, stdin=stdin,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    cli = Cli(proc)
    try:
        yield cli
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for reader in cli._readers:
            reader.cancel()


def fireworks_env(fake: FakeFireworks, **extra: str) -> dict[str, str]:
    """The environment of a command that drives the fake Fireworks, on the test's data dir."""
    defaults = {
        "FIREWORKS_API_KEY": fake.api_key,
        "FIREWORKS_ACCOUNT_ID": fake.account,
        "FIREWORKS_BASE_URL": fake.base_url,
        "SFTBOT_DATA_DIR": os.environ["SFTBOT_DATA_DIR"],
        "SFTBOT_POLL_SECONDS": "0.05",
    }
    return clean_env(**{**defaults, **extra})
