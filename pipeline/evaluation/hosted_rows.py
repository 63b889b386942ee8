"""Rows to and from a hosted evaluation job (Fireworks ``evaluationJobs``), read defensively.

Neither the rows an evaluation job reads nor the rows it writes are documented
(reference/fireworks.md §8: "parse defensively and keep the raw rows"). Evaluators are Eval
Protocol functions over ``EvaluationRow{messages, ground_truth, input_metadata,
evaluation_result}``, so the input rows use those names, with the model's answer as the final
assistant message and a row id in ``input_metadata.row_id``. Output rows are matched back by
that id (by position when no row carries one), and the score is looked for under every key
seen in the wild, in order; what was read is said in one sentence for the report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from pipeline.evaluation.eval_types import EvalExample, EvalRun, ExampleScore

# Where a row's score may be: the Eval Protocol names first (the row's own ``evaluation_result``,
# then the ``evals`` / ``eval_details`` Eval Protocol writes beside it when it uploads scored rows,
# eval_protocol/pytest/handle_persist_flow.py), then camelCase, then flat keys.
SCORE_PATHS: tuple[tuple[str, ...], ...] = (
    ("evaluation_result", "score"),
    ("eval_details", "score"),
    ("evals", "score"),
    ("evaluationResult", "score"),
    ("evaluation_result", "reward"),
    ("score",),
    ("reward",),
    ("result", "score"),
)
REASON_PATHS: tuple[tuple[str, ...], ...] = (
    ("evaluation_result", "reason"),
    ("eval_details", "reason"),
    ("evaluationResult", "reason"),
    ("reason",),
)
VALID_PATHS: tuple[tuple[str, ...], ...] = (
    ("evaluation_result", "is_score_valid"),
    ("eval_details", "is_score_valid"),
    ("evaluationResult", "isScoreValid"),
)


def row_id(slot: str, index: int) -> str:
    return f"{slot}-{index}"


def input_rows(slot: str, examples: Iterable[EvalExample]) -> list[dict[str, Any]]:
    """One row per answered example: the conversation with the answer last, and its reference."""
    return [
        {"messages": ex.messages, "ground_truth": ex.ground_truth, "input_metadata": {"row_id": row_id(slot, ex.index)}}
        for ex in examples
    ]


class Reading(BaseModel):
    """What came back and how it was read (for the report)."""

    rows: int = 0
    unreadable: int = 0
    score_key: str | None = None
    matched_by: str = "row id"
    keys_seen: list[str] = []

    def sentence(self, dataset: str) -> str:
        if self.score_key is None:
            keys = ", ".join(self.keys_seen[:20]) or "none"
            return f"Read {self.rows} rows of {dataset}; none held a score sftbot knows (top-level keys seen: {keys})."
        extra = f"; {self.unreadable} lines were not JSON objects" if self.unreadable else ""
        return (
            f"Read {self.rows} rows of {dataset}: scores from `{self.score_key}`, matched to answers by {self.matched_by}{extra}."
        )


def _at(row: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = row
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if math.isfinite(out) else None


def read_scores(slot: str, examples: list[EvalExample], lines: Iterable[str]) -> tuple[EvalRun, Reading]:
    """Per-example scores from the job's output rows; examples without one are errors (score 0)."""
    reading = Reading()
    rows: list[Mapping[str, Any]] = []
    keys: set[str] = set()
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            reading.unreadable += 1
            continue
        if not isinstance(row, Mapping):
            reading.unreadable += 1
            continue
        rows.append(row)
        keys.update(str(k) for k in row)
    reading.rows = len(rows)
    reading.keys_seen = sorted(keys)
    wanted = {row_id(slot, ex.index): ex.index for ex in examples}
    by_index: dict[int, Mapping[str, Any]] = {}
    for row in rows:
        rid = _at(row, ("input_metadata", "row_id")) or row.get("row_id")
        if isinstance(rid, str) and rid in wanted:
            by_index[wanted[rid]] = row
    if not by_index and len(rows) == len(examples):
        reading.matched_by = "position (no row carried its id back)"
        by_index = {ex.index: row for ex, row in zip(examples, rows, strict=True)}
    scores: list[ExampleScore] = []
    for ex in examples:
        row = by_index.get(ex.index)
        scores.append(_score(ex.index, row, reading))
    valid = [s.score for s in scores if s.score is not None]
    mean = sum(valid) / len(scores) if valid else None
    fatal = None if valid else "the evaluation job's output held no score sftbot could read"
    return EvalRun(scores=scores, mean=mean, errors=sum(1 for s in scores if s.error), fatal=fatal), reading


def _score(index: int, row: Mapping[str, Any] | None, reading: Reading) -> ExampleScore:
    if row is None:
        return ExampleScore(index=index, score=None, error=f"example {index}: no row for it in the job's output")
    for path in VALID_PATHS:
        if _at(row, path) is False:
            return ExampleScore(index=index, score=None, error=f"example {index}: the evaluator marked its score invalid")
    for path in SCORE_PATHS:
        value = _number(_at(row, path))
        if value is not None:
            reading.score_key = reading.score_key or ".".join(path)
            reason = next((str(r) for p in REASON_PATHS if (r := _at(row, p)) is not None), "")
            return ExampleScore(index=index, score=value, reason=reason[:4000])
    return ExampleScore(index=index, score=None, error=f"example {index}: no score in its output row")
