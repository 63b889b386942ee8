"""SQLite through aiosqlite: numbered migrations, WAL, one writer, a reader, audit in the same transaction.

Every write goes through ``Database.write()`` (one asyncio lock, ``BEGIN IMMEDIATE``), so a
state change and the audit event that records it commit together or not at all. Events a
write raises with ``tx.emit`` are delivered only after its COMMIT (datasette's
``execute_write_fn`` pattern): surfaces never hear about a change that was rolled back.
Reads go through a second connection, so they only ever see committed rows.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from pipeline.domain.provenance import Change, DeploymentRate, Ref, ResourceState, check_move
from pipeline.domain.records import AuditEvent, GateDecision, Resource

Publish = Callable[[Any], Awaitable[None]]
log = logging.getLogger("sftbot.store")
WRITE_PATIENCE = 600.0  # seconds a write waits out another process's lock before giving up


class StorageError(RuntimeError):
    """The database cannot take a write right now; nothing of it was applied."""


class StorageBusy(StorageError):
    """Another process holds the write lock (a backup, `sftbot show` in a shell) past our patience."""


class StorageFull(StorageError):
    """The disk under the data dir is full."""


def storage_problem(exc: BaseException) -> StorageError | None:
    """The storage fault ``exc`` is, if it is one (a full disk also shows as OSError ENOSPC)."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return StorageFull(f"the disk is full ({exc.filename or 'data dir'})")
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        if "full" in text:
            return StorageFull(f"the disk under the database is full ({exc})")
        if "locked" in text or "busy" in text:
            return StorageBusy(f"the database is locked by another process ({exc})")
    return None


class GateAlreadyDecided(Exception):
    """The gate was decided before; carries the first decision (the first one wins)."""

    def __init__(self, first: GateDecision) -> None:
        who = first.actor_name or first.actor
        super().__init__(f"already decided: {first.decision} by {who}")
        self.first = first


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("pipeline.store").joinpath("migrations")
    out = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            out.append((int(name[:3]), name, entry.read_text(encoding="utf-8")))
    return sorted(out)


async def _nothing(_: Any) -> None:
    return None


class Tx:
    """An open write transaction."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        """Deliver ``event`` to the surfaces once this transaction has committed."""
        self.events.append(event)

    async def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> aiosqlite.Cursor:
        return await self.conn.execute(sql, params)

    async def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> aiosqlite.Row | None:
        """A read inside the transaction: it sees this transaction's own uncommitted rows."""
        return await (await self.conn.execute(sql, params)).fetchone()

    async def audit(
        self,
        *,
        run_id: str | None,
        actor: str,
        actor_name: str = "",
        action: str,
        plan_version: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        await self.conn.execute(
            "INSERT INTO audit_events(run_id, at, actor, actor_name, action, plan_version, details_json) VALUES (?,?,?,?,?,?,?)",
            (run_id, time.time(), actor, actor_name, action, plan_version, json.dumps(details or {}, default=str)),
        )


async def _connect(path: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA foreign_keys=ON")
    await conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Database:
    """The bot's one database. Open it with ``await Database.open(path)``."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.conn = writer
        self.reader = reader
        self._lock = asyncio.Lock()
        # Where events raised inside writes go after COMMIT; the runner sets its event bus here.
        self.publish: Publish = _nothing
        # The time a resource row is stamped with (tests put a fake clock here).
        self.clock: Callable[[], float] = time.time

    @classmethod
    async def open(cls, path: Path | str) -> Database:
        memory = str(path) == ":memory:"
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(str(path))
        try:
            db = cls(writer, writer)
            await db._migrate()
            # An in-memory database exists only on its own connection: it reads there too.
            db.reader = writer if memory else await _connect(str(path))
        except BaseException:
            await writer.close()
            raise
        return db

    async def close(self) -> None:
        if self.reader is not self.conn:
            await self.reader.close()
        await self.conn.close()

    async def _migrate(self) -> None:
        await self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        done = {r[0] for r in await self.conn.execute_fetchall("SELECT version FROM schema_migrations")}
        for version, name, sql in _migrations():
            if version in done:
                continue
            async with self.write() as tx:
                for statement in statements(sql):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?,?,?)", (version, name, time.time())
                )

    async def applied_migrations(self) -> list[str]:
        rows = await self.fetchall("SELECT name FROM schema_migrations ORDER BY version")
        return [r[0] for r in rows]

    @asynccontextmanager
    async def write(self, *, patience: float | None = None) -> AsyncIterator[Tx]:
        """One write transaction; the events it raised are delivered once it has committed.

        Another process holding the write lock is waited out with backoff for ``patience``
        seconds (a backup or a shell can hold it for a while: that must not fail a run), then
        StorageBusy; a full disk is StorageFull. Either way nothing of the write was applied.
        """
        async with self._lock:
            await self._begin(WRITE_PATIENCE if patience is None else patience)
            tx = Tx(self.conn)
            try:
                yield tx
                await self.conn.execute("COMMIT")
            except BaseException as exc:
                await self._rollback()
                problem = storage_problem(exc)
                if problem is not None and problem is not exc:
                    raise problem from exc
                raise
        for event in tx.events:
            await self.publish(event)

    async def _begin(self, patience: float) -> None:
        deadline = time.monotonic() + patience
        delay = 0.2
        while True:
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                problem = storage_problem(exc)
                if not isinstance(problem, StorageBusy) or time.monotonic() >= deadline:
                    raise (problem or exc) from exc
                log.warning("database locked by another process; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _rollback(self) -> None:
        try:
            await self.conn.execute("ROLLBACK")
        except sqlite3.OperationalError:
            pass  # no transaction left to roll back (a failed COMMIT already ended it)

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[aiosqlite.Row]:
        """Committed rows only (the read connection)."""
        return list(await self.reader.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> aiosqlite.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    # --- small shared operations -------------------------------------------------------

    async def decide_gate(self, tx: Tx, decision: GateDecision) -> None:
        """Record a gate decision; a second decision on the same gate raises with the first."""
        row = await tx.fetchone("SELECT * FROM gate_decisions WHERE run_id=? AND gate=?", (decision.run_id, str(decision.gate)))
        if row is not None:
            raise GateAlreadyDecided(_gate(row))
        await tx.execute(
            "INSERT INTO gate_decisions(run_id, gate, decision, actor, actor_name, plan_version, details_json, decided_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (
                decision.run_id,
                str(decision.gate),
                decision.decision,
                decision.actor,
                decision.actor_name,
                decision.plan_version,
                json.dumps(decision.details, default=str),
                decision.decided_at,
            ),
        )

    async def gate_decisions(self, run_id: str) -> list[GateDecision]:
        rows = await self.fetchall("SELECT * FROM gate_decisions WHERE run_id=? ORDER BY decided_at", (run_id,))
        return [_gate(r) for r in rows]

    async def audit_trail(self, run_id: str, *, after: int = 0) -> list[AuditEvent]:
        """The run's audit events in order; ``after`` an event id, only those recorded since."""
        rows = await self.fetchall("SELECT * FROM audit_events WHERE run_id=? AND id>? ORDER BY id", (run_id, after))
        return [
            AuditEvent(
                id=r["id"],
                run_id=r["run_id"],
                at=r["at"],
                actor=r["actor"],
                actor_name=r["actor_name"],
                action=r["action"],
                plan_version=r["plan_version"],
                details=json.loads(r["details_json"]),
            )
            for r in rows
        ]

    async def audit(self, **kwargs: Any) -> None:
        """A standalone audit event (e.g. a denied click) in its own transaction."""
        async with self.write() as tx:
            await tx.audit(**kwargs)

    async def mark_processed(self, event_key: str, run_id: str | None = None) -> bool:
        """True the first time a delivery key is seen, False for every duplicate.

        A person is waiting for the answer: a lock held elsewhere is not waited out for long
        (StorageBusy after SQLite's own 5 s), so the listener can say so instead of hanging.
        """
        async with self.write(patience=0.0) as tx:
            cur = await tx.execute(
                "INSERT OR IGNORE INTO processed_events(event_key, run_id, at) VALUES (?,?,?)", (event_key, run_id, time.time())
            )
            return cur.rowcount == 1

    async def move_resource(self, tx: Tx, run_id: str, ref: Ref, to: ResourceState, change: Change | None = None) -> None:
        """Provenance: the one way a resource row is written. Every platform resource this bot
        creates is recorded before its create call (``pipeline/run/once.py``); each later state
        passes the lifecycle's guard (IllegalMove otherwise). Fields ``change`` leaves None keep
        what the row has; its details are merged in; the error is that of this move."""
        row = await tx.fetchone("SELECT state FROM resources WHERE kind=? AND resource_id=?", (ref.kind.value, ref.id))
        check_move(ref.kind, ResourceState(row[0]) if row is not None else None, to)
        c = change or Change()
        rate = c.rate or DeploymentRate()
        now = self.clock()
        await tx.execute(
            "INSERT INTO resources(kind, resource_id, run_id, name, state, error, usd_per_hour, gpu_count, accelerator,"
            " priced_at, estimated_usd, kept_at, idle_asked_at, scaled_to_zero_at, details_json, created_at, updated_at,"
            " ended_at)"
            " VALUES (:kind, :id, :run, :name, :state, :error, :usd_per_hour, :gpu_count, :accelerator, :priced_at,"
            " :estimated_usd, :kept_at, :idle_asked_at, :scaled_to_zero_at, :details, :now, :now, :ended_at)"
            " ON CONFLICT(kind, resource_id) DO UPDATE SET"
            " name=CASE WHEN excluded.name != '' THEN excluded.name ELSE resources.name END, state=excluded.state,"
            " error=excluded.error, usd_per_hour=COALESCE(excluded.usd_per_hour, resources.usd_per_hour),"
            " gpu_count=COALESCE(excluded.gpu_count, resources.gpu_count),"
            " accelerator=COALESCE(excluded.accelerator, resources.accelerator),"
            " priced_at=COALESCE(excluded.priced_at, resources.priced_at),"
            " estimated_usd=COALESCE(excluded.estimated_usd, resources.estimated_usd),"
            " kept_at=COALESCE(excluded.kept_at, resources.kept_at),"
            " idle_asked_at=COALESCE(excluded.idle_asked_at, resources.idle_asked_at),"
            " scaled_to_zero_at=COALESCE(excluded.scaled_to_zero_at, resources.scaled_to_zero_at),"
            " details_json=json_patch(resources.details_json, excluded.details_json), updated_at=excluded.updated_at,"
            " ended_at=COALESCE(resources.ended_at, excluded.ended_at)",
            {
                "kind": ref.kind.value,
                "id": ref.id,
                "run": run_id,
                "name": c.name or "",
                "state": to.value,
                "error": c.error,
                **rate.model_dump(),
                "estimated_usd": c.estimated_usd,
                "kept_at": c.kept_at,
                "idle_asked_at": c.idle_asked_at,
                "scaled_to_zero_at": c.scaled_to_zero_at,
                "details": json.dumps(c.details, default=str),
                "now": now,
                "ended_at": now if to.ends else None,
            },
        )

    async def resource(self, ref: Ref) -> Resource | None:
        row = await self.fetchone("SELECT * FROM resources WHERE kind=? AND resource_id=?", (ref.kind.value, ref.id))
        return _resource(row) if row is not None else None

    async def resources(self, run_id: str) -> list[Resource]:
        """Every resource of the run, in the order it was recorded."""
        rows = await self.fetchall("SELECT * FROM resources WHERE run_id=? ORDER BY created_at, kind", (run_id,))
        return [_resource(r) for r in rows]


def statements(script: str) -> list[str]:
    """The statements of a migration, split where SQLite says one is complete (comments allowed)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip() and any(not ln.strip().startswith("--") for ln in buf.strip().splitlines()):
        out.append(buf.strip())  # a last statement without its semicolon
    return out


def _gate(r: aiosqlite.Row) -> GateDecision:
    return GateDecision(
        run_id=r["run_id"],
        gate=r["gate"],
        decision=r["decision"],
        actor=r["actor"],
        actor_name=r["actor_name"],
        plan_version=r["plan_version"],
        details=json.loads(r["details_json"]),
        decided_at=r["decided_at"],
    )


def _resource(r: aiosqlite.Row) -> Resource:
    rate = DeploymentRate(
        usd_per_hour=r["usd_per_hour"], gpu_count=r["gpu_count"], accelerator=r["accelerator"], priced_at=r["priced_at"]
    )
    return Resource(
        kind=r["kind"],
        resource_id=r["resource_id"],
        run_id=r["run_id"],
        name=r["name"],
        state=r["state"],
        error=r["error"],
        rate=rate if rate != DeploymentRate() else None,
        estimated_usd=r["estimated_usd"],
        kept_at=r["kept_at"],
        idle_asked_at=r["idle_asked_at"],
        scaled_to_zero_at=r["scaled_to_zero_at"],
        details=json.loads(r["details_json"]),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        ended_at=r["ended_at"],
    )
