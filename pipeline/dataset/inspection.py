"""Typed results of inspecting a dataset (pure data; the inspector fills them).

msgspec structs rather than pydantic models: `sftbot inspect` must start in a blink
(issue #23), and defining the first pydantic model of a process costs ~100 ms of imports and
schema building, while msgspec is already loaded for the inspector's decoder. They encode
to and from JSON with ``report_json``/``read_report`` (the run caches its inspection as JSON).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import msgspec


class Shape(str, Enum):
    """What the file as a whole looks like."""

    CHAT = "chat"  # OpenAI chat JSONL: {"messages": [...]}
    QUESTION_ANSWER = "question_answer"  # {"question", "answer"} rows
    PROMPT_COMPLETION = "prompt_completion"  # {"prompt", "completion"} rows
    SHAREGPT = "sharegpt"  # {"conversations": [{"from", "value"}, ...]} rows (axolotl, LLaMA-Factory)
    ALPACA = "alpaca"  # {"instruction", "input", "output"} rows
    EMPTY = "empty"
    UNKNOWN = "unknown"


class Problem(msgspec.Struct, kw_only=True):
    """One problem at one line (1-based); where it can be pointed at, the spot itself."""

    line: int
    message: str
    excerpt: str | None = None  # at most EXCERPT_CHARS of the line around the problem
    caret: int | None = None  # the problem's offset in ``excerpt``


EXCERPT_CHARS = 44  # fits a phone's monospace line (~45), caret line included


def excerpt(text: str, pos: int) -> tuple[str, int]:
    """The part of ``text`` around ``pos`` that fits a phone, and where ``pos`` falls in it."""
    start = max(0, min(pos - EXCERPT_CHARS // 2, len(text) - EXCERPT_CHARS))
    part = text[start : start + EXCERPT_CHARS]
    # Control characters would break the layout (a tab is wider than one column).
    return "".join(ch if ch.isprintable() else " " for ch in part), pos - start


class ProblemGroup(msgspec.Struct, kw_only=True):
    """All problems of one kind: the first few with line numbers, and the total."""

    kind: str  # e.g. "invalid_json", "unknown_role"
    title: str  # human sentence for the kind, e.g. "invalid JSON"
    blocking: bool  # True: the run cannot train on this data as it is
    count: int
    examples: list[Problem] = msgspec.field(default_factory=list)


class Conversion(msgspec.Struct, kw_only=True):
    """A conversion the inspector offers; applying it writes a new file."""

    kind: str  # a key of pipeline.dataset.convert.CONVERSIONS, e.g. "sharegpt_to_chat"
    description: str
    rows: int  # how many rows it touches


class InspectionReport(msgspec.Struct, kw_only=True):
    """Everything a plan needs to know about a dataset, and every problem by line."""

    path: str
    bytes: int
    lines: int  # non-blank lines seen
    samples: int  # rows that are trainable after the offered conversion
    shape: Shape
    role_counts: dict[str, int] = msgspec.field(default_factory=dict)
    avg_turns: float = 0.0  # assistant turns per sample
    tokens: int = 0  # estimated tokens over the trainable samples
    token_method: str = ""  # how tokens were estimated (labelled as an estimate)
    max_sample_tokens: int = 0
    longest_line: int | None = None  # the line of the longest sample (1-based)
    problems: list[ProblemGroup] = msgspec.field(default_factory=list)
    conversions: list[Conversion] = msgspec.field(default_factory=list)

    @property
    def blocking(self) -> bool:
        """True when the data cannot be trained on, even with the offered conversion."""
        return any(g.blocking for g in self.problems)

    @property
    def trainable(self) -> bool:
        return not self.blocking


def to_dict(report: InspectionReport) -> dict[str, Any]:
    """The report as plain JSON types (what `sftbot inspect --json` prints, plus its verdict)."""
    out: dict[str, Any] = msgspec.to_builtins(report)
    return out


def report_json(report: InspectionReport) -> bytes:
    return msgspec.json.format(msgspec.json.encode(report), indent=1)


def read_report(data: str | bytes) -> InspectionReport:
    return msgspec.json.decode(data, type=InspectionReport)
