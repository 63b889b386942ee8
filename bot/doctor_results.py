"""Where `sftbot doctor` keeps its results, and what the bot reads back from them (standard
library only: the engine reads them at every start)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.domain.checks import Check
from pipeline.domain.fsio import write_atomic

RESULTS = "doctor.json"  # in the data dir


def saved(data_dir: Path) -> dict[str, Any] | None:
    """The last doctor results, or None when doctor never ran (or its file is unreadable)."""
    try:
        found = json.loads((data_dir / RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def live_merge_bases(data_dir: Path) -> frozenset[str]:
    """Bases whose addon deployments the account refused when doctor last looked."""
    found = saved(data_dir) or {}
    listed = found.get("checks")
    checks: list[Any] = listed if isinstance(listed, list) else []
    return frozenset(
        str(c["facts"]["base"]) for c in checks if isinstance(c, dict) and (c.get("facts") or {}).get("addons_refused")
    )


def save(data_dir: Path, tier: str, checks: Sequence[Check]) -> Path:
    path = data_dir / RESULTS
    body = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "tier": tier, "checks": [c.model_dump() for c in checks]}
    write_atomic(path, json.dumps(body, indent=2) + "\n")
    return path
