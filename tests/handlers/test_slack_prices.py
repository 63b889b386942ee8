"""The plan a person approves on the fake Fireworks: an H100 shape priced at the dated price
table's H100 rate, a deployment said as the open-ended rate it is, and a header total that is
exactly the sum of the fields under it (training + evaluation + the deployment's first hour)."""

from __future__ import annotations

import re

import pytest

from bot.testing.fireworks import FakeFireworks
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import MakeBot, text_of
from pipeline.domain.catalog import price_table
from pipeline.domain.money import money
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.platforms.fireworks.settings import FireworksSettings
from pipeline.store import runs
from tests.handlers.slack_support import plan_posted
from tests.paths import TEXT2SQL

DOLLARS = re.compile(r"\$([0-9][0-9,]*\.?[0-9]*)")


def _field(text: str, name: str) -> str:
    """The value of one plan field ("*Training*\n$0.45") in the rendered text."""
    found = re.search(rf"\*{name}\*\s*\n?([^\n*]+)", text)
    assert found is not None, f"no {name} field in {text!r}"
    return found.group(1)


def _usd(text: str) -> float:
    found = DOLLARS.search(text)
    assert found is not None, text
    return float(found.group(1).replace(",", ""))


async def test_an_h100_plan_prices_at_the_dated_rate_and_its_fields_add_up_to_its_total(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    async with FakeFireworks(job_seconds=0.1, deployment_seconds=0.05) as fireworks:
        fireworks.add_dataset("support-sql", {"train.jsonl": TEXT2SQL.read_bytes()})
        platform = FireworksPlatform(
            FireworksSettings(fireworks.api_key, fireworks.account, base_url=fireworks.base_url, poll_seconds=0.01)
        )
        try:
            bot = await bot_factory(platform)
            instruction = f"dataset=accounts/{fireworks.account}/datasets/support-sql model=qwen3-8b eval=generate"
            _, posted = await plan_posted(bot, fake_slack, text=f"run {instruction}")
            plan = await runs.get_plan(bot.runner.db, (await bot.runner.get(1)).id)
        finally:
            await platform.close()
    assert plan is not None and plan.shapes["qwen3-8b"].accelerator == "NVIDIA_H100_80GB"  # the fake's default shape
    table = price_table()
    h100 = table.gpu_rate("NVIDIA_H100_80GB")
    assert h100 is not None and h100.usd is not None and h100.source in table.sources  # a dated figure with its source
    first_hour = next(ln for ln in plan.cost.lines if ln.label == "deployment (first hour)")
    assert first_hour.usd == pytest.approx(plan.shapes["qwen3-8b"].count * h100.usd * table.deployment_hours_in_estimate)
    assert plan.cost.deployment_usd_per_hour == pytest.approx(h100.usd)
    assert table.gpu_hour_by_accelerator.as_of in first_hour.detail
    # The evaluation deployments are a line of their own, and lines add up to the total.
    c = plan.cost
    assert c.training_usd and c.evaluation_usd and c.deployment_first_usd and c.total_usd
    assert round(c.training_usd + c.evaluation_usd + c.deployment_first_usd, 6) == pytest.approx(c.total_usd)
    # What the people approving read: header ≈ total, the same sum over the fields under it.
    text = text_of(posted)
    assert f"≈ {money(c.total_usd)}" in text.split("\n", 1)[0]
    fields = {name: _field(text, name) for name in ("Training", "Evaluation", "Deployment")}
    assert _usd(fields["Training"]) + _usd(fields["Evaluation"]) + _usd(fields["Deployment"]) == pytest.approx(
        round(c.total_usd, 2), abs=0.015
    )
    assert fields["Deployment"].startswith(
        f"${h100.usd:.0f}/h until deleted or scaled to zero (first hour in this estimate; the idle guard asks after 24 h)"
    )
