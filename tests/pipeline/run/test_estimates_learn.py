"""Estimates that learn: finished runs leave estimate vs actual; after three of the same size
band on the same platform, the next plan's range is made from them, and says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.testing.fireworks import FakeFireworks
from pipeline.domain.machine import Phase
from pipeline.domain.slots import Slot
from pipeline.planning.history import MIN_RUNS, Outcome, calibrate
from pipeline.run import events
from pipeline.run.decisions import Approve, Promote
from pipeline.store import outcomes, runs
from pipeline.store.db import Database
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ALICE, BOB, running

QUICK = f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b candidates=8:1e-4 final=no deploy=no"


def outcome(ratio: float, at: float) -> Outcome:
    return Outcome(platform="fireworks", band="up to 16B", phase="training", estimated_usd=1.0, actual_usd=ratio, at=at)


def test_fewer_than_three_runs_keep_the_default_range_and_say_why() -> None:
    cal = calibrate([outcome(1.0, 1), outcome(1.1, 2)], default_low=0.7, default_high=1.3)
    assert (cal.low, cal.high) == (0.7, 1.3) and f"{MIN_RUNS} needed" in cal.basis


def test_runs_close_to_their_estimates_narrow_the_range_but_never_below_the_floor() -> None:
    cal = calibrate([outcome(1.0, t) for t in range(5)], default_low=0.7, default_high=1.3)
    assert cal.low == pytest.approx(0.9) and cal.high == pytest.approx(1.1)  # +-10% floor around 1.0
    assert "actual was 1.00–1.00× the estimate (5 run(s))" in cal.basis


def test_runs_far_above_their_estimates_move_the_range_up() -> None:
    cal = calibrate([outcome(r, t) for t, r in enumerate((2.8, 3.0, 3.1))], default_low=0.7, default_high=1.3)
    assert cal.low > 1.3 and cal.high >= 3.1  # the range follows reality, outside the default


async def test_after_three_runs_of_a_size_band_the_fourth_plan_is_narrower_and_says_why(db: Database, tmp_path: Path) -> None:
    async with FakeFireworks(job_seconds=0.05) as fake:
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            plans = []
            for _ in range(3):
                run = await runner.start(QUICK, ALICE)
                await log.wait_kind(events.PlanProposed, run.id)
                plans.append(await runs.get_plan(db, run.id, 1))
                await runner.decide(run.id, Approve(plan_version=1), BOB)
                await log.wait_kind(events.PromotionRequested, run.id)
                await runner.decide(run.id, Promote(Slot.candidate(1)), BOB)
                await runner.wait(run.id)
                assert (await runner.get(run.id)).phase is Phase.SUCCEEDED
            fourth = await runner.start(QUICK, ALICE)
            await log.wait_kind(events.PlanProposed, fourth.id)
            plan4 = await runs.get_plan(db, fourth.id, 1)
            learned = await outcomes.recent(db, platform="fireworks", band="up to 16B", phase="training")
    first = plans[0]
    assert first is not None and plan4 is not None
    assert first.cost.low_usd is not None and first.cost.high_usd is not None
    assert plan4.cost.low_usd is not None and plan4.cost.high_usd is not None
    assert first.cost.calibration is not None and "0 finished run(s)" in first.cost.calibration
    assert len(learned) == 3 and all(o.estimated_usd > 0 and o.actual_usd > 0 for o in learned)
    width = (first.cost.high_usd - first.cost.low_usd) / (first.cost.total_usd or 1)
    width4 = (plan4.cost.high_usd - plan4.cost.low_usd) / (plan4.cost.total_usd or 1)
    assert width4 < width, (width, width4)
    assert plan4.cost.calibration is not None and "recent runs of this size: actual was" in plan4.cost.calibration
    assert "(3 run(s))" in plan4.cost.calibration
