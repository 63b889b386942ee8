"""Rows and the cases the inspector must find, shared by the inspector's tests (slow path and fast path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.dataset.inspection import InspectionReport

OK = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def write(tmp_path: Path, rows: list[Any], name: str = "data.jsonl") -> Path:
    """Rows as lines: bytes and str are written as they are, anything else as JSON."""
    path = tmp_path / name
    with path.open("wb") as f:
        for row in rows:
            if isinstance(row, str):
                row = row.encode()
            f.write((row if isinstance(row, bytes) else json.dumps(row).encode()) + b"\n")
    return path


def group(report: InspectionReport, kind: str) -> tuple[int, list[int], bool]:
    for g in report.problems:
        if g.kind == kind:
            return g.count, [p.line for p in g.examples], g.blocking
    raise AssertionError(f"no {kind} in {[g.kind for g in report.problems]}")


def msgs(*pairs: tuple[str, Any], **row: Any) -> dict[str, Any]:
    return {"messages": [{"role": r, "content": c} for r, c in pairs], **row}


# (row, kind, blocking): each lands on line 2, between two good rows.
CASES: list[tuple[Any, str, bool]] = [
    ('{"messages": [', "invalid_json", True),
    ('{"messages": [{"role": "user", "content": NaN}]}', "invalid_json", True),
    (b'{"messages": [{"role": "user", "content": "caf\xe9"}]}', "non_utf8", True),
    ("[1, 2]", "not_object", True),
    ({"text": "hi"}, "missing_messages", True),
    ({"messages": "hi"}, "messages_not_list", True),
    ({"messages": []}, "empty_messages", True),
    ({"messages": ["hi", {"role": "assistant", "content": "x"}]}, "message_not_object", True),
    (msgs(("bot", "hi"), ("assistant", "x")), "unknown_role", True),
    ({"messages": [{"role": ["user"], "content": "hi"}, {"role": "assistant", "content": "x"}]}, "unknown_role", True),
    ({"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]}, "unknown_role", True),
    (msgs(("user", "hi"), ("system", "be nice"), ("assistant", "x")), "system_not_first", True),
    (msgs(("user", "hi")), "no_assistant", True),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]}, "no_assistant", True),
    (msgs(("user", 5), ("assistant", "x")), "bad_content", True),
    (msgs(("user", [{"type": "image_url", "image_url": "x"}]), ("assistant", "x")), "bad_content", True),
    (
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 2}]},
        "bad_message_weight",
        True,
    ),
    (
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": True}]},
        "bad_message_weight",
        True,
    ),
    (
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": None, "tool_calls": [{"type": "function"}]},
            ]
        },
        "tool_calls_without_tools",
        True,
    ),
]
