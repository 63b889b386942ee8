"""One planner: `sftbot plan --json` (a real process) and the plan a Slack run posts (the real
Bolt app on the fake Slack) are made by the same planner with the same read-only lookups on the
fake Fireworks, so they give the same total. Both stage a platform dataset to inspect it, which
`sftbot plan` used to refuse, and both price the deployment from its looked-up shape, which
`sftbot plan` used to leave unknown."""

from __future__ import annotations

import json
import os

from bot.testing.fireworks import FakeFireworks
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import MakeBot, text_of
from pipeline.domain.money import money
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.platforms.fireworks.settings import FireworksSettings
from pipeline.store import runs
from tests.bot.cli_support import sftbot
from tests.handlers.slack_support import plan_posted
from tests.paths import TEXT2SQL


async def test_sftbot_plan_json_and_the_slack_plan_give_the_same_total(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    async with FakeFireworks(job_seconds=0.1, deployment_seconds=0.05) as fireworks:
        fireworks.add_dataset("support-sql", {"train.jsonl": TEXT2SQL.read_bytes()})
        instruction = f"dataset=accounts/{fireworks.account}/datasets/support-sql model=qwen3-8b"
        platform = FireworksPlatform(
            FireworksSettings(fireworks.api_key, fireworks.account, base_url=fireworks.base_url, poll_seconds=0.01)
        )
        try:
            bot = await bot_factory(platform)
            _, posted = await plan_posted(bot, fake_slack, text=f"run {instruction}")
            run = await bot.runner.get(1)
            slack_plan = await runs.get_plan(bot.runner.db, run.id)
        finally:
            await platform.close()
        downloads = len(fireworks.calls("GET", r"/datasets/support-sql:getDownloadEndpoint$"))
        shapes = len(fireworks.calls(None, r"deploymentShapeVersions"))
        env = {
            **os.environ,
            "FIREWORKS_API_KEY": fireworks.api_key,
            "FIREWORKS_ACCOUNT_ID": fireworks.account,
            "FIREWORKS_BASE_URL": fireworks.base_url,
        }
        code, out, err = await sftbot("plan", "--json", instruction, env=env)
        assert code == 0, err
        cli_plan = json.loads(out)
        # The same lookups the run made: the platform dataset staged again, the shape matched again.
        assert len(fireworks.calls("GET", r"/datasets/support-sql:getDownloadEndpoint$")) == downloads + 1 and downloads == 1
        assert len(fireworks.calls(None, r"deploymentShapeVersions")) == 2 * shapes and shapes >= 1
    assert slack_plan is not None and slack_plan.cost.total_usd is not None
    assert cli_plan["cost"]["total_usd"] == slack_plan.cost.total_usd
    assert f"≈ {money(slack_plan.cost.total_usd)}" in text_of(posted)  # what the people approving read
    deployment = [ln for ln in cli_plan["cost"]["lines"] if ln["label"] == "deployment (first hour)"]
    assert len(deployment) == 1 and deployment[0]["usd"] is not None and "not looked up" not in deployment[0]["detail"]
    assert cli_plan["samples"] == slack_plan.samples and cli_plan["dataset"] == slack_plan.dataset
