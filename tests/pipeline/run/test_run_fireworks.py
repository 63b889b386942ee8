"""Whole runs on the fake Fireworks server through the real SDK: end to end, crash/restart at
every effect boundary, and fault injection. The fake's own records are the evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.testing.fireworks import FakeFireworks, Faults
from bot.testing.runs import EventLog
from bot.testing.runs import drive_to_end as drive
from pipeline.domain.machine import Phase
from pipeline.domain.provenance import ResourceKind
from pipeline.run import events
from pipeline.run.context import CheckpointStop
from pipeline.run.decisions import Approve, Promote
from pipeline.run.runner import Runner
from pipeline.store.db import Database
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ALICE, BOB, open_runner, running

INSTRUCTION = f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b parallel=2"
COLLECTIONS = ("datasets", "supervisedFineTuningJobs", "deployments")
EVAL_INSTRUCTION = f"{INSTRUCTION} eval=generate eval_examples=2"


def generic(checkpoint: str) -> str:
    """A checkpoint name without its run id, so boundaries match across runs."""
    return re.sub(r"sftbot-[0-9a-f]{8}", "sftbot-RUN", checkpoint)


class SimulatedCrash(Exception):
    """Raised at a checkpoint: the runner stops there as if the process had died."""


@pytest.fixture
async def fake() -> AsyncIterator[FakeFireworks]:
    async with FakeFireworks(job_seconds=0.15, deployment_seconds=0.05) as server:
        yield server


async def drive_to_end(runner: Runner, log: EventLog, run_id: str, *, promote: int | None = None) -> None:
    await drive(runner, log, run_id, actor=BOB, promote=promote or 1)


def assert_one_create_each(fake: FakeFireworks, *, loads: bool = False) -> None:
    for coll in (*COLLECTIONS, *(("deployedModels",) if loads else ())):
        counts = fake.create_counts(coll)
        assert counts and all(n == 1 for n in counts.values()), (coll, counts)


async def test_end_to_end_on_fake_fireworks(db: Database, fake: FakeFireworks, tmp_path: Path) -> None:
    async with running(db, fake, tmp_path / "runs") as (runner, log):
        run = await runner.start(INSTRUCTION, ALICE)
        await log.wait_kind(events.PlanProposed, run.id)
        await runner.decide(run.id, Approve(plan_version=1), BOB)
        gate = await log.wait_kind(events.PromotionRequested, run.id)
        ranked = gate.ranked
        assert len(ranked) == 3 and all(c.val_loss is not None for c in ranked)
        assert ranked[0].val_loss <= ranked[1].val_loss <= ranked[2].val_loss  # type: ignore[operator]
        await runner.decide(run.id, Promote(ranked[1].slot), BOB)  # the second best
        await log.wait_kind(events.ReportReady, run.id)
        await runner.wait(run.id)
        final = await runner.get(run.id)
        assert final.phase is Phase.SUCCEEDED, final.error
    assert_one_create_each(fake)
    assert fake.max_active_jobs <= 2  # the plan's parallel cap
    jobs = fake.create_counts("supervisedFineTuningJobs")
    assert set(jobs) == {f"sftbot-{run.id}-c{i}" for i in (1, 2, 3)} | {f"sftbot-{run.id}-final"}
    final_job = fake.jobs[f"sftbot-{run.id}-final"]
    assert (final_job.rank, final_job.lr) == (ranked[1].lora_rank, ranked[1].learning_rate)
    # the final run trains on the full train split and evaluates on the held-out split
    assert final_job.body["dataset"].endswith(f"sftbot-{run.id}-train")
    assert final_job.body["evaluationDataset"].endswith(f"sftbot-{run.id}-test")
    assert fake.calls("POST", r"/v1/chat/completions")  # the smoke test after READY
    report = (Path(final.workspace) / "final_report.md").read_text()
    for needle in (
        f"sftbot-{run.id}-dep",
        f"accounts/{fake.account}/models/sftbot-{run.id}-final",
        "promoted by bob",
        "from fireworks import Fireworks",
        "| Training |",
        f"sftbot-{run.id}-c3",
        "## Provenance",
        "### What keeps billing",
        "scales between 0 and 1 replica of 1 x H100 80GB",
        "Fireworks deletes it after 7 days without traffic",
        "`/sft teardown 1` (Slack) or `sftbot teardown 1`",
        "DEPLOYMENT_SCALING_UP",  # the snippet retries the scale-from-zero 503
    ):
        assert needle in report, needle
    assert fake.api_key not in report
    assert (Path(final.workspace) / "loss_curves.png").stat().st_size > 1000
    assert list((Path(final.workspace) / "metrics").glob("*.raw.jsonl"))  # raw metrics kept


async def _boundaries(db_path: Path, fake: FakeFireworks, runs: Path, instruction: str = INSTRUCTION) -> list[str]:
    """Every checkpoint name a clean run passes, in order."""
    seen: list[str] = []

    async def record(name: str) -> None:
        seen.append(generic(name))

    db = await Database.open(db_path)
    runner, log = open_runner(db, fake, runs, checkpoint=record)
    try:
        run = await runner.start(instruction, ALICE)
        await drive_to_end(runner, log, run.id)
        assert (await runner.get(run.id)).phase is Phase.SUCCEEDED
    finally:
        await runner.close()
        await runner.platform.close()
        await db.close()
    return seen


async def test_crash_and_restart_at_every_effect_boundary(tmp_path: Path) -> None:
    async with FakeFireworks(job_seconds=0.05, deployment_seconds=0.01) as probe:
        names = await _boundaries(tmp_path / "probe.sqlite3", probe, tmp_path / "probe-runs")
    # phases, datasets, jobs, deployment: recorded / created / finished (26 in this run)
    assert len(names) >= 20 and len(set(names)) == len(names)
    for i, boundary in enumerate(names):
        await _crash_and_resume(tmp_path, f"loss{i}", boundary, INSTRUCTION)


async def test_crash_and_restart_at_every_evaluation_boundary_loads_included(tmp_path: Path) -> None:
    """The boundaries an evaluator run adds (the shared deployment, each adapter load, the
    production deployment created by the evaluation): one create per resource, loads included."""
    async with FakeFireworks(job_seconds=0.05, deployment_seconds=0.01) as probe:
        plain = set(await _boundaries(tmp_path / "plain.sqlite3", probe, tmp_path / "plain-runs"))
    async with FakeFireworks(job_seconds=0.05, deployment_seconds=0.01) as probe:
        names = await _boundaries(tmp_path / "probe.sqlite3", probe, tmp_path / "probe-runs", EVAL_INSTRUCTION)
    assert len(set(names)) == len(names)
    new = [n for n in names if n not in plain or "deployment:" in n]
    assert sum(n.startswith("adapter:") for n in new) == 6  # 3 loads: recorded, loading
    assert any("-eval-b1:created" in n for n in new)
    for i, boundary in enumerate(new):
        await _crash_and_resume(tmp_path, f"eval{i}", boundary, EVAL_INSTRUCTION, loads=True)


async def test_crash_and_restart_around_hosted_evaluation_jobs(tmp_path: Path) -> None:
    """Path B's resources (the answers' dataset, the evaluation job) are recorded before their
    creates too: a crash around them never creates one twice."""
    hosted = f"{INSTRUCTION} eval=evaluator:accounts/test-acct/evaluators/exact eval_examples=2"
    async with FakeFireworks(job_seconds=0.05, deployment_seconds=0.01) as probe:
        probe.add_evaluator("exact")
        names = await _boundaries(tmp_path / "probe.sqlite3", probe, tmp_path / "probe-runs", hosted)
    chosen = [n for n in names if ("evalin-c1" in n or "evaljob-c1" in n or "evalin-final" in n or "evaljob-final" in n)]
    assert len(chosen) == 8  # per slot: dataset recorded, dataset ready, job recorded, job created
    for i, boundary in enumerate(chosen):
        await _crash_and_resume(tmp_path, f"hosted{i}", boundary, hosted, evaluator="exact")


async def test_every_kind_the_platform_creates_goes_through_create_once_with_both_checkpoints(tmp_path: Path) -> None:
    """The three crash tests above stop at every boundary of these runs; between them every kind
    of resource a run creates passes create_once's two checkpoints (recorded, then its answer)."""
    hosted = f"{INSTRUCTION} eval=evaluator:accounts/test-acct/evaluators/exact eval_examples=2"
    seen: dict[str, set[str]] = {}
    for tag, instruction in (("plain", INSTRUCTION), ("eval", EVAL_INSTRUCTION), ("hosted", hosted)):
        async with FakeFireworks(job_seconds=0.05, deployment_seconds=0.01) as probe:
            probe.add_evaluator("exact")
            for name in await _boundaries(tmp_path / f"{tag}.sqlite3", probe, tmp_path / f"{tag}-runs", instruction):
                seen.setdefault(name.split(":", 1)[0], set()).add(name.rsplit(":", 1)[-1])
    created_here = {k.value for k in ResourceKind if k.created_by_us}
    assert created_here == {"dataset", "job", "deployment", "adapter", "evaluation_job"}
    for kind in created_here:
        assert "recorded" in seen.get(kind, set()) and len(seen[kind]) >= 2, (kind, seen.get(kind))
    assert seen["adapter"] >= {"recorded", "loading"} and seen["evaluation_job"] >= {"recorded", "created"}


async def _crash_and_resume(
    tmp_path: Path, tag: str, boundary: str, instruction: str, *, loads: bool = False, evaluator: str | None = None
) -> None:
    async with FakeFireworks(job_seconds=0.05, deployment_seconds=0.01) as fake:
        if evaluator is not None:
            fake.add_evaluator(evaluator)
        db_path = tmp_path / f"crash-{tag}.sqlite3"
        hits = Counter[str]()

        async def crash(name: str, boundary: str = boundary, hits: Counter[str] = hits) -> None:
            name = generic(name)
            hits[name] += 1
            if name == boundary and hits[name] == 1:
                raise SimulatedCrash(name)

        db = await Database.open(db_path)
        runner, log = open_runner(db, fake, tmp_path / f"runs-{tag}", checkpoint=crash)
        run = await runner.start(instruction, ALICE)
        drive = asyncio.create_task(drive_to_end(runner, log, run.id))
        crashed = asyncio.create_task(runner.crashed.wait())
        await asyncio.wait({drive, crashed}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        assert runner.crashed.is_set(), f"never reached {boundary}"
        # A decision can hit the boundary too: then the stop surfaces in the caller.
        drive.cancel()
        with contextlib.suppress(asyncio.CancelledError, CheckpointStop):
            await drive
        crashed.cancel()
        await runner.close()
        await runner.platform.close()
        await db.close()
        # a new process: same database, same platform, nothing in memory
        db = await Database.open(db_path)
        runner, log = open_runner(db, fake, tmp_path / f"runs-{tag}")
        try:
            await runner.resume_all()
            await asyncio.wait_for(drive_to_end(runner, log, run.id), 60)
            after = await runner.get(run.id)
            assert after.phase is Phase.SUCCEEDED, (boundary, after.error)
        finally:
            await runner.close()
            await runner.platform.close()
            await db.close()
        assert_one_create_each(fake, loads=loads)
        if evaluator is not None:
            jobs = fake.create_counts("evaluationJobs")
            assert len(jobs) == 4 and set(jobs.values()) == {1}, jobs


async def test_fault_injection_still_finishes_every_run_without_duplicates(db: Database, tmp_path: Path) -> None:
    async with FakeFireworks(job_seconds=0.1, deployment_seconds=0.05) as fake:
        fake.faults = Faults(error_rate=0.2, drop_rate=0.03, slow_rate=0.02, slow_seconds=0.5)
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            runs = [await runner.start(INSTRUCTION, ALICE) for _ in range(3)]
            await asyncio.wait_for(asyncio.gather(*(drive_to_end(runner, log, r.id) for r in runs)), 120)
            for r in runs:
                after = await runner.get(r.id)
                assert after.phase is Phase.SUCCEEDED, after.error
        assert fake.faults.injected > 10
        assert_one_create_each(fake)
