"""The runner end to end on the in-process fake platform: gates, decisions, events, audit."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.testing.memory_platform import MemoryPlatform
from pipeline.domain.authz import Policy
from pipeline.domain.gates import QuestionKind
from pipeline.domain.machine import Phase
from pipeline.domain.records import Actor
from pipeline.domain.slots import FINAL, Slot
from pipeline.run.decisions import Answer, Approve, Cancel, Promote, Refusal, RefusalKind, Revise
from pipeline.run.events import (
    PlanProposed,
    PromotionRequested,
    QuestionAsked,
    ReportReady,
    RunCancelled,
    RunFailed,
)
from pipeline.store import runs
from tests.paths import DATASETS
from tests.pipeline.run_support import mid_sweep

ALICE = Actor(id="U_ALICE", name="alice")
BOB = Actor(id="U_BOB", name="bob")
TEXT2SQL = str(DATASETS / "text2sql_dataset.jsonl")


async def test_whole_run_through_both_gates(make_runner) -> None:
    platform = MemoryPlatform()
    runner, log = await make_runner(platform)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b", ALICE)
    proposed = await log.wait_kind(PlanProposed, run.id)
    assert proposed.plan.version == 1
    await runner.decide(run.id, Approve(plan_version=1), BOB)
    gate = await log.wait_kind(PromotionRequested, run.id)
    assert gate.ranked[0].slot == Slot.candidate(2)  # lr 1e-4 has the lowest fake loss
    assert gate.curves is not None and gate.curves.stat().st_size > 1000
    await runner.decide(run.id, Promote(Slot.candidate(1)), BOB)  # not the best: people may choose
    await log.wait_kind(ReportReady, run.id)
    await runner.wait(run.id)
    final = await runner.get(run.id)
    assert final.phase is Phase.SUCCEEDED
    assert final.promoted == Slot.candidate(1)
    cands = await runs.candidates(runner.db, run.id)
    final_job = next(c for c in cands if c.slot == FINAL)
    assert final_job.learning_rate == 1.5e-4 and final_job.lora_rank == 8  # the promoted config
    assert all(n == 1 for n in platform.creates.values())
    report = (Path(final.workspace) / "final_report.md").read_text()
    assert "promoted by bob" in report and f"sftbot-{run.id}-dep" in report
    actions = [a.action for a in await runner.db.audit_trail(run.id)]
    assert actions.index("approve") < actions.index("promote") < actions.index("reported")


async def test_gate_is_decided_once(make_runner) -> None:
    runner, log = await make_runner(MemoryPlatform())
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b", ALICE)
    await log.wait_kind(PlanProposed, run.id)
    await runner.decide(run.id, Approve(plan_version=1), BOB)
    with pytest.raises(Refusal) as info:
        await runner.decide(run.id, Approve(plan_version=1), ALICE)
    assert info.value.kind is RefusalKind.DECIDED
    assert "already approved by bob" in info.value.sentence()


async def test_revision_makes_a_new_version_and_old_approval_is_refused(make_runner) -> None:
    runner, log = await make_runner(MemoryPlatform())
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b", ALICE)
    await log.wait_kind(PlanProposed, run.id)
    new_spec = run.spec.model_copy(update={"epochs": 2})
    await runner.decide(run.id, Revise(new_spec, plan_version=1), ALICE)
    v2 = await log.wait_for(lambda e: isinstance(e, PlanProposed) and e.plan.version == 2)
    assert v2.run.plan_version == 2
    plan = await runs.get_plan(runner.db, run.id, 2)
    assert plan is not None and plan.candidates[0].epochs == 2
    assert (await runs.plan_statuses(runner.db, run.id)) == {1: "superseded", 2: "proposed"}
    with pytest.raises(Refusal) as info:
        await runner.decide(run.id, Approve(plan_version=1), BOB)
    assert info.value.kind is RefusalKind.DECIDED and "already revised by alice" in info.value.sentence()
    await runner.decide(run.id, Approve(plan_version=2), BOB)
    await log.wait_kind(PromotionRequested, run.id)


async def test_a_plan_version_from_the_future_is_refused(make_runner) -> None:
    runner, log = await make_runner(MemoryPlatform())
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b", ALICE)
    await log.wait_kind(PlanProposed, run.id)
    with pytest.raises(Refusal) as info:
        await runner.decide(run.id, Approve(plan_version=7), BOB)
    assert info.value.kind is RefusalKind.INVALID and "no plan v7" in info.value.sentence()
    assert (await runner.get(run.id)).phase is Phase.AWAITING_PLAN_APPROVAL


async def test_denied_click_is_audited_and_changes_nothing(make_runner) -> None:
    runner, log = await make_runner(MemoryPlatform(), policy=Policy(approvers=["U_BOB"], allow_self_approval=False))
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b", ALICE)
    await log.wait_kind(PlanProposed, run.id)
    with pytest.raises(Refusal) as info:
        await runner.decide(run.id, Approve(plan_version=1), ALICE)
    assert info.value.kind is RefusalKind.DENIED
    assert (await runner.get(run.id)).phase is Phase.AWAITING_PLAN_APPROVAL
    trail = await runner.db.audit_trail(run.id)
    assert trail[-1].action == "denied_approve" and trail[-1].actor == "U_ALICE"


async def test_cancel_mid_sweep_cancels_only_this_runs_jobs(make_runner) -> None:
    platform = MemoryPlatform()
    platform.hold = True
    runner, log = await make_runner(platform)
    run = await mid_sweep(runner, log, by=ALICE, approver=BOB)
    await runner.decide(run.id, Cancel(), ALICE)
    cancelled = await log.wait_kind(RunCancelled, run.id)
    assert cancelled.actor is not None and cancelled.actor.id == ALICE.id
    assert platform.cancelled == set(platform.jobs)
    assert all(j.startswith(f"sftbot-{run.id}-") for j in platform.cancelled)
    assert (await runner.get(run.id)).phase is Phase.CANCELLED


async def test_a_job_that_finished_before_the_cancel_keeps_its_model(make_runner) -> None:
    platform = MemoryPlatform(polls_to_finish=10_000)
    runner, log = await make_runner(platform)
    run = await mid_sweep(runner, log, by=ALICE, approver=BOB)
    platform.finish_on_cancel = {f"sftbot-{run.id}-c1"}  # it completes just as the cancel arrives
    await runner.decide(run.id, Cancel(), ALICE)
    await log.wait_kind(RunCancelled, run.id)
    states = {str(c.slot): c.state.value for c in await runs.candidates(runner.db, run.id)}
    assert states == {"c1": "completed", "c2": "cancelled", "c3": "cancelled"}


async def test_blocking_dataset_fails_before_anything_is_spent(make_runner) -> None:
    platform = MemoryPlatform()
    runner, log = await make_runner(platform)
    run = await runner.start(f"dataset={DATASETS / 'chat_minimal.jsonl'} model=qwen3-8b", ALICE)
    failed = await log.wait_kind(RunFailed, run.id)
    assert "fewer than 3" in failed.reason.lower() or "minimum" in failed.reason.lower()
    assert not platform.jobs and not platform.uploaded


async def test_missing_model_asks_and_answer_continues(make_runner) -> None:
    runner, log = await make_runner(MemoryPlatform())
    run = await runner.start(f"dataset={TEXT2SQL}", ALICE)
    asked = await log.wait_kind(QuestionAsked, run.id)
    assert asked.question.kind is QuestionKind.BASE_MODEL and "qwen3-8b" in asked.question.choices
    with pytest.raises(Refusal) as info:  # the button of an earlier question
        await runner.decide(run.id, Answer("qwen3-8b", question=asked.question.number + 1), ALICE)
    assert info.value.kind is RefusalKind.STALE
    await runner.decide(run.id, Answer("qwen3-8b", question=asked.question.number), ALICE)
    proposed = await log.wait_kind(PlanProposed, run.id)
    assert proposed.run.spec.base_models == ("qwen3-8b",)


async def test_all_candidates_failing_fails_the_run_with_each_error(make_runner) -> None:
    platform = MemoryPlatform()
    runner, log = await make_runner(platform)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b", ALICE)
    platform.fail_jobs = {f"sftbot-{run.id}-c{i}" for i in (1, 2, 3)}
    await log.wait_kind(PlanProposed, run.id)
    await runner.decide(run.id, Approve(plan_version=1), BOB)
    failed = await log.wait_kind(RunFailed, run.id)
    assert failed.reason.count("out of memory") == 3


async def test_a_restart_after_the_end_cancels_jobs_left_active(make_runner, db) -> None:
    platform = MemoryPlatform()
    platform.hold = True
    runner, log = await make_runner(platform)
    run = await mid_sweep(runner, log, by=ALICE, approver=BOB)
    await runner.close()
    async with db.write() as tx:  # as if the process died right after committing the failure
        await runs.update_run(tx, run.id, runs.RunChanges(error="stopped"), phase=Phase.FAILED)
    again, _ = await make_runner(platform)
    await again.resume_all()
    assert platform.cancelled == set(platform.jobs)
