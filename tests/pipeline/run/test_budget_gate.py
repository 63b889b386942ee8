"""The money guard's cap on the fake Fireworks through the real SDK: a run whose jobs cost 3x
their estimate stops before its final run, shows the numbers, creates nothing new, and goes
on only when an approver approves more (or skips the step)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import EventLog
from pipeline.domain.authz import Policy
from pipeline.domain.gates import BudgetStep
from pipeline.domain.machine import Phase
from pipeline.domain.records import RunRecord
from pipeline.domain.slots import FINAL, Slot
from pipeline.planning.ledger import ledger
from pipeline.run import events
from pipeline.run.decisions import Approve, Promote, RaiseBudget, Refusal, RefusalKind, SkipStep
from pipeline.run.runner import Runner
from pipeline.store import runs
from pipeline.store.db import Database
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ALICE, BOB, running

# Three candidates on the whole (small) train split, then a final run of the same size: at 3x,
# the sweep alone spends more than the cap (approved x 1.2) allows with the final run on top.
INSTRUCTION = f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b parallel=3 deploy=no"


@contextlib.asynccontextmanager
async def on_fake(
    db: Database, tmp_path: Path, *, cost_factor: float = 1.0, **config: Any
) -> AsyncIterator[tuple[FakeFireworks, Runner, EventLog]]:
    """A runner on the fake Fireworks (the real SDK) whose jobs bill ``cost_factor`` x the price table."""
    async with FakeFireworks(job_seconds=0.1) as fake:
        fake.cost_factor = cost_factor
        async with running(db, fake, tmp_path / "runs", **config) as (runner, log):
            yield fake, runner, log


async def finished(runner: Runner, log: EventLog, run_id: str) -> RunRecord:
    await log.wait_kind(events.ReportReady, run_id)
    await runner.wait(run_id)
    return await runner.get(run_id)


async def _approve_and_promote(runner: Runner, log: EventLog, run_id: str) -> None:
    """Bob approves plan v1, then promotes candidate #1 when the sweep asks."""
    await log.wait_kind(events.PlanProposed, run_id)
    await runner.decide(run_id, Approve(plan_version=1), BOB)
    await log.wait_kind(events.PromotionRequested, run_id)
    await runner.decide(run_id, Promote(Slot.candidate(1)), BOB)


async def _to_budget_gate(runner: Runner, log: EventLog, run_id: str) -> events.BudgetRequested:
    await _approve_and_promote(runner, log, run_id)
    gate: events.BudgetRequested = await log.wait_kind(events.BudgetRequested, run_id)
    return gate


async def test_jobs_at_three_times_their_estimate_stop_before_the_final_run_until_more_is_approved(
    db: Database, tmp_path: Path
) -> None:
    policy = Policy(approvers=[BOB.id], allow_self_approval=False)
    async with on_fake(db, tmp_path, cost_factor=3.0, policy=policy) as (fake, runner, log):
        run = await runner.start(INSTRUCTION, ALICE)
        gate = await _to_budget_gate(runner, log, run.id)
        req = gate.request
        waiting = await runner.get(run.id)
        plan = await runs.get_plan(db, run.id, waiting.plan_version)
        assert plan is not None
        # The numbers: approved = the plan's estimate; spent = what the platform reported.
        assert waiting.phase is Phase.AWAITING_BUDGET and req.step is BudgetStep.FINAL
        assert req.approved_usd == round(plan.cost.total_usd or 0, 2)
        cands = await runs.candidates(db, run.id)
        reported = sum(c.cost_usd or 0 for c in cands)
        assert (
            abs(req.spent_usd - reported) < 0.01 and req.overrun is not None and 2.5 < req.overrun < 4.5
        )  # 3x, and the fake counts tokens its own way
        assert req.spent_usd + req.next_usd > req.cap_usd == round(req.approved_usd * 1.2, 2)
        assert abs(req.approved_usd + req.more_usd - (req.spent_usd + req.next_usd)) < 0.02
        # Nothing new is created while it waits: three sweep jobs, no final job.
        assert len(fake.create_counts("supervisedFineTuningJobs")) == 3 and FINAL not in {c.slot for c in cands}
        # The requester cannot approve their own overrun (four eyes), and it is audited.
        try:
            await runner.decide(run.id, RaiseBudget(), ALICE)
            raise AssertionError("the requester raised their own cap")
        except Refusal as refusal:
            assert refusal.kind is RefusalKind.DENIED
        assert len(fake.create_counts("supervisedFineTuningJobs")) == 3
        await runner.decide(run.id, RaiseBudget(number=req.number), BOB)
        done = await finished(runner, log, run.id)
    assert done.phase is Phase.SUCCEEDED, done.error
    assert done.approved_usd == round(req.approved_usd + req.more_usd, 2) and done.budget is None
    jobs = fake.create_counts("supervisedFineTuningJobs")
    assert len(jobs) == 4 and all(n == 1 for n in jobs.values())  # the final job, once
    trail = [(a.action, a.actor) for a in await db.audit_trail(run.id)]
    assert ("over_budget", "sftbot") in trail and ("raise_budget", BOB.id) in trail and ("denied_raise_budget", ALICE.id) in trail
    decision = next(g for g in await db.gate_decisions(run.id) if str(g.gate) == "budget:1")
    assert decision.details["more_usd"] == req.more_usd


async def test_skipping_the_final_run_ships_the_promoted_candidate(db: Database, tmp_path: Path) -> None:
    async with on_fake(db, tmp_path, cost_factor=3.0) as (fake, runner, log):
        run = await runner.start(INSTRUCTION, ALICE)
        await _to_budget_gate(runner, log, run.id)
        await runner.decide(run.id, SkipStep(), BOB)
        done = await finished(runner, log, run.id)
        cands = await runs.candidates(db, run.id)
        book = ledger(cands, await db.resources(run.id), None, approved_usd=done.approved_usd, now=0.0)
    assert done.phase is Phase.SUCCEEDED, done.error
    assert len(fake.create_counts("supervisedFineTuningJobs")) == 3  # no final job was ever created
    assert done.approved_usd is not None and book.spent_usd > done.approved_usd  # nothing was raised
    assert "skip_step" in [a.action for a in await db.audit_trail(run.id)]


async def test_a_run_within_its_estimate_never_meets_the_gate(db: Database, tmp_path: Path) -> None:
    async with on_fake(db, tmp_path) as (_, runner, log):
        run = await runner.start(INSTRUCTION, ALICE)
        await _approve_and_promote(runner, log, run.id)
        done = await finished(runner, log, run.id)
    assert done.phase is Phase.SUCCEEDED, done.error
    assert not [e for e in log.events if isinstance(e, events.BudgetRequested)]


async def test_the_80_percent_warning_is_said_before_the_final_run_is_created_and_once(db: Database, tmp_path: Path) -> None:
    async with on_fake(db, tmp_path) as (fake, runner, log):
        created_when_said: list[int] = []

        async def count_jobs(e: events.RunEvent) -> None:  # published before the step goes on
            if isinstance(e, events.SpendWarning):
                created_when_said.append(len(fake.create_counts("supervisedFineTuningJobs")))

        runner.bus.subscribe(count_jobs)
        run = await runner.start(INSTRUCTION, ALICE)
        await _approve_and_promote(runner, log, run.id)
        done = await finished(runner, log, run.id)
        jobs = len(fake.create_counts("supervisedFineTuningJobs"))
    assert done.phase is Phase.SUCCEEDED, done.error
    said = [e for e in log.events if isinstance(e, events.SpendWarning)]
    assert [e.step for e in said] == [BudgetStep.FINAL]  # said once, for the step that crosses 80%
    assert created_when_said == [3] and jobs == 4  # before the final job existed: the sweep's three only
    warning = said[0]
    assert warning.committed_usd < 0.8 * warning.cap_usd <= warning.committed_usd + warning.step_usd
    assert "past 80%" in warning.sentence() and "the final run (≈ $" in warning.sentence()
    assert [a.action for a in await db.audit_trail(run.id)].count("spend_warning") == 1
