"""Estimate vs actual of finished runs (table ``spend_outcomes``): what the next plan's range learns from."""

from __future__ import annotations

from pipeline.planning.history import RECENT, Outcome
from pipeline.store.db import Database, Tx


async def record(tx: Tx, run_id: str, outcome: Outcome) -> None:
    """One row per run and phase; a report written again (a resumed run) replaces it."""
    await tx.execute(
        "INSERT OR REPLACE INTO spend_outcomes(run_id, platform, band, phase, estimated_usd, actual_usd, at)"
        " VALUES (?,?,?,?,?,?,?)",
        (run_id, outcome.platform, outcome.band, outcome.phase, outcome.estimated_usd, outcome.actual_usd, outcome.at),
    )


async def recent(db: Database, *, platform: str, band: str, phase: str, limit: int = RECENT) -> list[Outcome]:
    """The last ``limit`` outcomes of this kind, oldest first."""
    rows = await db.fetchall(
        "SELECT platform, band, phase, estimated_usd, actual_usd, at FROM spend_outcomes"
        " WHERE platform=? AND band=? AND phase=? ORDER BY at DESC LIMIT ?",
        (platform, band, phase, limit),
    )
    return [Outcome(**dict(r)) for r in reversed(rows)]
