"""Data stays where it was given, and what a person sees follows channel membership: replayed
through the real Bolt app under the strictest settings (approvers, no self-approval, two
enabled channels, one of them private). MALLORY is in the team channel, not in the private one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, BOB, Bot, MakeBot, text_of
from pipeline.domain.authz import Policy
from pipeline.store import runs
from tests.paths import TEXT2SQL

PRIV, TEAM = "C0PRIV", "C0TEAM"
MALLORY, ERIN = "U0MALLORY", "U0ERIN"  # a member of the team channel only; an admin in neither
STRICT = Policy(approvers=[BOB], admins=[ERIN], channels=[PRIV, TEAM], allow_self_approval=False)
MARK = "PRIVATE-ROW-7731"
PLATFORM_ID = "accounts/test/datasets/payroll-chats"
# An evaluator that raises every row it is given: the check before the plan would hand them
# to whoever supplied it.
THIEF = "def evaluate(messages, ground_truth=None, **kw):\n    raise RuntimeError(repr(messages) + repr(ground_truth))\n"


def private_rows() -> bytes:
    """The team's private data: the bundled rows with a marker in every answer."""
    rows = [json.loads(line) for line in TEXT2SQL.read_text().splitlines()]
    for row in rows:
        row["messages"][-1]["content"] += f" -- {MARK}"
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture
def members(fake_slack: FakeSlack) -> None:
    fake_slack.channel_members = {PRIV: [ALICE, BOB, "UBOT"], TEAM: [ALICE, BOB, MALLORY, "UBOT"]}


def leaked(slack: FakeSlack, *fragments: str) -> list[str]:
    """Every Slack call (posts, ephemerals, views, DMs) that carries one of ``fragments``."""
    return [json.dumps(c)[:200] for c in slack.calls if any(f in json.dumps(c) for f in fragments)]


async def plan_in(slack: FakeSlack, channel: str, number: int) -> dict[str, Any]:
    def find() -> Any:
        roots = [m for m in slack.roots(channel) if f"SFT run #{number} " in text_of(m)]
        replies = [m for r in roots for m in slack.thread(channel, r["ts"])[1:] if "Plan v1" in text_of(m)]
        return replies[0] if replies else None

    return await slack.wait_for(find)


async def said_to(slack: FakeSlack, user: str, fragment: str) -> str:
    found = await slack.wait_for(lambda: [e for e in slack.ephemerals(user) if fragment in e["rendered"]])
    return str(found[-1]["rendered"])


async def private_upload_run(bot: Bot, slack: FakeSlack) -> str:
    """ALICE attaches the private file in the private channel: run #1 trains on it."""
    said = slack.user_shares_file(PRIV, "payroll.jsonl", private_rows(), user=ALICE, text="<@UBOT> run SFT on this with qwen3-8b")
    await bot.driver.event({**said, "type": "app_mention"})
    await plan_in(slack, PRIV, 1)
    return (await bot.runner.get(1)).spec.dataset


async def test_an_upload_is_usable_only_in_the_channel_it_was_attached_in(
    bot_factory: MakeBot, fake_slack: FakeSlack, members: None, tmp_path: Path
) -> None:
    evaluators = tmp_path / "evaluators"
    evaluators.mkdir()
    (evaluators / "thief.py").write_text(THIEF)
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), policy=STRICT, evaluator_dir=evaluators)
    name = await private_upload_run(bot, fake_slack)
    assert name.startswith("upload:")

    # Another channel's member names it (the name is no secret) with an evaluator that raises its rows.
    await bot.driver.command(f"run dataset={name} model=qwen3-8b eval=evaluator:thief.py", user=MALLORY, channel=TEAM)
    said = await said_to(fake_slack, MALLORY, "attached in another conversation")
    assert "attach the file here" in said and "\n" not in said.strip() and PRIV not in said
    await bot.settle()
    assert [r.number for r in await runs.list_runs(bot.runner.db)] == [1]  # nothing was started for him
    assert leaked(fake_slack, MARK) == []  # and no row reached Slack, anywhere

    # A revision is a point of use too: his own run in his channel cannot take it as its eval data...
    await bot.driver.command(f"run dataset={TEXT2SQL.name} model=qwen3-8b", user=MALLORY, channel=TEAM)
    plan = await plan_in(fake_slack, TEAM, 2)
    await bot.driver.click(plan, "sft_revise", user=MALLORY, channel=TEAM, trigger="T-MAL")
    view = await fake_slack.wait_for(lambda: next(iter(fake_slack.views.values()), None))
    await bot.driver.submit(view, user=MALLORY, other=f"eval_dataset={name}")
    await fake_slack.wait_for(
        lambda: len([e for e in fake_slack.ephemerals(MALLORY) if "attached in another conversation" in e["rendered"]]) == 2
    )
    assert (await bot.runner.get(2)).spec.eval_dataset is None and (await bot.runner.get(2)).plan_version == 1
    # ...while ALICE's teammate in the private channel may use it.
    await bot.driver.command(f"run dataset={name} model=qwen3-8b", user=BOB, channel=PRIV)
    await plan_in(fake_slack, PRIV, 3)
    assert (await bot.runner.get(3)).spec.dataset == name
    assert leaked(fake_slack, MARK) == []


async def test_a_platform_dataset_another_channels_run_used_is_refused(
    bot_factory: MakeBot, fake_slack: FakeSlack, members: None, tmp_path: Path
) -> None:
    source = tmp_path / "payroll.jsonl"
    source.write_bytes(private_rows())
    platform = MemoryPlatform(polls_to_finish=10_000)
    platform.uploaded[PLATFORM_ID] = source
    bot = await bot_factory(platform, policy=STRICT)
    await bot.driver.command(f"run dataset={PLATFORM_ID} model=qwen3-8b", user=ALICE, channel=PRIV)
    await plan_in(fake_slack, PRIV, 1)

    await bot.driver.command(f"run dataset={PLATFORM_ID} model=qwen3-8b", user=MALLORY, channel=TEAM)
    said = await said_to(fake_slack, MALLORY, "belongs to runs of another channel")
    assert "\n" not in said.strip() and PRIV not in said
    await bot.settle()
    assert [r.number for r in await runs.list_runs(bot.runner.db)] == [1]

    await bot.driver.command(f"run dataset={PLATFORM_ID} model=qwen3-8b", user=BOB, channel=PRIV)  # the same channel may
    await plan_in(fake_slack, PRIV, 2)
    assert leaked(fake_slack, MARK) == []


async def test_status_audit_runs_home_and_mentions_show_only_the_viewers_channels(
    bot_factory: MakeBot, fake_slack: FakeSlack, members: None
) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), policy=STRICT)
    name = await private_upload_run(bot, fake_slack)
    shown = name.removeprefix("upload:")[:12]  # the random part of the upload's name
    before = len(fake_slack.calls)

    for text in ("status 1", "audit 1", "cancel 1", "teardown 1"):
        await bot.driver.command(text, user=MALLORY, channel=TEAM)
    await bot.driver.command("runs all", user=MALLORY, channel=TEAM)
    await bot.driver.command("runs", user=MALLORY, channel=TEAM)
    await bot.driver.command("spend", user=MALLORY, channel=TEAM)
    mention = fake_slack.user_says(TEAM, "<@UBOT> status of run 1", user=MALLORY)
    await bot.driver.event({**mention, "type": "app_mention"})
    home = {"type": "app_home_opened", "user": MALLORY, "channel": "D0MALLORY", "tab": "home", "event_ts": "1.1"}
    await bot.driver.event(home)
    await fake_slack.wait_for(lambda: fake_slack.home.get(MALLORY))
    await bot.settle()
    answers = [e["rendered"] for e in fake_slack.ephemerals(MALLORY)]
    assert sum("There is no run 1 in your channels" in a for a in answers) == 4, answers
    assert len(answers) == 7 and not any(re.search(r"#1\b", a) for a in answers), answers  # nor in any list
    seen = json.dumps(fake_slack.calls[before:])
    assert shown not in seen and "payroll" not in seen and not re.search(r"#1\b", json.dumps(fake_slack.home[MALLORY]))

    # A member of the private channel, and an admin who is not, see it.
    await bot.driver.command("status 1", user=BOB, channel=PRIV)
    await bot.driver.command("runs all", user=ERIN, channel=TEAM)
    assert "awaiting plan approval" in await said_to(fake_slack, BOB, "SFT run #1 by")
    assert "payroll" in await said_to(fake_slack, ERIN, "#1")


async def test_approvers_are_told_by_dm_only_about_runs_of_channels_they_are_in(
    bot_factory: MakeBot, fake_slack: FakeSlack, members: None
) -> None:
    policy = STRICT.model_copy(update={"approvers": [BOB, MALLORY]})
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), policy=policy, dm_approvers=True)
    await bot.driver.command(f"run dataset={TEXT2SQL.name} model=qwen3-8b", user=ALICE, channel=PRIV)
    await plan_in(fake_slack, PRIV, 1)
    await bot.settle()
    assert len(fake_slack.messages.get("D0BOB", [])) == 1  # in the private channel: told
    assert fake_slack.messages.get("D0MALLORY", []) == []  # not in it: a DM would name the run
