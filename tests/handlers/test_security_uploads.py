"""Files people attach are authorized before a byte is fetched, bounded per person and in total,
and deleted once no run uses them; an evaluator from someone who may not answer is neither
downloaded nor saved. Through the real Bolt app, the fake Slack's files.info and downloads.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, BOB, CAROL, CHANNEL, MakeBot, has, in_thread, press
from pipeline.domain.authz import Policy
from pipeline.domain.machine import Phase
from pipeline.store import runs
from tests.handlers.slack_support import answer_to, attach
from tests.handlers.test_slack_evaluation import EXACT, asked, ephemeral_with
from tests.paths import TEXT2SQL

MALLORY = "U0MALLORY"
ROWS = TEXT2SQL.read_text().splitlines()


def dataset(kb: int) -> bytes:
    """About ``kb`` KB of valid chat rows."""
    out, i = [], 0
    while sum(len(r) + 1 for r in out) < kb * 1024:
        out.append(ROWS[i % len(ROWS)])
        i += 1
    return ("\n".join(out) + "\n").encode()


def downloads(slack: FakeSlack) -> int:
    return len(slack.calls_to("files.download"))


async def test_attachments_where_no_run_may_start_are_refused_before_any_download(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), policy=Policy(channels=[CHANNEL]))
    for i in range(3):  # DMs are outside SFTBOT_CHANNELS
        said = fake_slack.user_shares_file("D0ALICE", f"big{i}.jsonl", dataset(200), user=ALICE, text="train qwen3-8b on this")
        await bot.driver.event(said)
        answer = await answer_to(fake_slack, "D0ALICE", said, "not enabled in this channel")
        assert "\n" not in answer["rendered"].strip()
    await bot.settle()
    assert fake_slack.calls_to("files.info") == [] and downloads(fake_slack) == 0
    assert not list((tmp_path / "data" / "uploads").glob("*"))
    denied = await bot.runner.db.fetchall("SELECT actor FROM audit_events WHERE action='denied_start'")
    assert [r[0] for r in denied] == [ALICE] * 3 and await runs.list_runs(bot.runner.db) == []


async def test_uploads_are_bounded_per_person_and_in_total(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), upload_quota_mb=1, uploads_total_mb=2)

    async def upload(user: str, kb: int, expect: str) -> str:
        dm = "D" + user[1:]
        said = fake_slack.user_shares_file(dm, f"rows{kb}.jsonl", dataset(kb), user=user, text="train qwen3-8b on this")
        await bot.driver.event(said)
        return str((await answer_to(fake_slack, dm, said, expect))["rendered"])

    await upload(ALICE, 600, "Run #1 started")
    mine = await upload(ALICE, 600, "I can't keep")
    assert "of your 1 MB" in mine and "SFTBOT_UPLOAD_QUOTA_MB" in mine and "Nothing was started" in mine
    await upload(BOB, 600, "Run #2 started")
    everyone = await upload(CAROL, 900, "I can't keep")
    assert "of 2 MB for everyone" in everyone and "SFTBOT_UPLOADS_TOTAL_MB" in everyone
    await bot.settle()
    assert downloads(fake_slack) == 2  # the refused ones were never fetched
    assert [r.requester for r in await runs.list_runs(bot.runner.db)] == [BOB, ALICE]


async def test_an_upload_no_run_uses_is_deleted_after_the_retention_time(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    # A retention of about 4 microseconds: each new upload's sweep finds the older ones expired.
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), upload_retention_hours=1e-9)
    folder = tmp_path / "data" / "uploads"

    async def upload(user: str, data: bytes, expect: str) -> str:
        dm = "D" + user[1:]
        said = fake_slack.user_shares_file(dm, "rows.jsonl", data, user=user, text="train qwen3-8b on this")
        await bot.driver.event(said)
        await answer_to(fake_slack, dm, said, expect)
        run = (await runs.list_runs(bot.runner.db, requester=user, limit=1))[0]
        await bot.runner.wait(run.id)
        return run.spec.dataset.removeprefix("upload:")

    broken = await upload(ALICE, b"not json\n", "Run #1 started")  # its run fails at inspection
    assert (await bot.runner.get(1)).phase is Phase.FAILED and (folder / broken).exists()
    kept = await upload(BOB, dataset(50), "Run #2 started")  # run #2 waits for approval: its file is in use
    assert not (folder / broken).exists() and (folder / kept).exists()
    await upload(CAROL, dataset(50), "Run #3 started")
    assert (folder / kept).exists()  # still named by an unfinished run
    rows = await bot.runner.db.fetchall("SELECT name FROM uploads")
    assert broken not in {r[0] for r in rows} and kept in {r[0] for r in rows}


async def test_an_evaluator_from_someone_who_may_not_answer_is_neither_downloaded_nor_saved(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), policy=Policy(approvers=[BOB]), ask_evaluation=True)
    root, question = await asked(bot, fake_slack)
    await press(bot, question, "Use my evaluator", user=ALICE)
    await in_thread(fake_slack, root, has("Send me your evaluator"))

    await attach(bot, fake_slack, root, "my_eval.py", "raise SystemExit('evil')\n", user=MALLORY)
    said = await ephemeral_with(fake_slack, MALLORY, "only the person who started this run")
    assert "answer" in said[-1]["rendered"]
    assert downloads(fake_slack) == 0 and fake_slack.calls_to("files.info") == []
    assert not list((tmp_path / "data" / "evaluators").glob("*"))
    denied = await bot.runner.db.fetchall("SELECT actor FROM audit_events WHERE action='denied_answer'")
    assert [r[0] for r in denied] == [MALLORY]

    await attach(bot, fake_slack, root, "my_eval.py", EXACT)  # the requester's own file answers
    await in_thread(fake_slack, root, has("Plan v1"))
    (saved,) = (tmp_path / "data" / "evaluators").glob("*-my_eval.py")
    assert saved.read_text() == EXACT


async def test_use_my_evaluator_from_an_uninvolved_member_asks_the_thread_for_nothing(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), policy=Policy(approvers=[BOB]), ask_evaluation=True)
    root, question = await asked(bot, fake_slack)
    await press(bot, question, "Use my evaluator", user=MALLORY)
    await ephemeral_with(fake_slack, MALLORY, "only the person who started this run")
    await bot.settle()
    thread = json.dumps(fake_slack.thread(CHANNEL, root["ts"]))
    assert "Send me your evaluator" not in thread
    denied = await bot.runner.db.fetchall("SELECT actor FROM audit_events WHERE action='denied_answer'")
    assert [r[0] for r in denied] == [MALLORY]
