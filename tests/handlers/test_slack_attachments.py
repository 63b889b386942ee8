"""A dataset attached to the message that asks for a run: the one way a Slack user's own file
reaches the bot's disk (the uploads folder), through the real Bolt app and the fake Slack's
files.info + url_private_download.
"""

from __future__ import annotations

from pathlib import Path

from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, CHANNEL, MakeBot, has, in_thread, root_of
from pipeline.store import runs
from tests.handlers.slack_support import answer_to
from tests.paths import TEXT2SQL

DATA = TEXT2SQL.read_bytes()


async def test_a_dataset_attached_to_a_dm_is_what_the_run_trains_on(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000))
    said = fake_slack.user_shares_file("D0ALICE", "support chats.jsonl", DATA, user=ALICE, text="train qwen3-8b on this file")
    assert (await bot.driver.event(said)).status == 200
    await answer_to(fake_slack, "D0ALICE", said, "Run #1 started")
    run = await bot.runner.get(1)
    assert run.spec.dataset.startswith("upload:") and run.spec.dataset.endswith("-support_chats.jsonl")
    saved = tmp_path / "data" / "uploads" / run.spec.dataset.removeprefix("upload:")
    assert saved.read_bytes() == DATA
    assert len(saved.name.split("-")[0]) == 12  # a random part: nobody names another person's upload by guessing


async def test_a_mention_with_a_file_that_arrives_only_as_a_message_event_starts_one_run(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000))
    said = fake_slack.user_shares_file(
        CHANNEL, "sql.jsonl", DATA, user=ALICE, text="<@UBOT> run SFT on the attached file with qwen3-8b"
    )
    await bot.driver.event(said)  # the message event (bolt-python#925: sometimes the only one)
    await bot.driver.event({**said, "type": "app_mention"})  # and when both come: one run
    root = await root_of(fake_slack)
    await in_thread(fake_slack, root, has("Plan v1"))
    await bot.settle()
    listed = await runs.list_runs(bot.runner.db)
    assert len(listed) == 1 and listed[0].spec.dataset.endswith("-sql.jsonl")


async def test_an_attachment_that_is_too_big_or_not_jsonl_gets_one_answer_and_no_run(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), max_dataset_mb=1)
    big = b'{"messages": []}\n' * 70_000  # 1.2 MB
    said = fake_slack.user_shares_file("D0ALICE", "big.jsonl", big, user=ALICE, text="train qwen3-8b on this")
    await bot.driver.event(said)
    answer = await answer_to(fake_slack, "D0ALICE", said, "big.jsonl")
    assert "must be under 1 MB" in answer["rendered"] and "Nothing was started" in answer["rendered"]

    said = fake_slack.user_shares_file("D0ALICE", "notes.txt", b"hello", user=ALICE, text="train qwen3-8b on this")
    await bot.driver.event(said)
    await answer_to(fake_slack, "D0ALICE", said, "could not understand")  # a .txt is not a dataset
    await bot.settle()
    assert await runs.list_runs(bot.runner.db) == []
    assert not list((tmp_path / "data" / "uploads").glob("*.jsonl"))


async def test_an_upload_name_nobody_attached_is_refused(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000))
    await bot.driver.command("run dataset=upload:../../.env model=qwen3-8b", user=ALICE)
    await bot.driver.command("run dataset=upload:0123456789ab-data.jsonl model=qwen3-8b", user=ALICE)
    await bot.settle()
    answers = [e["rendered"] for e in fake_slack.ephemerals(ALICE)]
    assert len(answers) == 2 and all(a.startswith("⚠️") for a in answers), answers
    assert await runs.list_runs(bot.runner.db) == []
