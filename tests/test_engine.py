"""The runner end to end on the in-process fake platform: gates, decisions, events, audit."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.authz import Policy
from pipeline.events import EventKind
from pipeline.machine import Event, Phase, Refused
from pipeline.runner import Denied
from pipeline.store import runs as q
from pipeline.store.db import GateAlreadyDecided
from pipeline.store.records import Actor
from tests.conftest import DATASETS
from tests.fakes.memory_platform import MemoryPlatform

ALICE = Actor(id="U_ALICE", name="alice")
BOB = Actor(id="U_BOB", name="bob")
TEXT2SQL = str(DATASETS / "text2sql_dataset.jsonl")


async def test_whole_run_through_both_gates(make_runner) -> None:
    platform = MemoryPlatform()
    runner, log = await make_runner(platform)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b", ALICE)
    proposed = await log.wait_kind(EventKind.PLAN_PROPOSED, run.id)
    assert proposed.plan_version == 1
    await runner.decide(run.id, Event.APPROVE, BOB, plan_version=1)
    gate = await log.wait_kind(EventKind.PROMOTION_REQUESTED, run.id)
    assert next(c.idx for c in gate.candidates) == 2  # lr 1e-4 has the lowest fake loss
    assert Path(gate.files["loss_curves.png"]).stat().st_size > 1000
    await runner.decide(run.id, Event.PROMOTE, BOB, candidate=1)  # not the best: people may choose
    await log.wait_kind(EventKind.REPORT_READY, run.id)
    await runner.wait(run.id)
    final = await runner.get(run.id)
    assert final.phase is Phase.SUCCEEDED
    assert final.winner == 1
    cands = await q.candidates(runner.db, run.id)
    final_job = next(c for c in cands if c.idx == 0)
    assert final_job.learning_rate == 1.5e-4 and final_job.lora_rank == 8  # the promoted config
    assert all(n == 1 for n in platform.creates.values())
    report = (Path(final.workspace) / "final_report.md").read_text()
    assert "promoted by bob" in report and f"sftbot-{run.id}-dep" in report
    actions = [a.action for a in await runner.db.audit_trail(run.id)]
    assert actions.index("approve") < actions.index("promote") < actions.index("reported")


async def test_gate_is_decided_once(make_runner) -> None:
    runner, log = await make_runner(MemoryPlatform())
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b", ALICE)
    await log.wait_kind(EventKind.PLAN_PROPOSED, run.id)
    await runner.decide(run.id, Event.APPROVE, BOB, plan_version=1)
    with pytest.raises(GateAlreadyDecided) as info:
        await runner.decide(run.id, Event.APPROVE, ALICE, plan_version=1)
    assert "bob" in str(info.value)


async def test_revision_makes_a_new_version_and_old_approval_is_refused(make_runner) -> None:
    runner, log = await make_runner(MemoryPlatform())
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b", ALICE)
    await log.wait_kind(EventKind.PLAN_PROPOSED, run.id)
    new_spec = run.spec.model_copy(update={"epochs": 2})
    await runner.decide(run.id, Event.REVISE, ALICE, plan_version=1, spec=new_spec)
    v2 = await log.wait_for(lambda e: e.kind is EventKind.PLAN_PROPOSED and e.plan_version == 2)
    assert v2.run.plan_version == 2
    plan = await q.get_plan(runner.db, run.id, 2)
    assert plan is not None and plan.candidates[0].epochs == 2
    assert (await q.plan_statuses(runner.db, run.id)) == {1: "superseded", 2: "proposed"}
    with pytest.raises((GateAlreadyDecided, Refused)):
        await runner.decide(run.id, Event.APPROVE, BOB, plan_version=1)
    await runner.decide(run.id, Event.APPROVE, BOB, plan_version=2)
    await log.wait_kind(EventKind.PROMOTION_REQUESTED, run.id)


async def test_denied_click_is_audited_and_changes_nothing(make_runner) -> None:
    runner, log = await make_runner(MemoryPlatform(), policy=Policy(approvers=["U_BOB"], allow_self_approval=False))
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b", ALICE)
    await log.wait_kind(EventKind.PLAN_PROPOSED, run.id)
    with pytest.raises(Denied):
        await runner.decide(run.id, Event.APPROVE, ALICE, plan_version=1)
    assert (await runner.get(run.id)).phase is Phase.AWAITING_PLAN_APPROVAL
    trail = await runner.db.audit_trail(run.id)
    assert trail[-1].action == "denied_approve" and trail[-1].actor == "U_ALICE"


async def test_cancel_mid_sweep_cancels_only_this_runs_jobs(make_runner) -> None:
    platform = MemoryPlatform()
    platform.hold = True
    runner, log = await make_runner(platform)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b", ALICE)
    await log.wait_kind(EventKind.PLAN_PROPOSED, run.id)
    await runner.decide(run.id, Event.APPROVE, BOB, plan_version=1)
    await log.wait_kind(EventKind.SCOREBOARD_CHANGED, run.id)
    await runner.decide(run.id, Event.CANCEL, ALICE)
    await log.wait_kind(EventKind.CANCELLED, run.id)
    assert platform.cancelled == set(platform.jobs)
    assert all(j.startswith(f"sftbot-{run.id}-") for j in platform.cancelled)
    assert (await runner.get(run.id)).phase is Phase.CANCELLED


async def test_blocking_dataset_fails_before_anything_is_spent(make_runner) -> None:
    platform = MemoryPlatform()
    runner, log = await make_runner(platform)
    run = await runner.start(f"dataset={DATASETS / 'chat_minimal.jsonl'} model=qwen3-8b", ALICE)
    failed = await log.wait_kind(EventKind.FAILED, run.id)
    assert "fewer than 3" in failed.text.lower() or "minimum" in failed.text.lower()
    assert not platform.jobs and not platform.datasets


async def test_missing_model_asks_and_answer_continues(make_runner) -> None:
    runner, log = await make_runner(MemoryPlatform())
    run = await runner.start(f"dataset={TEXT2SQL}", ALICE)
    asked = await log.wait_kind(EventKind.QUESTION_ASKED, run.id)
    assert asked.question is not None and asked.question.what == "base_model" and "qwen3-8b" in asked.question.choices
    await runner.decide(run.id, Event.ANSWER, ALICE, answer="qwen3-8b")
    proposed = await log.wait_kind(EventKind.PLAN_PROPOSED, run.id)
    assert proposed.run.spec.base_models == ("qwen3-8b",)


async def test_all_candidates_failing_fails_the_run_with_each_error(make_runner) -> None:
    platform = MemoryPlatform()
    runner, log = await make_runner(platform)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b", ALICE)
    platform.fail_jobs = {f"sftbot-{run.id}-c{i}" for i in (1, 2, 3)}
    await log.wait_kind(EventKind.PLAN_PROPOSED, run.id)
    await runner.decide(run.id, Event.APPROVE, BOB, plan_version=1)
    failed = await log.wait_kind(EventKind.FAILED, run.id)
    assert failed.text.count("out of memory") == 3
