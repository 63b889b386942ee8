"""Held-out answers on disk, and base vs tuned read back from them (a read model).

The scoring steps write each slot's answers and scores (``eval/c2.json``, ``eval/final.json``)
and each base model's (``eval/base-<model>.json``); the promotion gate, the deploy check, the
summary, the Slack stamps and ``sftbot show`` read the comparison here, outside the steps, so
nothing above a step has to import one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.domain.slots import CandidateState, Slot
from pipeline.evaluation.compare import Comparison, Outputs, compare, rows_of
from pipeline.run.context import workspace
from pipeline.run.scoreboard import rank
from pipeline.store import baselines, runs
from pipeline.store.db import Database


def eval_dir(run: RunRecord) -> Path:
    path = workspace(run) / "eval"
    path.mkdir(parents=True, exist_ok=True)
    return path


def detail_path(run: RunRecord, slot: Slot) -> Path:
    """Where a slot's outputs and per-example scores are kept (``eval/c2.json``, ``eval/final.json``)."""
    return eval_dir(run) / f"{slot}.json"


def base_path(run: RunRecord, base_model: str) -> Path:
    """``eval/base-<model>.json`` (the model's id made safe for a file name)."""
    return eval_dir(run) / f"base-{re.sub(r'[^A-Za-z0-9._-]+', '_', base_model)[-100:]}.json"


def _outputs(detail: dict[str, Any]) -> Outputs:
    failed = {int(i) for i in detail.get("failed_answers", {})}
    texts = [None if i in failed else str(t) for i, t in enumerate(detail.get("outputs", []))]
    by_index = {int(s["index"]): s.get("score") for s in detail.get("scores", []) if isinstance(s, dict)}
    return Outputs(texts=texts, scores=[by_index.get(i) for i in range(len(texts))])


def read_detail(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


async def comparison(db: Database, run: RunRecord, tuned: CandidateRecord) -> Comparison | None:
    """Base vs ``tuned`` from what is on disk and in the store; None when the base was not scored."""
    base = (await baselines.scores(db, run.id)).get(tuned.base_model)
    if base is None:
        return None
    base_detail, tuned_detail = read_detail(base_path(run, tuned.base_model)), read_detail(detail_path(run, tuned.slot))
    rows = []
    if base_detail and tuned_detail.get("outputs") is not None:
        prompts = [str(p) for p in base_detail.get("prompts", [])]
        expected = [None if r is None else str(r) for r in base_detail.get("references", [])]
        rows = rows_of(prompts, expected, _outputs(base_detail), _outputs(tuned_detail))
    return compare(base, tuned=tuned.label, tuned_score=tuned.score, tuned_val_loss=tuned.val_loss, rows=rows)


async def run_comparison(db: Database, run: RunRecord) -> tuple[str, Comparison] | None:
    """Base vs the model that ships, else vs the sweep's leader (``sftbot show``), with which it is."""
    cands = await runs.candidates(db, run.id)
    by_slot = {c.slot: c for c in cands}
    shipped = next((c for c in cands if c.slot.is_final), None) or (by_slot.get(run.promoted) if run.promoted else None)
    if shipped is not None and (comp := await comparison(db, run, shipped)) is not None:
        return "shipped", comp
    done = rank(c for c in cands if not c.slot.is_final and c.state is CandidateState.COMPLETED)
    if done and (comp := await comparison(db, run, done[0])) is not None:
        return "leader", comp
    return None
