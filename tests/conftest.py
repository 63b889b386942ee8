"""Shared fixtures: real temporary databases, real datasets, fakes (never mocks)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.testing.runs import EventLog
from bot.testing.slack import fake_slack  # noqa: F401  (a fixture, shared by the Slack tests)
from bot.testing.slack_app import bot_factory  # noqa: F401  (a fixture, shared by the Slack tests)
from pipeline.run.context import RunnerConfig
from pipeline.run.runner import Runner
from pipeline.store.db import Database
from tests.pipeline.fireworks_support import fake, make_platform, platform  # noqa: F401  (fixtures of the Fireworks tests)


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


@pytest.fixture(scope="session")
def local_demo_run(tmp_path_factory: pytest.TempPathFactory) -> object:
    """`sftbot demo --yes` end to end on the tiny model, run once for the session and then
    exited (engine, platform and endpoint closed): what the local-platform tests pick up after."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from tests.bot.local_demo import run_tiny_demo

    return run_tiny_demo(tmp_path_factory.mktemp("local-demo"))
