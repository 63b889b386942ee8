"""Shared by the FireworksPlatform tests: the fake server, platforms pointed at it, small builders.

The fixtures are registered in conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import EventLog
from pipeline.domain.platform import (
    JobRequest,
)
from pipeline.domain.records import Actor
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.platforms.fireworks.settings import FireworksSettings
from pipeline.run.context import RunnerConfig
from pipeline.run.runner import Runner
from pipeline.store.db import Database

ACCT = "test-acct"
ALICE = Actor(id="U_ALICE", name="alice")
BOB = Actor(id="U_BOB", name="bob")
CHAT_ROWS = [
    {"messages": [{"role": "user", "content": f"What is {i}+{i}?"}, {"role": "assistant", "content": str(2 * i)}]}
    for i in range(12)
]


class Clock:
    """A hand-driven clock for the platform's own caches."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def fake() -> AsyncIterator[FakeFireworks]:
    async with FakeFireworks(account=ACCT, job_seconds=10.0, deployment_seconds=0.05) as server:
        yield server


@pytest.fixture
async def make_platform(fake: FakeFireworks) -> AsyncIterator[Callable[..., FireworksPlatform]]:
    made: list[FireworksPlatform] = []

    def make(**overrides: Any) -> FireworksPlatform:
        options: dict[str, Any] = {
            "base_url": fake.base_url,
            "poll_seconds": 0.01,
            "retry_base_delay": 0.01,
            "quota_delay": 0.01,
            "warmup_seconds": 5.0,
            "timeout": 5.0,
        }
        options.update(overrides)
        api_key = options.pop("api_key", fake.api_key)
        platform = FireworksPlatform(FireworksSettings(api_key, ACCT, **options))
        made.append(platform)
        return platform

    yield make
    for p in made:
        await p.close()


@pytest.fixture
def platform(make_platform: Callable[..., FireworksPlatform]) -> FireworksPlatform:
    return make_platform()


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll ``check`` every 10 ms until it holds; fail after ``timeout`` seconds."""

    async def loop() -> None:
        while not await check():  # noqa: ASYNC110 (the fake's state has no event to await)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), timeout)


def request(job_id: str, *, lr: float = 1e-4, rank: int = 16, eval_dataset: str | None = "sftbot-r1-test") -> JobRequest:
    return JobRequest(
        job_id=job_id,
        base_model="qwen3-8b",
        dataset="sftbot-r1-train",
        eval_dataset=eval_dataset,
        epochs=2,
        lora_rank=rank,
        learning_rate=lr,
        output_model=job_id,
        display_name=f"candidate {job_id}",
    )


async def seed_datasets(fake: FakeFireworks) -> None:
    data = "".join(json.dumps(r) + "\n" for r in CHAT_ROWS).encode()
    fake.add_dataset("sftbot-r1-train", {"train.jsonl": data})
    fake.add_dataset("sftbot-r1-test", {"test.jsonl": data[: len(data) // 3]})


def platform_for(fake: FakeFireworks, **options: Any) -> FireworksPlatform:
    """A platform on the fake with waits shrunk for tests (``options`` override)."""
    settings: dict[str, Any] = {"base_url": fake.base_url, "poll_seconds": 0.01, "retry_base_delay": 0.01, "quota_delay": 0.05}
    settings.update(options)
    return FireworksPlatform(FireworksSettings(fake.api_key, fake.account, **settings))


def open_runner(
    db: Database,
    fake: FakeFireworks,
    runs: Path,
    *,
    checkpoint: Any = None,
    platform: FireworksPlatform | None = None,
    **config: Any,
) -> tuple[Runner, EventLog]:
    """A runner on the fake through the real SDK, with an event log subscribed."""
    config.setdefault("poll_seconds", 0.02)
    runner = Runner(db, platform or platform_for(fake), RunnerConfig(runs_dir=runs, **config), checkpoint=checkpoint)
    log = EventLog()
    runner.bus.subscribe(log)
    return runner, log


@contextlib.asynccontextmanager
async def running(db: Database, fake: FakeFireworks, runs: Path, **kw: Any) -> AsyncIterator[tuple[Runner, EventLog]]:
    """``open_runner`` for a block: its tasks and its SDK client closed however the block ends."""
    runner, log = open_runner(db, fake, runs, **kw)
    try:
        yield runner, log
    finally:
        await runner.close()
        await runner.platform.close()
