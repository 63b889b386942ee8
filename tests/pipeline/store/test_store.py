"""The store: events delivered only after COMMIT, reads that never see an open write, migrations
that carry an older database forward."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.store import runs
from pipeline.store.db import Database, statements


async def test_events_raised_in_a_write_arrive_after_commit_and_not_on_rollback(db: Database) -> None:
    seen: list[Any] = []

    async def publish(event: Any) -> None:
        row = await db.fetchone("SELECT COUNT(*) FROM audit_events")
        seen.append((event, row[0] if row else None))

    db.publish = publish
    async with db.write() as tx:
        await tx.audit(run_id=None, actor="t", action="one")
        tx.emit("committed")
        assert seen == []  # not while the transaction is open
    assert seen == [("committed", 1)]  # and the subscriber already reads the committed row
    with pytest.raises(RuntimeError):
        async with db.write() as tx:
            await tx.audit(run_id=None, actor="t", action="two")
            tx.emit("rolled back")
            raise RuntimeError("boom")
    assert seen == [("committed", 1)]
    assert (await db.fetchone("SELECT COUNT(*) FROM audit_events"))[0] == 1  # type: ignore[index]


async def test_reads_never_see_an_open_write(db: Database) -> None:
    async with db.write() as tx:
        await tx.audit(run_id=None, actor="t", action="pending")
        assert (await tx.fetchone("SELECT COUNT(*) FROM audit_events"))[0] == 1  # type: ignore[index]
        assert (await db.fetchone("SELECT COUNT(*) FROM audit_events"))[0] == 0  # type: ignore[index]


def test_migration_statements_split_where_sqlite_says_they_end() -> None:
    script = "CREATE TABLE a (x TEXT); -- a comment; with a semicolon\nINSERT INTO a VALUES ('1;2');\n-- trailing comment\n"
    assert statements(script) == ["CREATE TABLE a (x TEXT); -- a comment; with a semicolon", "INSERT INTO a VALUES ('1;2');"]


async def test_a_database_of_the_first_schema_is_carried_forward(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    from importlib import resources

    first = resources.files("pipeline.store").joinpath("migrations/001_init.sql").read_text(encoding="utf-8")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
    for statement in statements(first):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_migrations VALUES (1, '001_init.sql', 0)")
    now = time.time()
    spec = json.dumps({"dataset": "d.jsonl", "base_models": ["qwen3-8b"]})
    conn.execute(
        "INSERT INTO runs(id, number, requester, instruction, spec_json, platform, phase, plan_version, winner, workspace,"
        " question_json, created_at, updated_at) VALUES ('r1', 1, 'U1', 'run', ?, 'fireworks', 'sweeping', 1, 2, '/w', ?, ?, ?)",
        (spec, json.dumps({"what": "base_model", "text": "Which?", "number": 1}), now, now),
    )
    for idx, submit, state in ((1, "submitted", "running"), (2, "planned", "pending"), (0, "submitting", "pending")):
        conn.execute(
            "INSERT INTO candidates(run_id, idx, job_id, base_model, lora_rank, learning_rate, epochs, train_samples,"
            " submit_state, state, updated_at) VALUES ('r1', ?, ?, 'qwen3-8b', 8, 1e-4, 1, 10, ?, ?, ?)",
            (idx, f"sftbot-r1-{idx}", submit, state, now),
        )
    for key, value in (("slack:channel", "C1"), ("slack:root_ts", "1.1"), ("slack:plan:v1", "1.2"), ("slack:open_gates", "plan:v1"),
                       ("upload:sweep_curves", "F1"), ("evaluator_error", "it broke")):  # fmt: skip
        conn.execute("INSERT INTO run_refs VALUES ('r1', ?, ?)", (key, value))
    conn.commit()
    conn.close()

    db = await Database.open(path)
    try:
        shipped = sorted(p.name for p in (Path(__file__).parents[3] / "pipeline" / "store" / "migrations").glob("*.sql"))
        assert await db.applied_migrations() == shipped and shipped[:2] == ["001_init.sql", "002_slots_and_surfaces.sql"]
        run = await runs.get_run(db, "r1")
        assert run is not None and run.channel == "C1" and run.evaluator_error == "it broke"
        assert run.promoted is not None and run.promoted.number == 2
        assert run.question is not None and run.question.kind.value == "base_model"
        states = {str(c.slot): c.state.value for c in await runs.candidates(db, "r1")}
        assert states == {"c1": "running", "c2": "waiting", "final": "submitting"}
        rows = {
            r[0]: (r[1], r[2], r[3], r[4])
            for r in await db.fetchall("SELECT key, channel, ts, file_id, open FROM slack_messages")
        }
        assert rows == {"root": ("C1", "1.1", "", 0), "plan:v1": ("C1", "1.2", "", 1), "upload:sweep_curves": ("C1", "", "F1", 0)}
    finally:
        await db.close()
