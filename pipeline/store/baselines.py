"""Reads and writes of the base model's scores on a run's held-out prompts (parameterised SQL only)."""

from __future__ import annotations

import time

from pipeline.evaluation.compare import BaseScore
from pipeline.store.db import Database, Tx


async def record(tx: Tx, run_id: str, base: BaseScore) -> None:
    """Kept once: a second write for the same base (a resumed step) changes nothing."""
    await tx.execute(
        "INSERT OR IGNORE INTO base_scores(run_id, base_model, score, val_loss, answered, note, scored_at)"
        " VALUES (?,?,?,?,?,?,?)",
        (run_id, base.base_model, base.score, base.val_loss, base.answered, base.note, time.time()),
    )


async def scores(db: Database, run_id: str) -> dict[str, BaseScore]:
    """Base model -> its score, for the bases scored so far."""
    rows = await db.fetchall(
        "SELECT base_model, score, val_loss, answered, note FROM base_scores WHERE run_id=? ORDER BY base_model", (run_id,)
    )
    return {
        r["base_model"]: BaseScore(
            base_model=r["base_model"], score=r["score"], val_loss=r["val_loss"], answered=r["answered"], note=r["note"]
        )
        for r in rows
    }
