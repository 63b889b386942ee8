"""Foreign Fireworks accounts are named, and evaluator code is an admin's tool when it may run
unsandboxed: through the real Bolt app, the fake Slack and (for hosted evaluators) the real
Fireworks platform code against the fake Fireworks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.engine import policy_from
from bot.testing.fireworks import FakeFireworks
from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, BOB, CHANNEL, MakeBot, has, in_thread, press, root_of, settings_for
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.platforms.fireworks.settings import FireworksSettings
from pipeline.store import runs
from tests.handlers.slack_support import opened
from tests.handlers.test_slack_evaluation import EXACT
from tests.paths import TEXT2SQL

ERIN = "U0ERIN"  # an admin


@pytest.fixture
async def fireworks() -> AsyncIterator[tuple[FakeFireworks, FireworksPlatform]]:
    async with FakeFireworks(account="acme", job_seconds=5.0, deployment_seconds=0.05) as fake:
        settings = FireworksSettings(fake.api_key, fake.account, base_url=fake.base_url, poll_seconds=0.01, retry_base_delay=0.01)
        platform = FireworksPlatform(settings)
        try:
            yield fake, platform
        finally:
            await platform.close()


async def refusal(slack: FakeSlack, user: str, fragment: str) -> str:
    said = await slack.wait_for(lambda: [e for e in slack.ephemerals(user) if fragment in e["rendered"]])
    return str(said[-1]["rendered"])


async def test_a_dataset_or_evaluator_of_another_account_is_refused_unless_an_admin_listed_it(
    bot_factory: MakeBot, fake_slack: FakeSlack, fireworks: tuple[FakeFireworks, FireworksPlatform]
) -> None:
    fake, platform = fireworks
    fake.add_evaluator("judge", account="rival")
    bot = await bot_factory(platform, fireworks_account_id="acme")
    await bot.driver.command("run dataset=accounts/rival/datasets/rows model=qwen3-8b", user=ALICE)
    said = await refusal(fake_slack, ALICE, "in the Fireworks account 'rival'")
    assert "not this bot's ('acme')" in said and "SFTBOT_FOREIGN_ACCOUNTS" in said and "\n" not in said.strip()
    await bot.driver.command(
        f"run dataset={TEXT2SQL.name} model=qwen3-8b eval=evaluator:accounts/rival/evaluators/judge", user=ALICE
    )
    said = await refusal(fake_slack, ALICE, "the evaluator accounts/rival/evaluators/judge")
    await bot.settle()
    assert await runs.list_runs(bot.runner.db) == []  # nothing started
    assert not fake.calls("GET", r"/accounts/rival/")  # and the other account was never asked


async def test_the_plan_says_whose_evaluator_it_is(
    bot_factory: MakeBot, fake_slack: FakeSlack, fireworks: tuple[FakeFireworks, FireworksPlatform]
) -> None:
    fake, platform = fireworks
    fake.add_evaluator("exact")
    fake.add_evaluator("judge", account="partner")
    bot = await bot_factory(platform, fireworks_account_id="acme", foreign_accounts="partner")
    await bot.driver.command(
        f"run dataset={TEXT2SQL.name} model=qwen3-8b eval=evaluator:accounts/partner/evaluators/judge", user=ALICE
    )
    plan = await in_thread(fake_slack, await root_of(fake_slack, 1), has("Plan v1"))
    spec = await opened(bot, fake_slack, plan, "Evaluation spec")  # how candidates are judged: one click away
    assert "in the account 'partner' (allowed by SFTBOT_FOREIGN_ACCOUNTS)" in spec
    assert "your" not in spec.split("How candidates are judged")[1].split("\n")[0]
    await bot.driver.command(
        f"run dataset={TEXT2SQL.name} model=qwen3-8b eval=evaluator:accounts/acme/evaluators/exact", user=BOB
    )
    plan = await in_thread(fake_slack, await root_of(fake_slack, 2), has("Plan v1"))
    assert "in this bot's account 'acme'" in await opened(bot, fake_slack, plan, "Evaluation spec")


async def test_with_unsafe_evaluators_only_an_admin_supplies_an_evaluator_file(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    folder = tmp_path / "evaluators"
    folder.mkdir()
    (folder / "exact.py").write_text(EXACT)
    settings = settings_for(fake_slack, unsafe_evaluators=True, admins=ERIN, channels=CHANNEL)
    policy = policy_from(settings)  # what `sftbot serve` makes of SFTBOT_UNSAFE_EVALUATORS=true
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), policy=policy, evaluator_dir=folder, ask_evaluation=True)
    await bot.driver.command(f"run dataset={TEXT2SQL.name} model=qwen3-8b eval=evaluator:exact.py", user=ALICE)
    said = await refusal(fake_slack, ALICE, "only an admin can supply an evaluator file")
    assert f"<@{ERIN}>" in said and "eval=generate" in said
    await bot.settle()
    assert await runs.list_runs(bot.runner.db) == []
    denied = await bot.runner.db.fetchall("SELECT actor, details_json FROM audit_events WHERE action='denied_start'")
    assert [r[0] for r in denied] == [ALICE] and "evaluator_code" in denied[0][1]

    await bot.driver.command(f"run dataset={TEXT2SQL.name} model=qwen3-8b eval=evaluator:exact.py", user=ERIN)
    await in_thread(fake_slack, await root_of(fake_slack, 1), has("Plan v1"))
    await bot.driver.command(f"run dataset={TEXT2SQL.name} model=qwen3-8b", user=ALICE)  # no evaluator file: fine...
    question = await in_thread(fake_slack, await root_of(fake_slack, 2), has("How should I judge"))
    await press(bot, question, "Use my evaluator", user=ALICE)  # ...until she offers one
    await fake_slack.wait_for(
        lambda: len([e for e in fake_slack.ephemerals(ALICE) if "only an admin can supply" in e["rendered"]]) == 2
    )
    await press(bot, question, "Validation loss is fine", user=ALICE)
    await in_thread(fake_slack, await root_of(fake_slack, 2), has("Plan v1"))
