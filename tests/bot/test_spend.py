"""`sftbot spend` and `/sft spend`: per run, person and channel, estimated vs actual, and what
still bills. The report and `sftbot spend --json` read the same ledger, so they agree."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from bot.testing.fireworks import FakeFireworks
from bot.testing.memory_platform import MemoryPlatform
from bot.testing.runs import drive_to_end
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE as ALICE_ID
from bot.testing.slack_app import MakeBot
from handlers.commands import CommandError, parse_slash
from handlers.render.spend_summary import spend_message
from pipeline.domain.machine import Phase
from pipeline.domain.money import money
from pipeline.domain.provenance import DeploymentRate, ResourceState
from pipeline.domain.records import Resource
from pipeline.planning.ledger import ledger
from pipeline.run.decisions import RaiseBudget
from pipeline.run.spending import parse_since, spend
from pipeline.store import runs
from tests.bot.cli_support import cli_store, sftbot
from tests.handlers.slack_support import plan_posted
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ALICE, BOB

DATA = DATASETS / "text2sql_dataset.jsonl"


def test_windows_are_days_hours_or_weeks_and_anything_else_says_what_to_type() -> None:
    assert parse_since("30d") == 30 * 86400 and parse_since("12h") == 12 * 3600 and parse_since("2w") == 14 * 86400
    with pytest.raises(ValueError, match=r"e\.g\. 30d, 12h, 2w"):
        parse_since("yesterday")
    assert parse_slash("spend 7d").window == "7d" and parse_slash("spend").window == "30d"
    with pytest.raises(CommandError, match="`/sft spend` takes a window"):
        parse_slash("spend everything")


def test_a_live_deployment_bills_by_the_hour_until_it_is_deleted() -> None:
    up = Resource(kind="deployment", resource_id="d1", run_id="r", state="ready", rate=DeploymentRate(usd_per_hour=9.0),
                  created_at=0.0, updated_at=0.0)  # fmt: skip
    gone = up.model_copy(update={"resource_id": "d2", "state": ResourceState.DELETED, "updated_at": 1800.0})
    book = ledger([], [up, gone], None, approved_usd=10.0, now=7200.0)
    assert book.deployments_usd == 18.0 + 4.5 and book.live_usd_per_hour == 9.0
    assert [ln.running for ln in book.lines] == [True, False] and book.cap_usd == 12.0 and book.warning


async def test_the_report_and_sftbot_spend_json_agree_on_every_runs_actual_cost(tmp_path: Path) -> None:
    async with FakeFireworks(job_seconds=0.05, deployment_seconds=0.05) as fake, cli_store(fake) as (db, runner, log):
        plain = await runner.start(f"dataset={DATA} model=qwen3-8b candidates=8:1e-4 final=no deploy=no", ALICE)
        await drive_to_end(runner, log, plain.id, actor=BOB)
        fake.cost_factor = 3.0  # the second run overruns, and an approver raises its cap
        dear = await runner.start(f"dataset={DATA} model=qwen3-8b parallel=3 deploy=no", ALICE)
        while (await runner.get(dear.id)).phase is not Phase.SUCCEEDED:
            run = await runner.get(dear.id)
            if run.phase is Phase.AWAITING_BUDGET:
                await runner.decide(dear.id, RaiseBudget(), BOB)
            else:
                await drive_once(runner, log, dear.id)
        finished = [await runner.get(plain.id), await runner.get(dear.id)]
        reported = {r.number: sum(c.cost_usd or 0 for c in await runs.candidates(db, r.id)) for r in finished}
        in_process = await spend(db)
    code, out, err = await sftbot("spend", "--json", env=dict(os.environ))
    assert code == 0, err
    shown = {r["number"]: r for r in json.loads(out)["runs"]}
    assert set(shown) == {1, 2}
    for run in finished:
        row = shown[run.number]
        report = (Path(run.workspace) / "final_report.md").read_text()
        total = re.search(r"^\| Total \| [^|]+ \| ([^|]+) \|", report, re.M)
        assert total is not None and total.group(1).strip() == money(row["actual_usd"]), (total, row)
        assert run.actual_usd == pytest.approx(row["actual_usd"]) and row["actual_usd"] > 0
        assert row["training_usd"] == pytest.approx(reported[run.number])  # the platform's own job figures
    assert shown[2]["approved_usd"] > shown[2]["estimated_usd"]  # the raise is on record
    assert shown[2]["actual_usd"] > 2.5 * shown[2]["estimated_usd"]
    message = spend_message(in_process, days=30)
    text = " ".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    assert "*#2*" in text and money(shown[2]["actual_usd"]) in text


async def drive_once(runner, log, run_id: str) -> None:  # type: ignore[no-untyped-def]
    """One gate decided (approve, promote #1) or one event waited for."""
    from pipeline.domain.slots import Slot
    from pipeline.run.decisions import Approve, Promote

    mark = len(log.events)
    run = await runner.get(run_id)
    if run.phase is Phase.AWAITING_PLAN_APPROVAL:
        await runner.decide(run_id, Approve(plan_version=run.plan_version), BOB)
    elif run.phase is Phase.AWAITING_PROMOTION:
        await runner.decide(run_id, Promote(Slot.candidate(1)), BOB)
    elif not run.phase.finished:
        await log.wait_for(lambda e: e.run.id == run_id, timeout=30, since=mark)


async def test_slash_spend_answers_privately_with_the_teams_runs(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform())
    await plan_posted(bot, fake_slack)
    await bot.driver.command("spend 7d", user=ALICE_ID)
    answer = await fake_slack.wait_for(
        lambda: [e for e in fake_slack.ephemerals(ALICE_ID) if "Spend, last 7 days" in e["rendered"]]
    )
    assert "*#1*" in answer[-1]["rendered"] and "of est" in answer[-1]["rendered"]
    await bot.driver.command("spend forever", user=ALICE_ID)
    await fake_slack.wait_for(lambda: any("takes a window such as" in e["rendered"] for e in fake_slack.ephemerals(ALICE_ID)))
