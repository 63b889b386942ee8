"""The task's system prompt, when the training data has one: the snippet should send it too,
or the deployed model answers a different task than the one it was trained on."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.domain.fsio import json_lines

ROWS = 200  # the most common system prompt among the first rows is the task's


def system_prompt(path: Path, *, rows: int = ROWS) -> str | None:
    """The most common first system message of the first ``rows`` chat rows; None when none has one."""
    seen: Counter[str] = Counter()
    for row in json_lines(path, lines=rows):
        messages = row.get("messages") if isinstance(row, dict) else None
        first = messages[0] if isinstance(messages, list) and messages else None
        if isinstance(first, dict) and first.get("role") == "system" and isinstance(first.get("content"), str):
            seen[first["content"]] += 1
    return seen.most_common(1)[0][0] if seen else None


TRAINING_FILES = ("converted.jsonl", "source.jsonl")  # a run's training data in its workspace, converted first


def run_system_prompt(workspace: Path) -> str | None:
    """The system prompt of the data a run trained on."""
    for name in TRAINING_FILES:
        path = workspace / name
        if path.exists():
            return system_prompt(path)
    return None
