"""Preflight in Slack, through the real Bolt app: a request that cannot start (a model typo, a
refused key, another account, this machine's serving port taken) gets one private line with
the fix, and nothing else happens: no message in the channel, no run row, no run number."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.testing.fireworks import FakeFireworks
from bot.testing.fireworks.shapes import shape
from bot.testing.fireworks.world import base_model
from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, CHANNEL, MakeBot
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.platforms.fireworks.settings import FireworksSettings
from pipeline.platforms.local.platform import LocalPlatform
from pipeline.store import runs
from pipeline.store.db import Database
from tests.handlers.slack_support import refusal
from tests.paths import TEXT2SQL


@pytest.fixture
async def fireworks() -> AsyncIterator[FakeFireworks]:
    async with FakeFireworks(job_seconds=0.15, deployment_seconds=0.05) as fake:
        yield fake


def on_fake(fake: FakeFireworks, *, key: str | None = None, account: str | None = None) -> FireworksPlatform:
    return FireworksPlatform(
        FireworksSettings(key or fake.api_key, account or fake.account, base_url=fake.base_url, retry_base_delay=0.01)
    )


async def refused_privately(make: MakeBot, slack: FakeSlack, db: Database, platform: object, text: str, said: str) -> str:
    bot = await make(platform)
    await bot.driver.command(text, user=ALICE)
    line = await refusal(slack, ALICE, said)
    await bot.settle()
    assert slack.roots(CHANNEL) == [] and not [
        c for c in slack.calls_to("chat.postMessage") if c["args"].get("channel") == CHANNEL
    ]
    assert await runs.list_runs(db) == []  # no run row: no run number was spent
    assert "\n" not in line.strip() and "Traceback" not in line
    return line


async def test_a_model_typo_is_one_private_line_with_did_you_mean(
    bot_factory: MakeBot, fake_slack: FakeSlack, db: Database
) -> None:
    line = await refused_privately(
        bot_factory, fake_slack, db, MemoryPlatform(), f"run dataset={TEXT2SQL} model=qwen-8b", "is not a model"
    )
    assert "qwen-8b is not a model memory can fine-tune: did you mean qwen3-8b?" in line


async def test_a_refused_key_is_one_private_line(
    bot_factory: MakeBot, fake_slack: FakeSlack, db: Database, fireworks: FakeFireworks
) -> None:
    platform = on_fake(fireworks, key="fw-not-the-key-000")
    try:
        line = await refused_privately(bot_factory, fake_slack, db, platform, f"run dataset={TEXT2SQL} model=qwen3-8b", "401")
    finally:
        await platform.close()
    assert "Fireworks refused FIREWORKS_API_KEY (HTTP 401)" in line and "fw-not-the-key-000" not in str(fake_slack.calls)
    assert not fireworks.calls("POST")  # nothing was created on the platform either


async def test_another_account_is_one_private_line(
    bot_factory: MakeBot, fake_slack: FakeSlack, db: Database, fireworks: FakeFireworks
) -> None:
    platform = on_fake(fireworks, account="someone-else")
    try:
        line = await refused_privately(bot_factory, fake_slack, db, platform, f"run dataset={TEXT2SQL} model=qwen3-8b", "404")
    finally:
        await platform.close()
    assert "FIREWORKS_ACCOUNT_ID someone-else is not this API key's account (HTTP 404" in line
    assert not fireworks.calls("POST")


async def test_a_taken_serving_port_is_one_private_line_naming_a_free_one(
    bot_factory: MakeBot, fake_slack: FakeSlack, db: Database, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        platform = LocalPlatform(tmp_path / "local", port=port)
        try:
            line = await refused_privately(
                bot_factory, fake_slack, db, platform, f"run dataset={TEXT2SQL} model=smollm2-135m", "in use"
            )
        finally:
            await platform.close()
    assert f"port 127.0.0.1:{port} is in use by another program" in line and "SFTBOT_LOCAL_PORT=" in line


async def test_sft_models_lists_what_supervised_lora_tunable_says(
    bot_factory: MakeBot, fake_slack: FakeSlack, fireworks: FakeFireworks
) -> None:
    """The catalogue reads the current flag; the deprecated V1 flags only where it is absent."""
    for record in (
        base_model("only-v2-tunable-7b", 7e9, 32768, tunable=True, deprecated_tunable=False),
        base_model("only-v1-tunable-7b", 7e9, 32768, tunable=False, deprecated_tunable=True),
        base_model("v1-record-7b", 7e9, 32768),
    ):
        fireworks.models[record.name] = record
    del fireworks.models["accounts/fireworks/models/v1-record-7b"].body["supervisedLoraTunable"]  # an older record
    platform = on_fake(fireworks)
    try:
        bot = await bot_factory(platform)
        await bot.driver.command("models", user=ALICE)
        listing = await refusal(fake_slack, ALICE, "only-v2-tunable-7b")
    finally:
        await platform.close()
    assert "`v1-record-7b`" in listing and "`qwen3-8b`" in listing and "`qwen3-4b-instruct-2507`" in listing
    assert "`only-v1-tunable-7b`" not in listing and "`qwen3-4b`" not in listing  # deprecated-tunable only


async def test_a_base_with_no_deployment_shape_is_one_private_line(
    bot_factory: MakeBot, fake_slack: FakeSlack, db: Database, fireworks: FakeFireworks
) -> None:
    fireworks.undeployable = {"accounts/fireworks/models/qwen3-32b"}
    platform = on_fake(fireworks)
    try:
        line = await refused_privately(
            bot_factory, fake_slack, db, platform, f"run dataset={TEXT2SQL} model=qwen3-32b", "cannot be deployed"
        )
    finally:
        await platform.close()
    assert "qwen3-32b cannot be deployed on this fireworks account" in line and "deploy=no" in line


async def test_a_deployment_fireworks_would_refuse_is_found_by_a_validate_only_create(
    bot_factory: MakeBot, fake_slack: FakeSlack, db: Database, fireworks: FakeFireworks
) -> None:
    """validateOnly (SDK resources/deployments.py:168-169) creates nothing: the refusal is said first."""
    base = "accounts/fireworks/models/qwen3-8b"
    fireworks.shapes[base] = [shape("qwen3-8b-only", base, "NVIDIA_H100_80GB", 1, "FP8", addons=False)]
    fireworks.live_merge_refused = {"qwen3-8b-only"}
    platform = on_fake(fireworks)
    try:
        line = await refused_privately(
            bot_factory, fake_slack, db, platform, f"run dataset={TEXT2SQL} model=qwen3-8b", "cannot be deployed"
        )
    finally:
        await platform.close()
    assert "live merge is not supported for this deployment configuration" in line
    validated = fireworks.calls("POST", r"/deployments$")
    assert validated and all(r.query.get("validateOnly") == "true" for r in validated) and not fireworks.deployments
