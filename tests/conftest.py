"""Fixtures every layer's tests use: a clean environment, a real temporary database, runners.
Each layer's own fixtures are in its folder's conftest.py (fakes, never mocks)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.testing.runs import EventLog
from pipeline.run.context import RunnerConfig
from pipeline.run.runner import Runner
from pipeline.store.db import Database


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Tests never read the developer's real tokens or data dir.
    for key in list(os.environ):
        if key.startswith(("SLACK_", "FIREWORKS_", "SFTBOT_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SFTBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "test.sqlite3")
    yield database
    await database.close()


@pytest.fixture
async def make_runner(db: Database, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[tuple[Runner, EventLog]]]]:
    runners: list[Runner] = []

    async def make(on: object, **config: object) -> tuple[Runner, EventLog]:
        checkpoint = config.pop("checkpoint", None)
        config.setdefault("poll_seconds", 0.01)
        cfg = RunnerConfig(runs_dir=tmp_path / "runs", **config)  # type: ignore[arg-type]
        runner = Runner(db, on, cfg, checkpoint=checkpoint)  # type: ignore[arg-type]
        log = EventLog()
        runner.bus.subscribe(log)
        runners.append(runner)
        return runner, log

    yield make
    for r in runners:
        await r.close()
