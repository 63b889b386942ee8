"""The running `sftbot` command line against the fake Fireworks, shared by the CLI tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import EventLog
from pipeline.run.runner import Runner
from pipeline.store.db import Database
from tests.pipeline.fireworks_support import running


async def sftbot(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
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
