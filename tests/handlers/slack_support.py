"""What the Slack tests share besides the fakes (bot/testing/): the fake Slack and bot fixtures
(registered in the conftests of tests/handlers and tests/bot) and small steps of a conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest_asyncio

from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack.state import render
from bot.testing.slack_app import (
    ALICE,
    BOB,
    CHANNEL,
    Bot,
    MakeBot,
    fast_runner,
    has,
    in_thread,
    make_bot,
    press,
    root_of,
)
from pipeline.store.db import Database
from tests.handlers.slack_checks import assert_every_message_fits
from tests.paths import DATASETS, RUN


@pytest_asyncio.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        yield slack


@pytest_asyncio.fixture
async def bot_factory(fake_slack: FakeSlack, db: Database, tmp_path: Path) -> AsyncIterator[MakeBot]:
    """Bots on the fake Slack; at the end, every message any of them sent is checked against Slack's limits."""
    bots: list[Bot] = []

    async def make(platform: Any = None, **kw: Any) -> Bot:
        kw.setdefault("dataset_dir", DATASETS)  # the bundled datasets are the team's dataset folder
        config = fast_runner(tmp_path / "runs", policy=kw.pop("policy", None), ask_evaluation=kw.pop("ask_evaluation", False))
        bot = await make_bot(fake_slack, kw.pop("db", db), platform or MemoryPlatform(), config, **kw)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        await bot.close()
    assert_every_message_fits(fake_slack)


async def plan_posted(bot: Bot, slack: FakeSlack, *, user: str = ALICE, text: str = RUN) -> tuple[dict[str, Any], dict[str, Any]]:
    await bot.driver.command(text, user=user)
    root = await root_of(slack)
    return root, await in_thread(slack, root, has("Plan v1"))


async def attach(
    bot: Bot, slack: FakeSlack, root: dict[str, Any], name: str, data: str | bytes, *, user: str = ALICE
) -> dict[str, Any]:
    event = slack.user_shares_file(
        CHANNEL, name, data.encode() if isinstance(data, str) else data, user=user, thread_ts=root["ts"]
    )
    assert (await bot.driver.event(event)).status == 200
    return event


def dm(slack: FakeSlack, text: str, *, user: str = BOB) -> dict[str, Any]:
    return slack.user_says("D0BOB", text, user=user)


def answer_to(slack: FakeSlack, channel: str, event: dict[str, Any], expect: str) -> Awaitable[Any]:
    """The bot's reply to ``event`` (in its thread for a channel, after it in a DM)."""

    def find() -> Any:
        for m in slack.messages.get(channel, []):
            if m.bot_id and float(m.ts) > float(event["ts"]) and expect in m.view()["rendered"]:
                if channel.startswith("D") or m.thread_ts == event["ts"]:
                    return m.view()
        return None

    return slack.wait_for(find)


async def refusal(fake_slack: FakeSlack, user: str, fragment: str) -> str:
    said = await fake_slack.wait_for(lambda: [e for e in fake_slack.ephemerals(user) if fragment in e["rendered"]])
    return str(said[-1]["rendered"])


async def opened(bot: Bot, slack: FakeSlack, message: dict[str, Any], label: str, *, user: str = BOB) -> str:
    """Press an evidence button and read the modal it opens (its text, as Slack shows it)."""
    before = len(slack.views)
    await press(bot, message, label, user=user)
    view = await slack.wait_for(lambda: len(slack.views) > before and list(slack.views.values())[-1])
    return render("", view["blocks"])


def scoreboard_of(slack: FakeSlack, root: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in slack.thread(CHANNEL, root["ts"]) if "Sweep — run #" in m["rendered"])
