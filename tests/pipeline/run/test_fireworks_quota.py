"""Quota and capacity are back-pressure, not failure: whole runs on the fake Fireworks whose
job quota or capacity refuses creates, through the real SDK. The fake's records (creates,
cancels, the most jobs ever active) are the evidence."""

from __future__ import annotations

from pathlib import Path

from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import drive_to_end
from handlers.notifier import live_message
from pipeline.domain.machine import Phase
from pipeline.domain.slots import CandidateState
from pipeline.run import events
from pipeline.store import runs
from pipeline.store.db import Database
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ALICE, BOB, running

SIX = (
    f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b final=no deploy=no "
    "candidates=8:1e-4,16:1e-4,32:1e-4,8:5e-5,16:5e-5,32:5e-5"
)


async def test_six_candidates_on_a_quota_of_two_all_train_and_nothing_is_cancelled(db: Database, tmp_path: Path) -> None:
    async with FakeFireworks(job_seconds=0.15, job_quota=2) as fake:
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(SIX, ALICE)
            after = await drive_to_end(runner, log, run.id, actor=BOB, timeout=60)
            cands = await runs.candidates(db, run.id)
        assert after.phase is Phase.SUCCEEDED, after.error
        plan_parallel = 6  # the plan's default: the quota, not the plan, held it to two
        assert len(cands) == plan_parallel and all(c.state is CandidateState.COMPLETED for c in cands)
        assert all(c.note is None for c in cands)  # the waits are over: no stale "waiting" line
        refused = [r for r in fake.calls("POST", r"/supervisedFineTuningJobs$") if r.status == 429]
        assert refused, "the quota never refused a create: the test proves nothing"
        assert fake.cancels == [] and not fake.calls("POST", r":cancel$")  # zero cancels of running jobs
        assert all(n == 1 for n in fake.create_counts("supervisedFineTuningJobs").values())
        assert len(fake.create_counts("supervisedFineTuningJobs")) == 6
        assert fake.max_active_jobs == 2
    waits = [e for e in log.events if isinstance(e, events.QuotaWait)]
    assert waits and all(w.running == 2 for w in waits)
    assert "quota_exceeded" in waits[0].reason
    # What the Slack scoreboard showed at the first wait: the queued candidates and why.
    board = live_message(waits[0])
    lines = [b["elements"][0]["text"] for b in board.blocks if b["type"] == "context"]
    assert any("waiting for quota (2 running)" in line and "#3" in line for line in lines), lines
    trail = [a.action for a in await db.audit_trail(run.id)]
    assert "job_queued" in trail and "job_cancelled" not in trail


async def test_capacity_refusals_queue_the_job_and_the_run_goes_on(db: Database, tmp_path: Path) -> None:
    async with FakeFireworks(job_seconds=0.1) as fake:
        fake.job_capacity_refusals = 3
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(SIX.replace("candidates=8:1e-4,16:1e-4,32:1e-4,", "candidates="), ALICE)
            after = await drive_to_end(runner, log, run.id, actor=BOB, timeout=60)
        assert after.phase is Phase.SUCCEEDED, after.error
        assert fake.job_capacity_refusals == 0 and fake.cancels == []
        assert len(fake.create_counts("supervisedFineTuningJobs")) == 3
    waits = [e for e in log.events if isinstance(e, events.QuotaWait)]
    assert waits and "no available capacity" in waits[0].reason


async def test_when_nothing_can_start_for_the_give_up_time_the_run_fails_in_one_sentence(db: Database, tmp_path: Path) -> None:
    async with FakeFireworks(job_seconds=0.1, job_quota=0) as fake:  # another team holds the whole quota
        async with running(db, fake, tmp_path / "runs", quota_give_up_seconds=0.5) as (runner, log):
            run = await runner.start(SIX, ALICE)
            after = await drive_to_end(runner, log, run.id, actor=BOB, timeout=30)
        assert after.phase is Phase.FAILED
        assert after.error is not None and after.error.startswith("The platform refused to start any of the 6 waiting jobs")
        assert "quota_exceeded" in after.error and after.error.count(". ") == 0  # one sentence
        assert fake.jobs == {} and fake.cancels == []
