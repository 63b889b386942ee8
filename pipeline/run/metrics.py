"""A job's loss history: read from the platform (also mid-job), kept in the run's workspace,
and the few facts the run takes from it (last losses, what keys a file had)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.domain.fsio import json_lines, write_atomic
from pipeline.domain.platform import LossPoint, PlatformError, Training


async def read_points(training: Training, workspace: Path, job_id: str) -> list[LossPoint] | None:
    """The job's loss history as the platform has it now, kept as ``metrics/<job>.json`` (and the
    raw file beside it); None when the platform could not give it."""
    folder = workspace / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        points = await training.metrics(job_id, folder / f"{job_id}.raw.jsonl")
    except PlatformError:
        return None
    write_atomic(folder / f"{job_id}.json", json.dumps([p.model_dump() for p in points]))
    return points


def metric_keys(path: Path, *, limit: int = 2000) -> list[str]:
    """Every key seen in a JSONL metrics file (top level and under ``data``), sorted."""
    keys: set[str] = set()
    for row in json_lines(path, lines=limit):
        if isinstance(row, dict):
            keys.update(str(k) for k in row if k != "data")
            if isinstance(row.get("data"), dict):
                keys.update(f"data.{k}" for k in row["data"])
    return sorted(keys)


def no_validation_loss(raw: Path) -> str:
    """Said plainly when a finished job's metrics hold no validation loss the parser knows: its
    rank then falls back to candidate order, and the keys let a person see why."""
    keys = metric_keys(raw)
    if not keys:
        return "no validation loss: the job wrote no metrics file sftbot could read"
    shown = ", ".join(keys[:15]) + (f" and {len(keys) - 15} more" if len(keys) > 15 else "")
    return f"no validation loss recognised in its metrics (keys seen: {shown})"


def last_loss(points: list[LossPoint], field: str) -> float | None:
    for p in reversed(points):
        v = getattr(p, field)
        if v is not None:
            return float(v)
    return None


def load_points(workspace: Path, job_id: str) -> list[LossPoint]:
    path = workspace / "metrics" / f"{job_id}.json"
    if not path.exists():
        return []
    return [LossPoint.model_validate(p) for p in json.loads(path.read_text(encoding="utf-8"))]
