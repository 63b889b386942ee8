"""One true bill: every dollar figure of one run, collected from every surface — the Slack
messages, the App Home, `/sft spend`, `sftbot spend --json`, `sftbot show --json` and the
report — shows one $/h for the shipped deployment, and totals that agree to the cent. The run
goes through the real Bolt app on the fake Slack and the real Fireworks platform code (official
SDK) on the fake Fireworks; the commands are real processes on the bot's own database."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from bot.testing.fireworks import FakeFireworks
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, BOB, CHANNEL, MakeBot, has, in_thread, press, text_of
from pipeline.domain.authz import Policy
from pipeline.domain.catalog import price_table
from pipeline.domain.money import money
from pipeline.domain.records import Actor
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.platforms.fireworks.settings import FireworksSettings
from pipeline.run import events
from pipeline.store import runs
from pipeline.store.db import Database
from tests.bot.cli_support import fireworks_env, sftbot
from tests.handlers.slack_support import plan_posted
from tests.paths import DATASETS

RATE = re.compile(r"\$([0-9][0-9,]*(?:\.[0-9]+)?)/h\b")
RUN = f"run dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b"


def _rates(text: str) -> set[float]:
    return {float(m.replace(",", "")) for m in RATE.findall(text)}


def _everything(slack: FakeSlack) -> str:
    """Every message the bot left in the channel (roots and threads), as Slack shows them."""
    return "\n".join(text_of(m.view()) for m in slack.messages.get(CHANNEL, []))


async def _home(bot: Any, slack: FakeSlack, user: str, ts: str) -> str:
    slack.home.pop(user, None)
    await bot.driver.event({"type": "app_home_opened", "user": user, "channel": "D0X", "tab": "home", "event_ts": ts})
    return json.dumps(await slack.wait_for(lambda: slack.home.get(user)))


async def _spend_reply(bot: Any, slack: FakeSlack) -> str:
    before = len(slack.ephemerals(ALICE))
    await bot.driver.command("spend", user=ALICE)
    found = await slack.wait_for(lambda: [e for e in slack.ephemerals(ALICE)[before:] if "Spend, last" in e["rendered"]])
    return str(found[0]["rendered"])


async def test_every_surface_shows_one_rate_and_totals_that_agree_to_the_cent(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    data = Path(os.environ["SFTBOT_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    db = await Database.open(data / "sftbot.sqlite3")  # the database the sftbot commands read
    async with FakeFireworks(job_seconds=0.15, deployment_seconds=0.05) as fireworks:
        platform = FireworksPlatform(
            FireworksSettings(fireworks.api_key, fireworks.account, base_url=fireworks.base_url, poll_seconds=0.01)
        )
        try:
            bot = await bot_factory(platform, db=db, policy=Policy(approvers=[BOB]))
            root, plan_msg = await plan_posted(bot, fake_slack, text=RUN)
            await press(bot, plan_msg, "Approve", user=BOB)
            gate = await bot.log.wait_kind(events.PromotionRequested)
            promote = await in_thread(
                fake_slack, root, lambda m: any(b["type"] == "actions" for b in m["blocks"]) and "Promote #" in text_of(m)
            )
            await press(bot, promote, f"Promote #{gate.ranked[0].slot.number}", user=BOB)
            await in_thread(fake_slack, root, has("your model is live"))
            await bot.log.wait_kind(events.ReportReady)
            await bot.settle()
            run = await bot.runner.get(1)
            plan = await runs.get_plan(db, run.id)
            assert plan is not None and plan.cost.total_usd is not None

            # While the deployment is live: one $/h everywhere it is said.
            h100 = price_table().gpu_usd("NVIDIA_H100_80GB")
            assert h100 is not None
            expected_rate = plan.shapes["qwen3-8b"].count * h100
            live_slack = _everything(fake_slack)
            live_home = await _home(bot, fake_slack, ALICE, "1.1")
            live_spend_reply = await _spend_reply(bot, fake_slack)
            env = fireworks_env(fireworks)
            code, live_spend, err = await sftbot("spend", "--json", env=env)
            assert code == 0, err
            report = (Path(run.workspace) / "final_report.md").read_text(encoding="utf-8")
            rates = {
                "slack": _rates(live_slack),
                "app home": _rates(live_home),
                "/sft spend": _rates(live_spend_reply),
                "sftbot spend --json": {json.loads(live_spend)["runs"][0]["deployment_usd_per_hour"]},
                "report": _rates(report),
            }
            assert all(r == {expected_rate} for r in rates.values()), rates

            # Torn down: nothing accrues any more, so every total can be compared to the cent.
            await bot.runner.teardown(1, Actor(id=ALICE, name="alice"), channel=CHANNEL)
            await bot.settle()
            code, spend_out, err = await sftbot("spend", "--json", env=env)
            assert code == 0, err
            code, show_out, err = await sftbot("show", "1", "--json", env=env)
            assert code == 0, err
            spend_reply = await _spend_reply(bot, fake_slack)
            after_slack = _everything(fake_slack)
        finally:
            await platform.close()
            # aiosqlite's worker threads are not daemons: a database left open keeps pytest from exiting.
            await db.close()
    _totals_agree(json.loads(spend_out)["runs"][0], json.loads(show_out)["bill"], spend_reply, after_slack, report)
    root_text = text_of(root_after(fake_slack, root))
    assert f"≈ {money(json.loads(show_out)['bill']['spent_usd'])} spent of {money(run.approved_usd)} approved" in root_text
    assert (
        f"≈ {money(plan.cost.total_usd)}" in after_slack
        and json.loads(spend_out)["runs"][0]["estimated_usd"] == plan.cost.total_usd
    )
    assert f"| Training | {money(plan.cost.training_usd)} |" in report and f"| Total | {money(plan.cost.total_usd)} |" in report
    assert json.loads(show_out)["bill"]["deployment_usd_per_hour"] == expected_rate


def _totals_agree(spend_run: dict[str, Any], bill: dict[str, Any], spend_reply: str, after_slack: str, report: str) -> None:
    """After the teardown nothing accrues: sftbot spend, sftbot show, /sft spend and the final
    message give the same total to the cent; the report (written while the deployment was up)
    has the same jobs and a total no greater."""
    assert spend_run["deployment_usd_per_hour"] == bill["deployment_usd_per_hour"]
    assert bill["live"] == [] and bill["committed_usd"] == pytest.approx(bill["spent_usd"])  # all of it has run
    spent = money(bill["spent_usd"])
    assert money(spend_run["actual_usd"]) == spent  # sftbot spend == sftbot show
    assert f"{spent} spent" in spend_reply  # /sft spend
    assert f"≈ {spent} spent:" in after_slack  # the final message, made true again after the teardown
    assert "| Training | " in report and f"| {money(bill['training_usd'])} |" in report
    said_total = re.search(r"\| Total \| [^|]+ \| \$([0-9.,]+) \|", report)
    assert said_total is not None and float(said_total.group(1).replace(",", "")) <= bill["spent_usd"] + 0.005


def root_after(slack: FakeSlack, root: dict[str, Any]) -> dict[str, Any]:
    return next(m.view() for m in slack.messages.get(CHANNEL, []) if m.ts == root["ts"])
