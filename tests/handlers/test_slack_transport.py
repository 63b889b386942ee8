"""The two ways Slack reaches the bot: Socket Mode (the real AsyncSocketModeHandler against a
local WebSocket endpoint) and HTTP mode (signed POSTs to /slack/events, /healthz)."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.app import start_http
from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import CHANNEL, Bot, Driver, fast_runner, fixture, make_bot
from pipeline.store import runs
from pipeline.store.db import Database
from tests.paths import DATASETS

RUN = f"run dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b"


@pytest.fixture
async def bot(fake_slack: FakeSlack, db: Database, tmp_path: Path) -> AsyncIterator[Bot]:
    b = await make_bot(
        fake_slack, db, MemoryPlatform(polls_to_finish=10_000), fast_runner(tmp_path / "runs"), dataset_dir=DATASETS
    )
    yield b
    await b.close()


async def test_socket_mode_acks_the_envelope_and_starts_the_run(bot: Bot, fake_slack: FakeSlack) -> None:
    handler = AsyncSocketModeHandler(bot.app, fake_slack.app_token)
    await handler.connect_async()
    try:
        envelopes = fixture("socket_mode_envelopes.json")["envelopes"]
        command = copy.deepcopy(next(e for e in envelopes if e["type"] == "slash_commands"))
        command["payload"].update(
            command="/sft",
            text=RUN,
            user_id="U0ALICE",
            channel_id=CHANNEL,
            response_url=fake_slack.response_url("U0ALICE", CHANNEL),
            trigger_id="T-SOCKET",
        )
        sent = time.perf_counter()
        await fake_slack.socket_send(command)
        await fake_slack.wait_for(lambda: fake_slack.acks.get(command["envelope_id"]))
        assert time.perf_counter() - sent < 3.0
        await fake_slack.wait_for(lambda: any("Inspecting" in e["rendered"] for e in fake_slack.ephemerals("U0ALICE")))
        await fake_slack.wait_for(lambda: any("SFT run #1" in m["rendered"] for m in fake_slack.roots(CHANNEL)))

        # A retried event envelope (retry_attempt=1) for a plain channel message: acked, ignored.
        event = copy.deepcopy(next(e for e in envelopes if e["type"] == "events_api"))
        await fake_slack.socket_send(event)
        await fake_slack.wait_for(lambda: event["envelope_id"] in fake_slack.acks)
        await bot.settle()
        assert len(await runs.list_runs(bot.runner.db)) == 1
    finally:
        await handler.close_async()


async def test_http_mode_verifies_signatures_and_serves_health(bot: Bot, fake_slack: FakeSlack) -> None:
    runner, port = await start_http(bot.app, host="127.0.0.1", port=0)
    url = f"http://127.0.0.1:{port}"
    try:
        good = Driver(bot.app, fake_slack, http_url=f"{url}/slack/events")
        reply = await good.command(RUN, user="U0ALICE")
        assert reply.status == 200
        await fake_slack.wait_for(lambda: any("Inspecting" in e["rendered"] for e in fake_slack.ephemerals("U0ALICE")))
        await fake_slack.wait_for(lambda: any("SFT run #1" in m["rendered"] for m in fake_slack.roots(CHANNEL)))

        forged = Driver(bot.app, fake_slack, http_url=f"{url}/slack/events", secret="not-the-secret")
        assert (await forged.command(RUN, user="U0MALLORY")).status == 401
        body = "token=x&command=%2Fsft&text=help"
        assert (
            await good.send(body, content_type="application/x-www-form-urlencoded", timestamp=int(time.time()) - 400)
        ).status == 401

        async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as resp:
            assert resp.status == 200 and (await resp.json())["ok"] is True
        await bot.settle()
        assert len(await runs.list_runs(bot.runner.db)) == 1
    finally:
        await runner.cleanup()
