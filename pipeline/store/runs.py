"""Reads and writes of runs, plan versions and candidates (parameterised SQL only)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import aiosqlite

from pipeline.machine import Phase
from pipeline.plan import Plan
from pipeline.platforms.base import JobStatus
from pipeline.spec import RunSpec
from pipeline.store.db import Database, Tx
from pipeline.store.records import CandidateRecord, Question, RunRecord


def _run(r: aiosqlite.Row) -> RunRecord:
    return RunRecord(
        id=r["id"],
        number=r["number"],
        requester=r["requester"],
        requester_name=r["requester_name"],
        instruction=r["instruction"],
        spec=RunSpec.model_validate_json(r["spec_json"]),
        platform=r["platform"],
        phase=Phase(r["phase"]),
        plan_version=r["plan_version"],
        question=Question.model_validate_json(r["question_json"]) if r["question_json"] else None,
        winner=r["winner"],
        error=r["error"],
        workspace=r["workspace"],
        estimated_usd=r["estimated_usd"],
        actual_usd=r["actual_usd"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def _cand(r: aiosqlite.Row) -> CandidateRecord:
    d = dict(r)
    d["stalled"] = bool(d["stalled"])
    return CandidateRecord.model_validate(d)


async def insert_run(
    tx: Tx, *, requester: str, requester_name: str, instruction: str, spec: RunSpec, platform: str, workspace_root: str
) -> RunRecord:
    """A new run in ``inspecting``; its id is random so resource ids never collide across bots."""
    row = await (await tx.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM runs")).fetchone()
    number = int(row[0]) if row else 1
    run_id = secrets.token_hex(4)
    now = time.time()
    workspace = f"{workspace_root}/{number:04d}-{run_id}"
    await tx.execute(
        "INSERT INTO runs(id, number, requester, requester_name, instruction, spec_json, platform, phase, workspace, created_at, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            run_id,
            number,
            requester,
            requester_name,
            instruction,
            spec.model_dump_json(),
            platform,
            Phase.INSPECTING.value,
            workspace,
            now,
            now,
        ),
    )
    return RunRecord(
        id=run_id,
        number=number,
        requester=requester,
        requester_name=requester_name,
        instruction=instruction,
        spec=spec,
        platform=platform,
        phase=Phase.INSPECTING,
        workspace=workspace,
        created_at=now,
        updated_at=now,
    )


async def get_run(db: Database, key: str | int) -> RunRecord | None:
    """By id, or by number ("12" or "#12" or 12)."""
    text = str(key).lstrip("#")
    if text.isdigit():
        row = await db.fetchone("SELECT * FROM runs WHERE number=?", (int(text),))
        if row is not None:
            return _run(row)
    row = await db.fetchone("SELECT * FROM runs WHERE id=?", (text,))
    return None if row is None else _run(row)


async def list_runs(db: Database, *, requester: str | None = None, limit: int = 20, unfinished: bool = False) -> list[RunRecord]:
    sql = "SELECT * FROM runs"
    where: list[str] = []
    params: list[Any] = []
    if requester:
        where.append("requester=?")
        params.append(requester)
    if unfinished:
        where.append("phase NOT IN ('succeeded','failed','cancelled')")
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY number DESC LIMIT ?"
    params.append(limit)
    return [_run(r) for r in await db.fetchall(sql, tuple(params))]


async def update_run(tx: Tx, run_id: str, **fields: Any) -> None:
    allowed = {"phase", "plan_version", "question_json", "winner", "error", "estimated_usd", "actual_usd", "spec_json"}
    bad = set(fields) - allowed
    assert not bad, bad
    cols = ", ".join(f"{k}=?" for k in fields)
    await tx.execute(f"UPDATE runs SET {cols}, updated_at=? WHERE id=?", (*fields.values(), time.time(), run_id))


async def read_run(tx: Tx, run_id: str) -> RunRecord:
    row = await (await tx.execute("SELECT * FROM runs WHERE id=?", (run_id,))).fetchone()
    assert row is not None, run_id
    return _run(row)


async def save_plan(tx: Tx, run_id: str, plan: Plan) -> None:
    """Store plan version n and mark older proposed versions superseded."""
    await tx.execute("UPDATE plan_versions SET status='superseded' WHERE run_id=? AND status='proposed'", (run_id,))
    await tx.execute(
        "INSERT OR REPLACE INTO plan_versions(run_id, version, plan_json, status, created_at) VALUES (?,?,?,?,?)",
        (run_id, plan.version, plan.model_dump_json(), "proposed", time.time()),
    )


async def set_plan_status(tx: Tx, run_id: str, version: int, status: str) -> None:
    await tx.execute("UPDATE plan_versions SET status=? WHERE run_id=? AND version=?", (status, run_id, version))


async def get_plan(db: Database, run_id: str, version: int | None = None) -> Plan | None:
    if version is None:
        row = await db.fetchone("SELECT plan_json FROM plan_versions WHERE run_id=? ORDER BY version DESC LIMIT 1", (run_id,))
    else:
        row = await db.fetchone("SELECT plan_json FROM plan_versions WHERE run_id=? AND version=?", (run_id, version))
    return None if row is None else Plan.model_validate_json(row[0])


async def plan_statuses(db: Database, run_id: str) -> dict[int, str]:
    rows = await db.fetchall("SELECT version, status FROM plan_versions WHERE run_id=?", (run_id,))
    return {int(r[0]): str(r[1]) for r in rows}


async def insert_candidate(tx: Tx, c: CandidateRecord) -> None:
    await tx.execute(
        "INSERT OR IGNORE INTO candidates(run_id, idx, job_id, base_model, lora_rank, learning_rate, epochs, train_samples, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (c.run_id, c.idx, c.job_id, c.base_model, c.lora_rank, c.learning_rate, c.epochs, c.train_samples, time.time()),
    )


async def candidates(db: Database, run_id: str) -> list[CandidateRecord]:
    return [_cand(r) for r in await db.fetchall("SELECT * FROM candidates WHERE run_id=? ORDER BY idx", (run_id,))]


async def set_submit_state(tx: Tx, run_id: str, idx: int, submit_state: str) -> None:
    await tx.execute(
        "UPDATE candidates SET submit_state=?, updated_at=? WHERE run_id=? AND idx=?", (submit_state, time.time(), run_id, idx)
    )


async def update_candidate(tx: Tx, run_id: str, idx: int, status: JobStatus, *, progressed: bool, stalled: bool) -> None:
    now = time.time()
    await tx.execute(
        "UPDATE candidates SET state=?, raw_state=?, progress=?, epoch=COALESCE(?, epoch), train_loss=COALESCE(?, train_loss),"
        " val_loss=COALESCE(?, val_loss), cost_usd=COALESCE(?, cost_usd), message=?, model=COALESCE(?, model), stalled=?,"
        " last_progress_at=CASE WHEN ? OR last_progress_at IS NULL THEN ? ELSE last_progress_at END, updated_at=?"
        " WHERE run_id=? AND idx=?",
        (
            status.state.value,
            status.raw_state,
            status.progress,
            status.epoch,
            status.train_loss,
            status.val_loss,
            status.cost_usd,
            status.message,
            status.model,
            int(stalled),
            int(progressed),
            now,
            now,
            run_id,
            idx,
        ),
    )


async def set_candidate_metrics(
    tx: Tx, run_id: str, idx: int, *, train_loss: float | None, val_loss: float | None, score: float | None = None
) -> None:
    await tx.execute(
        "UPDATE candidates SET train_loss=COALESCE(?, train_loss), val_loss=COALESCE(?, val_loss), score=COALESCE(?, score), updated_at=?"
        " WHERE run_id=? AND idx=?",
        (train_loss, val_loss, score, time.time(), run_id, idx),
    )


def question_json(q: Question | None) -> str | None:
    return None if q is None else q.model_dump_json()


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)
