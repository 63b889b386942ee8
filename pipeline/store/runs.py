"""Reads and writes of runs, plan versions and candidates (parameterised SQL only)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any, TypedDict

import aiosqlite

from pipeline.domain.gates import BudgetRequest, Question
from pipeline.domain.machine import Phase
from pipeline.domain.platform import JobStatus
from pipeline.domain.records import CandidateRecord, NewRun, RunRecord
from pipeline.domain.slots import CandidateState, Slot
from pipeline.domain.spec import RunSpec
from pipeline.planning.plan_types import Plan
from pipeline.store.db import Database, Tx


class RunChanges(TypedDict, total=False):
    """The run fields a step's outcome or a decision may change (everything else is fixed)."""

    plan_version: int
    estimated_usd: float | None
    actual_usd: float | None
    approved_usd: float | None
    budget: BudgetRequest | None
    question: Question | None
    spec: RunSpec
    promoted: Slot
    error: str
    evaluator_error: str


def _run(r: aiosqlite.Row) -> RunRecord:
    return RunRecord(
        id=r["id"],
        number=r["number"],
        requester=r["requester"],
        requester_name=r["requester_name"],
        instruction=r["instruction"],
        spec=RunSpec.model_validate_json(r["spec_json"]),
        platform=r["platform"],
        billed=bool(r["billed"]),
        phase=Phase(r["phase"]),
        channel=r["channel"],
        plan_version=r["plan_version"],
        question=Question.model_validate_json(r["question_json"]) if r["question_json"] else None,
        promoted=r["promoted"],
        error=r["error"],
        evaluator_error=r["evaluator_error"],
        workspace=r["workspace"],
        estimated_usd=r["estimated_usd"],
        actual_usd=r["actual_usd"],
        approved_usd=r["approved_usd"],
        budget=BudgetRequest.model_validate_json(r["budget_json"]) if r["budget_json"] else None,
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def _cand(r: aiosqlite.Row) -> CandidateRecord:
    d = dict(r)
    d["stalled"] = bool(d["stalled"])
    return CandidateRecord.model_validate(d)


async def insert_run(tx: Tx, new: NewRun) -> RunRecord:
    """A new run in ``inspecting``; its id is random so resource ids never collide across bots."""
    row = await tx.fetchone("SELECT COALESCE(MAX(number), 0) + 1 FROM runs")
    number = int(row[0]) if row else 1
    run_id = secrets.token_hex(4)
    now = time.time()
    workspace = f"{new.workspace_root}/{number:04d}-{run_id}"
    who = new.requester
    await tx.execute(
        "INSERT INTO runs(id, number, requester, requester_name, instruction, spec_json, platform, billed, phase, channel,"
        " workspace, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (run_id, number, who.id, who.name, new.instruction, new.spec.model_dump_json(), new.platform, int(new.billed),
         Phase.INSPECTING.value, new.channel, workspace, now, now),
    )  # fmt: skip
    return RunRecord(
        id=run_id,
        number=number,
        requester=who.id,
        requester_name=who.name,
        instruction=new.instruction,
        spec=new.spec,
        platform=new.platform,
        billed=new.billed,
        phase=Phase.INSPECTING,
        channel=new.channel,
        workspace=workspace,
        created_at=now,
        updated_at=now,
    )


def parse_run_key(key: str | int) -> tuple[int | None, str]:
    """A run number ("12", "#12", 12) or a run id; numbers beyond any real run are not numbers."""
    text = str(key).strip().lstrip("#")[:64]
    if text.isdigit() and len(text) <= 9:
        return int(text), text
    return None, text


async def get_run(db: Database, key: str | int) -> RunRecord | None:
    """By id, or by number ("12" or "#12" or 12)."""
    number, text = parse_run_key(key)
    if number is not None:
        row = await db.fetchone("SELECT * FROM runs WHERE number=?", (number,))
        if row is not None:
            return _run(row)
    row = await db.fetchone("SELECT * FROM runs WHERE id=?", (text,))
    return None if row is None else _run(row)


async def run_channels(db: Database) -> list[str]:
    """Every channel a run was asked for in."""
    return [str(r[0]) for r in await db.fetchall("SELECT DISTINCT channel FROM runs WHERE channel IS NOT NULL ORDER BY channel")]


async def list_runs(
    db: Database,
    *,
    requester: str | None = None,
    channel: str | None = None,
    channels: Sequence[str] | None = None,
    limit: int = 20,
    unfinished: bool = False,
) -> list[RunRecord]:
    """Newest first; ``channels`` (when not None) keeps only runs asked for in those channels."""
    sql = "SELECT * FROM runs"
    where: list[str] = []
    params: list[Any] = []
    if channels is not None:
        where.append(f"channel IN ({','.join('?' * len(channels))})" if channels else "0")
        params.extend(channels)
    if requester:
        where.append("requester=?")
        params.append(requester)
    if channel:
        where.append("channel=?")
        params.append(channel)
    if unfinished:
        where.append("phase NOT IN ('succeeded','failed','cancelled')")
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY number DESC LIMIT ?"
    params.append(limit)
    return [_run(r) for r in await db.fetchall(sql, tuple(params))]


def _column(name: str, value: object) -> tuple[str, object]:
    if name == "question":
        return "question_json", value.model_dump_json() if isinstance(value, Question) else None
    if name == "budget":
        return "budget_json", value.model_dump_json() if isinstance(value, BudgetRequest) else None
    if name == "spec":
        assert isinstance(value, RunSpec)
        return "spec_json", value.model_dump_json()
    if name == "promoted":
        return "promoted", str(value)
    return name, value


async def update_run(tx: Tx, run_id: str, changes: RunChanges, *, phase: Phase | None = None) -> None:
    cols = dict(_column(k, v) for k, v in changes.items())
    if phase is not None:
        cols["phase"] = phase.value
    if not cols:
        return
    sets = ", ".join(f"{k}=?" for k in cols)  # the names come from RunChanges, never from input
    await tx.execute(f"UPDATE runs SET {sets}, updated_at=? WHERE id=?", (*cols.values(), time.time(), run_id))


async def read_run(tx: Tx, run_id: str) -> RunRecord:
    """The run as this transaction sees it."""
    row = await tx.fetchone("SELECT * FROM runs WHERE id=?", (run_id,))
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
        "INSERT OR IGNORE INTO candidates(run_id, slot, job_id, base_model, lora_rank, learning_rate, epochs, train_samples,"
        " state, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (c.run_id, str(c.slot), c.job_id, c.base_model, c.lora_rank, c.learning_rate, c.epochs, c.train_samples,
         CandidateState.WAITING.value, time.time()),
    )  # fmt: skip


async def candidates(db: Database, run_id: str) -> list[CandidateRecord]:
    """Every training job of the run: candidates in number order, then the final run."""
    rows = [_cand(r) for r in await db.fetchall("SELECT * FROM candidates WHERE run_id=?", (run_id,))]
    return sorted(rows, key=lambda c: c.slot.order)


async def _guard(tx: Tx, run_id: str, slot: Slot, to: CandidateState) -> None:
    """The one gate every candidate state change passes: IllegalMove unless the move is allowed."""
    row = await tx.fetchone("SELECT state FROM candidates WHERE run_id=? AND slot=?", (run_id, str(slot)))
    if row is not None:
        CandidateState(row[0]).check_move(to)


async def set_state(tx: Tx, run_id: str, slot: Slot, state: CandidateState, *, message: str | None = None) -> None:
    await _guard(tx, run_id, slot, state)
    await tx.execute(
        "UPDATE candidates SET state=?, message=COALESCE(?, message), updated_at=? WHERE run_id=? AND slot=?",
        (state.value, message, time.time(), run_id, str(slot)),
    )


async def update_candidate(
    tx: Tx, c: CandidateRecord, status: JobStatus, *, state: CandidateState, progressed: bool, stalled: bool
) -> None:
    """Candidate ``c`` as the platform reported its job (its state moved through the guard)."""
    run_id, slot = c.run_id, c.slot
    await _guard(tx, run_id, slot, state)
    now = time.time()
    await tx.execute(
        "UPDATE candidates SET state=?, raw_state=?, progress=?, epoch=COALESCE(?, epoch), train_loss=COALESCE(?, train_loss),"
        " val_loss=COALESCE(?, val_loss), cost_usd=COALESCE(?, cost_usd), message=?, model=COALESCE(?, model), stalled=?,"
        " last_progress_at=CASE WHEN ? OR last_progress_at IS NULL THEN ? ELSE last_progress_at END, updated_at=?,"
        " started_at=CASE WHEN started_at IS NULL AND ? THEN ? ELSE started_at END,"
        " finished_at=CASE WHEN finished_at IS NULL AND ? THEN ? ELSE finished_at END"
        " WHERE run_id=? AND slot=?",
        (
            state.value,
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
            int(state is CandidateState.RUNNING or state.is_finished()),
            now,
            int(state.is_finished()),
            now,
            run_id,
            str(slot),
        ),
    )


async def set_note(tx: Tx, run_id: str, slot: Slot, note: str | None) -> None:
    """The line people read about a job beside its state (None clears it)."""
    await tx.execute(
        "UPDATE candidates SET note=?, updated_at=? WHERE run_id=? AND slot=?", (note, time.time(), run_id, str(slot))
    )


async def set_candidate_score(tx: Tx, run_id: str, slot: Slot, *, score: float | None, eval_failures: int) -> None:
    """The evaluator's mean score of a candidate (None keeps the one recorded) and its failed answers.
    Losses are not set here: they come with the job's status (``update_candidate``)."""
    await tx.execute(
        "UPDATE candidates SET score=COALESCE(?, score), eval_failures=?, updated_at=? WHERE run_id=? AND slot=?",
        (score, eval_failures, time.time(), run_id, str(slot)),
    )


async def finished_runs_with_active_jobs(db: Database) -> list[str]:
    """Runs that ended while a job of theirs still ran (a stop between the end and its cancels)."""
    rows = await db.fetchall(
        "SELECT DISTINCT c.run_id FROM candidates c JOIN runs r ON r.id = c.run_id"
        " WHERE r.phase IN ('succeeded','failed','cancelled') AND c.state IN ('submitting','pending','running','pruning')"
    )
    return [str(r[0]) for r in rows]
