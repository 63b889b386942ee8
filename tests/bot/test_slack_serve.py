"""`serve()` as `sftbot serve` runs it: settings from the environment, the configured platform
(the fake Fireworks here), unfinished runs resumed at start-up, then HTTP or Socket Mode."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest

from bot.app import serve
from bot.cli import main as cli_main
from bot.settings import Settings, load_settings
from bot.testing.fireworks import FakeFireworks
from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import CHANNEL, SECRET, Driver
from pipeline.domain.machine import Phase
from pipeline.domain.records import Actor
from pipeline.run.context import RunnerConfig
from pipeline.run.runner import Runner
from pipeline.store.db import Database
from tests.paths import DATASETS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(pred, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not await pred():  # noqa: ASYNC110 (a server starting up has no event to await)
            await asyncio.sleep(0.02)  # polling a server that is starting up; bounded by timeout

    await asyncio.wait_for(poll(), timeout)


def env(monkeypatch: pytest.MonkeyPatch, slack: FakeSlack, fireworks: FakeFireworks, **extra: str) -> Settings:
    values = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.base_url,
        "SFTBOT_PLATFORM": "fireworks",
        "FIREWORKS_API_KEY": fireworks.api_key,
        "FIREWORKS_ACCOUNT_ID": fireworks.account,
        "FIREWORKS_BASE_URL": fireworks.base_url,
        "SFTBOT_DATASET_DIR": str(DATASETS),  # the team's dataset folder: the bundled datasets
        **extra,
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return load_settings()


async def test_http_serve_resumes_unfinished_runs_and_answers(monkeypatch: pytest.MonkeyPatch, fake_slack: FakeSlack) -> None:
    async with FakeFireworks(job_seconds=0.1, deployment_seconds=0.05) as fireworks:
        port = free_port()
        settings = env(monkeypatch, fake_slack, fireworks, SFTBOT_MODE="http", SFTBOT_HTTP_PORT=str(port))
        # A run the previous process left mid-inspection (its task was killed before it finished).
        db = await Database.open(settings.db_path)
        runner = Runner(db, MemoryPlatform(), RunnerConfig(runs_dir=settings.runs_dir))
        run = await runner.start(f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b eval=loss", Actor(id="U0ALICE"))
        await runner.close()
        assert (await runner.get(run.id)).phase is Phase.INSPECTING
        await db.close()

        stop = asyncio.Event()
        server = asyncio.create_task(serve(settings, stop=stop))
        try:

            async def healthy() -> bool:
                try:
                    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await until(healthy)
            driver = Driver(app=None, slack=fake_slack, http_url=f"http://127.0.0.1:{port}/slack/events")  # type: ignore[arg-type]
            assert (await driver.command("help", user="U0BOB", channel=CHANNEL)).status == 200
            await fake_slack.wait_for(lambda: any("/sft run" in e["rendered"] for e in fake_slack.ephemerals("U0BOB")))

            check = await Database.open(settings.db_path)
            try:

                async def planned() -> bool:
                    row = await check.fetchone("SELECT phase FROM runs WHERE id=?", (run.id,))
                    return row is not None and row[0] == Phase.AWAITING_PLAN_APPROVAL.value

                await until(planned, timeout=30)
            finally:
                await check.close()
        finally:
            stop.set()
            await asyncio.wait_for(server, 10)


async def test_socket_serve_connects_and_stops(monkeypatch: pytest.MonkeyPatch, fake_slack: FakeSlack) -> None:
    async with FakeFireworks() as fireworks:
        settings = env(monkeypatch, fake_slack, fireworks)
        assert settings.mode == "socket"
        stop = asyncio.Event()
        server = asyncio.create_task(serve(settings, stop=stop))
        try:
            await fake_slack.wait_for(lambda: fake_slack.calls_to("apps.connections.open"))
        finally:
            stop.set()
            await asyncio.wait_for(server, 10)


def test_serve_without_tokens_says_which_is_missing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli_main(["serve", "--mode", "http"]) == 1
    assert "SLACK_BOT_TOKEN" in capsys.readouterr().err
