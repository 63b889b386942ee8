"""Talking to the bot: slash commands, mentions, DMs, the App Home, questions and retried
deliveries, as signed requests into the real Bolt app; assertions are on what a person sees."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, BOB, CHANNEL, MakeBot, find_element, has, in_thread, root_of, text_of
from pipeline.domain.authz import Policy
from pipeline.store import runs
from tests.handlers.slack_support import answer_to, dm, plan_posted
from tests.paths import RUN, TEXT2SQL


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"run dataset={TEXT2SQL} model=qwen3-8b with rank 7", "LoRA rank 7 is not allowed"),
        ("run model=qwen3-8b", "no dataset named"),
        (f"run dataset={TEXT2SQL} model=qwen3-8b wibble wobble", "could not understand: 'wibble wobble'"),
        ("frobnicate 12", "unknown subcommand `frobnicate`"),
        ("status", "which run?"),
    ],
)
async def test_bad_command_text_gets_one_clear_ephemeral_and_no_run(
    bot_factory: MakeBot,
    fake_slack: FakeSlack,
    text: str,
    expected: str,
) -> None:
    bot = await bot_factory()
    reply = await bot.driver.command(text, user=ALICE)
    assert reply.status == 200
    await bot.settle()
    answers = fake_slack.ephemerals(ALICE)
    assert len(answers) == 1 and expected in answers[0]["rendered"]  # one clear answer
    assert await runs.list_runs(bot.runner.db) == [] and not fake_slack.roots(CHANNEL)


async def test_retried_and_duplicate_deliveries_never_start_a_second_run(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000))
    await bot.driver.command(RUN, user=ALICE, trigger="T-SAME")
    await bot.driver.command(RUN, user=ALICE, trigger="T-SAME", retry_num=1)
    said = mention(fake_slack, f"run SFT on {TEXT2SQL} with qwen3-8b", user=BOB)
    for retry in (None, 1, 2):
        assert (await bot.driver.event(said, event_id="Ev0MENTION", retry_num=retry)).status == 200
    await bot.driver.event(said, event_id="Ev0OTHER")  # the same message, another delivery id
    await bot.settle()
    listed = await runs.list_runs(bot.runner.db)
    assert sorted(r.requester for r in listed) == [ALICE, BOB]


def mention(slack: FakeSlack, text: str, *, user: str = BOB) -> dict[str, Any]:
    said = slack.user_says(CHANNEL, f"<@UBOT> {text}", user=user)
    return {**said, "type": "app_mention"}


async def test_mentions_and_dms_route_by_phrasing(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000))
    ask = mention(fake_slack, f"run SFT on {TEXT2SQL} with qwen3-8b and 3 epochs")
    await bot.driver.event(ask)
    await answer_to(fake_slack, CHANNEL, ask, "Run #1 started")
    assert (await bot.runner.get(1)).spec.epochs == 3

    ask = mention(fake_slack, "which base models do you support for SFT?")
    await bot.driver.event(ask)
    assert "qwen3-8b" in (await answer_to(fake_slack, CHANNEL, ask, "Base models"))["rendered"]

    for text, expect in [
        ("status of run 1", "SFT run #1 by"),
        ("cancel run 1", "Yes, cancel run #1"),
        ("help", "/sft run"),
        ("audit of run 1", "Audit trail"),
        ("what's the weather", "I didn't catch that"),
    ]:
        ask = dm(fake_slack, text)
        await bot.driver.event(ask)
        await answer_to(fake_slack, "D0BOB", ask, expect)
    assert len(await runs.list_runs(bot.runner.db)) == 1
    # Edits and other bots' posts arrive as message events too: acknowledged, ignored.
    assert (await bot.driver.event({**dm(fake_slack, "cancel run 1"), "subtype": "message_changed"})).status == 200
    assert (await bot.driver.event({**dm(fake_slack, f"run SFT on {TEXT2SQL}"), "bot_id": "B0OTHER"})).status == 200
    await bot.settle()
    assert len(await runs.list_runs(bot.runner.db)) == 1


async def test_app_home_publishes_runs_and_permissions(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), policy=Policy(approvers=[BOB], budget_usd=50))
    await plan_posted(bot, fake_slack, user=ALICE)
    event = {"type": "app_home_opened", "user": ALICE, "channel": "D0ALICE", "tab": "home", "event_ts": "1700000004.1"}
    assert (await bot.driver.event(event)).status == 200
    home = await fake_slack.wait_for(lambda: fake_slack.home.get(ALICE))
    rendered = "\n".join(str(b) for b in home["blocks"])
    assert "#1" in rendered and f"<@{BOB}>" in rendered and "$50" in rendered
    assert "SFTBOT_APPROVERS" not in rendered  # settings' names are for admins, not for everyone
    assert (await bot.driver.event({**event, "tab": "messages"})).status == 200  # acknowledged, nothing to publish


async def test_a_question_is_answered_with_the_select(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory()
    await bot.driver.command(f"run dataset={TEXT2SQL}", user=ALICE)
    root = await root_of(fake_slack)
    asked = await in_thread(fake_slack, root, has("needs an answer"))
    select = find_element(asked["blocks"], "sft_answer_select")
    assert select is not None
    pick = next(i for i, o in enumerate(select["options"]) if o["text"]["text"] == "qwen3-8b")
    await bot.driver.click(asked, "sft_answer_select", user=ALICE, option=pick)
    await in_thread(fake_slack, root, lambda m: m["ts"] == asked["ts"] and "Answered `qwen3-8b`" in text_of(m))
    await in_thread(fake_slack, root, has("Plan v1"))


async def test_a_refused_start_gets_one_answer_and_is_audited(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(policy=Policy(channels=["C0OTHER"]))
    await bot.driver.command(RUN, user=ALICE)
    await bot.settle()
    answers = fake_slack.ephemerals(ALICE)
    assert len(answers) == 1 and "not enabled in this channel" in answers[0]["rendered"]
    assert await runs.list_runs(bot.runner.db) == [] and not fake_slack.roots(CHANNEL)
    denied = await bot.runner.db.fetchall("SELECT actor, action FROM audit_events WHERE action='denied_start'")
    assert [tuple(r) for r in denied] == [(ALICE, "denied_start")]


async def test_a_command_during_a_storage_fault_gets_an_answer(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    import threading

    from tests.pipeline.store.store_support import hold_write_lock

    bot = await bot_factory()
    held = threading.Event()
    locker = threading.Thread(target=hold_write_lock, args=(tmp_path / "test.sqlite3", 8.0, held))
    locker.start()
    await asyncio.to_thread(held.wait)
    reply = await bot.driver.command("runs", user=ALICE)
    assert reply.status == 200  # acked at once, whatever the storage does
    answer = await fake_slack.wait_for(lambda: fake_slack.ephemerals(ALICE), timeout=15)
    assert "storage is not available" in answer[0]["rendered"] and "nothing was done" in answer[0]["rendered"]
    await asyncio.to_thread(locker.join)
