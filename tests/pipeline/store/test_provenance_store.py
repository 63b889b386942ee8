"""Provenance in the store: a database made by the migrations before typed provenance is carried
forward (error out of the state column, money out of the details), and every write of a row
passes the lifecycle's guard, refused moves leaving nothing behind."""

from __future__ import annotations

import json
import sqlite3
import time
from importlib import resources
from pathlib import Path

import pytest

from pipeline.domain.provenance import Change, DeploymentRate, IllegalMove, Ref, ResourceKind, ResourceState
from pipeline.domain.records import Actor, CandidateRecord, NewRun
from pipeline.domain.slots import CandidateState, Slot
from pipeline.domain.spec import RunSpec
from pipeline.store import runs
from pipeline.store.db import Database, statements

TYPED = 8  # the migration that made provenance typed
NEW = NewRun(requester=Actor(id="U1"), instruction="x", spec=RunSpec(), platform="fireworks", workspace_root="/w")


def _old_database(path: Path) -> None:
    """A database as the migrations before ``TYPED`` left it, with a run's resources written the old way."""
    folder = resources.files("pipeline.store").joinpath("migrations")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql") and int(entry.name[:3]) < TYPED:
            for statement in statements(entry.read_text(encoding="utf-8")):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (int(entry.name[:3]), entry.name))
    now = time.time()
    for run_id, number, platform in (("r1", 1, "fireworks"), ("r2", 2, "local")):
        conn.execute(
            "INSERT INTO runs(id, number, requester, instruction, spec_json, platform, phase, workspace, created_at, updated_at)"
            " VALUES (?, ?, 'U1', 'run', '{}', ?, 'succeeded', '/w', ?, ?)",
            (run_id, number, platform, now, now),
        )
        conn.execute(
            "INSERT INTO plan_versions(run_id, version, plan_json, status, created_at) VALUES (?, 1, ?, 'approved', ?)",
            (run_id, json.dumps({"version": 1, "platform": platform}), now),
        )
    conn.execute(
        "INSERT INTO candidates(run_id, slot, job_id, base_model, lora_rank, learning_rate, epochs, train_samples, state,"
        " cost_usd, updated_at) VALUES ('r1', 'c1', 'sftbot-r1-c1', 'qwen3-8b', 8, 1e-4, 1, 10, 'completed', 0.42, ?)",
        (now,),
    )
    rows = [
        ("deployment", "sftbot-r1-dep", "ready", {"model": "m", "usd_per_hour": 4.0, "kept_at": 100.0, "scaled_to_zero_at": 200}),
        (
            "deployment",
            "sftbot-r1-eval-c1",
            "teardown failed: deployment is busy (FAILED_PRECONDITION)",
            {"purpose": "evaluation"},
        ),
        ("job", "sftbot-r1-c1", "completed", {}),
        ("job", "sftbot-r1-c2", "submitting", {}),
        ("dataset", "sftbot-r1-train", "ready", {}),
    ]
    for kind, rid, state, details in rows:
        conn.execute(
            "INSERT INTO resources(kind, resource_id, run_id, name, state, details_json, created_at, updated_at)"
            " VALUES (?, ?, 'r1', '', ?, ?, ?, ?)",
            (kind, rid, state, json.dumps(details), now, now),
        )
    conn.commit()
    conn.close()


async def test_a_database_from_before_typed_provenance_is_carried_forward(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    _old_database(path)
    db = await Database.open(path)
    try:
        assert (await db.applied_migrations())[TYPED - 1] == "008_provenance_and_platform_facts.sql"
        found = {r.resource_id: r for r in await db.resources("r1")}
        dep = found["sftbot-r1-dep"]
        assert dep.rate == DeploymentRate(usd_per_hour=4.0) and dep.usd_per_hour == 4.0
        assert (dep.kept_at, dep.scaled_to_zero_at, dep.details) == (100.0, 200.0, {"model": "m"})
        failed = found["sftbot-r1-eval-c1"]
        assert failed.state is ResourceState.DELETE_FAILED
        assert failed.error == "deployment is busy (FAILED_PRECONDITION)" and failed.details == {"purpose": "evaluation"}
        assert found["sftbot-r1-c1"].estimated_usd == 0.42 and found["sftbot-r1-c1"].state is ResourceState.COMPLETED
        assert found["sftbot-r1-c2"].state is ResourceState.RECORDED
        assert found["sftbot-r1-train"].state is ResourceState.READY and found["sftbot-r1-train"].rate is None
        # Whether a run's platform bills money is now stored, for the run and its plans: free exactly when it was local.
        billed = {r.id: r.billed for r in await runs.list_runs(db)}
        plans = await db.fetchall("SELECT run_id, json_extract(plan_json, '$.billed') FROM plan_versions ORDER BY run_id")
        assert billed == {"r1": True, "r2": False} and [tuple(p) for p in plans] == [("r1", 1), ("r2", 0)]
        # The converted rows move on under the guard like new ones.
        async with db.write() as tx:
            await db.move_resource(tx, "r1", failed.ref, ResourceState.DELETED)
        assert (await db.resource(failed.ref)) is not None
        assert (await db.resource(failed.ref)).error is None  # type: ignore[union-attr]  # the new move's error
    finally:
        await db.close()


async def test_a_refused_move_raises_and_writes_nothing_of_its_transaction(db: Database) -> None:
    async with db.write() as tx:
        await runs.insert_run(tx, NEW)
    run_id = (await runs.list_runs(db))[0].id
    dep = Ref(kind=ResourceKind.DEPLOYMENT, id=f"sftbot-{run_id}-dep")
    rate = DeploymentRate(usd_per_hour=2.5, gpu_count=1, accelerator="NVIDIA_H100_80GB", priced_at="2026-10-08")
    async with db.write() as tx:
        await db.move_resource(tx, run_id, dep, ResourceState.RECORDED, Change(rate=rate, details={"purpose": "production"}))
        await db.move_resource(tx, run_id, dep, ResourceState.CREATED)
        await db.move_resource(tx, run_id, dep, ResourceState.DELETED)
    with pytest.raises(IllegalMove, match="a deployment cannot move from deleted to ready"):
        async with db.write() as tx:
            await tx.audit(run_id=run_id, actor="t", action="would be lost")
            await db.move_resource(tx, run_id, dep, ResourceState.READY)
    row = await db.resource(dep)
    assert row is not None and row.state is ResourceState.DELETED and row.rate == rate
    assert row.details == {"purpose": "production"}  # kept through the moves that did not name it
    assert [a.action for a in await db.audit_trail(run_id)] == []  # the refused transaction left nothing
    with pytest.raises(IllegalMove, match="a model cannot move from a new row to recorded"):
        async with db.write() as tx:
            await db.move_resource(tx, run_id, Ref(kind=ResourceKind.MODEL, id="m"), ResourceState.RECORDED)


async def test_a_candidate_moves_only_through_the_guard(db: Database) -> None:
    async with db.write() as tx:
        run = await runs.insert_run(tx, NEW)
        cand = CandidateRecord(
            run_id=run.id, slot=Slot.candidate(1), job_id="j", base_model="b", lora_rank=8, learning_rate=1e-4, epochs=1,
            train_samples=1,
        )  # fmt: skip
        await runs.insert_candidate(tx, cand)
        await runs.set_state(tx, run.id, cand.slot, CandidateState.SUBMITTING)
        await runs.set_state(tx, run.id, cand.slot, CandidateState.CANCELLED, message="never created")
    with pytest.raises(IllegalMove, match="a candidate cannot move from cancelled to running"):
        async with db.write() as tx:
            await runs.set_state(tx, run.id, cand.slot, CandidateState.RUNNING)
    assert [c.state for c in await runs.candidates(db, run.id)] == [CandidateState.CANCELLED]
