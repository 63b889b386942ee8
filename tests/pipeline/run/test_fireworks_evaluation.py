"""Evaluation on Fireworks: candidates' outputs from one multi-LoRA deployment per base, the
final model scored on the production deployment, and a live-merge fallback when the base has
no addon shape. Through the real SDK against the fake; its records are the evidence."""

from __future__ import annotations

from pathlib import Path

from bot.testing.fireworks import FakeFireworks
from bot.testing.fireworks.shapes import shape
from bot.testing.runs import drive_to_end
from pipeline.domain.gates import QuestionKind
from pipeline.domain.machine import Phase
from pipeline.run import events
from pipeline.run.decisions import Approve, Promote
from pipeline.store import baselines, runs
from pipeline.store.db import Database
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ALICE, BOB, running

EVAL_RUN = f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b parallel=3 eval=generate eval_examples=4"
BASE = "accounts/fireworks/models/qwen3-8b"


async def test_three_candidates_share_one_evaluation_deployment_and_the_final_is_scored_on_production(
    db: Database, tmp_path: Path
) -> None:
    async with FakeFireworks(job_seconds=0.15, deployment_seconds=0.05) as fake:
        fake.chat_log = []
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(EVAL_RUN, ALICE)
            after = await drive_to_end(runner, log, run.id, actor=BOB, timeout=60)
            resources = {(r.kind, r.resource_id): r for r in await db.resources(run.id)}
        shared, prod = f"sftbot-{run.id}-eval-b1", f"sftbot-{run.id}-dep"
        assert after.phase is Phase.SUCCEEDED, after.error
        # 1 evaluation deployment (plus the production one): not one per candidate, no throw-away for the final.
        assert fake.create_counts("deployments") == {shared: 1, prod: 1}
        body = next(r.json for r in fake.calls("POST", r"/deployments$") if r.query.get("deploymentId") == shared)
        assert body["enableAddons"] is True and body["deploymentShape"].endswith("qwen3-8b-multi-lora")
        assert fake.deployments[shared].state(fake.clock.now()) == "DELETED"  # torn down once the sweep was scored
        assert resources[("deployment", shared)].state == "deleted" and resources[("deployment", prod)].state == "ready"
        loads = fake.create_counts("deployedModels")
        models = {f"accounts/{fake.account}/models/sftbot-{run.id}-c{i}" for i in (1, 2, 3)}
        assert loads == {f"{m}#accounts/{fake.account}/deployments/{shared}": 1 for m in models}
        assert {resources[("adapter", f"sftbot-{run.id}-load-c{i}")].state for i in (1, 2, 3)} == {"ready"}
        served = [entry["model"] for entry in fake.chat_log]
    for i in (1, 2, 3):  # each candidate answered its 4 held-out prompts from the shared deployment
        assert (
            served.count(f"accounts/{fake.account}/models/sftbot-{run.id}-c{i}#accounts/{fake.account}/deployments/{shared}") == 4
        )
    # The base answered the same prompts from the same deployment, under its own model string: no extra deployment.
    assert served.count(f"{BASE}#accounts/{fake.account}/deployments/{shared}") == 4
    on_prod = [m for m in served if m.endswith(f"/deployments/{prod}")]
    assert on_prod.count(f"accounts/{fake.account}/models/sftbot-{run.id}-final#accounts/{fake.account}/deployments/{prod}") == 5
    assert fake.cancels == []


async def test_a_base_without_an_addon_shape_falls_back_to_live_merge_per_candidate(db: Database, tmp_path: Path) -> None:
    async with FakeFireworks(job_seconds=0.15, deployment_seconds=0.05) as fake:
        fake.shapes[BASE] = [shape("qwen3-8b-fast", BASE, "NVIDIA_H100_80GB", 1, "FP8", addons=False)]  # no BF16 shape
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(EVAL_RUN, ALICE)
            after = await drive_to_end(runner, log, run.id, actor=BOB, timeout=60)
        assert after.phase is Phase.SUCCEEDED, after.error
        created = fake.create_counts("deployments")
        # One more short-lived deployment: the base model's own answers, for base vs tuned.
        assert created == {
            **{f"sftbot-{run.id}-eval-c{i}": 1 for i in (1, 2, 3)},
            f"sftbot-{run.id}-eval-base1": 1,
            f"sftbot-{run.id}-dep": 1,
        }
        assert not fake.create_counts("deployedModels")
        assert all(fake.deployments[d].state(fake.clock.now()) == "DELETED" for d in created if "-eval-" in d)
    plan = await runs.get_plan(db, run.id)
    assert plan is not None
    lines = {ln.label: ln for ln in plan.cost.lines}
    assert "3 short-lived live-merge deployments" in lines["evaluation outputs (qwen3-8b)"].detail
    assert "the base model's answers" in lines["base model outputs (qwen3-8b)"].detail
    assert lines["base model outputs (qwen3-8b)"].usd is not None
    base = await baselines.scores(db, run.id)
    assert base["qwen3-8b"].answered == 4 and base["qwen3-8b"].note is None and base["qwen3-8b"].score is not None


async def test_tuned_answers_identical_to_the_base_stop_the_run_before_deploy(db: Database, tmp_path: Path) -> None:
    async with FakeFireworks(job_seconds=0.15, deployment_seconds=0.05) as fake:
        fake.ignores_adapter = True  # a serving bug: every adapter answers as its base
        fake.chat_log = []
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(EVAL_RUN, ALICE)
            proposed = await log.wait_kind(events.PlanProposed, run.id)
            await runner.decide(run.id, Approve(plan_version=proposed.plan.version), BOB)
            gate = await log.wait_kind(events.PromotionRequested, run.id)
            assert gate.comparison is not None and gate.comparison.identical
            await runner.decide(run.id, Promote(gate.ranked[0].slot), BOB)
            asked = await log.wait_kind(events.QuestionAsked, run.id)
            await runner.wait(run.id)
            blocked = await runner.get(run.id)
            smoke_tests = [e for e in fake.chat_log if e["body"]["messages"][-1]["content"] == "Say OK."]
    assert blocked.phase is Phase.AWAITING_INPUT and asked.question.kind is QuestionKind.IDENTICAL_OUTPUTS
    assert "/sft teardown" in asked.question.text  # the production deployment bills while a person decides
    assert smoke_tests == [] and not any(isinstance(e, events.Deployed) for e in log.events)


async def test_a_create_refused_for_good_fails_that_candidate_only(db: Database, tmp_path: Path) -> None:
    """A non-retryable create error (400) late in a sweep: that candidate fails with the platform's
    sentence; the others' running jobs are never cancelled and the run goes on."""
    async with FakeFireworks(job_seconds=0.3, deployment_seconds=0.05) as fake:
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b parallel=2", ALICE)
            fake.refused_job_creates[f"sftbot-{run.id}-c3"] = "invalid loraRank for this base model"
            after = await drive_to_end(runner, log, run.id, actor=BOB, timeout=60)
        cands = {str(c.slot): c for c in await runs.candidates(db, run.id)}
    assert after.phase is Phase.SUCCEEDED, after.error
    assert cands["c3"].state == "failed" and "invalid loraRank for this base model" in (cands["c3"].message or "")
    assert cands["c1"].state == "completed" and cands["c2"].state == "completed"
    assert fake.cancels == []


async def test_a_failed_addon_deployment_falls_back_to_live_merge_per_candidate(db: Database, tmp_path: Path) -> None:
    """Field reports: some bases' addon deployments go FAILED. Each candidate is then evaluated by
    live merge, audited and said on its scoreboard line, and the run goes on."""
    async with FakeFireworks(job_seconds=0.15, deployment_seconds=0.05) as fake:
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(EVAL_RUN, ALICE)
            fake.fail_deployments[f"sftbot-{run.id}-eval-b1"] = "INTERNAL: the BF16 addon shape failed to start"
            after = await drive_to_end(runner, log, run.id, actor=BOB, timeout=60)
        assert after.phase is Phase.SUCCEEDED, after.error
        created = fake.create_counts("deployments")
        assert {f"sftbot-{run.id}-eval-c{i}" for i in (1, 2, 3)} <= set(created)  # one live merge each
        assert created[f"sftbot-{run.id}-eval-b1"] == 1  # the shared one was made once, not once per candidate
    trail = [e for e in await db.audit_trail(run.id) if e.action == "addon_fallback"]
    assert len(trail) == 3 and "failed to start" in str(trail[0].details["reason"])
    notes = {str(c.slot): c.note for c in await runs.candidates(db, run.id)}
    assert all((notes[f"c{i}"] or "").startswith("evaluated by live merge") for i in (1, 2, 3)), notes
