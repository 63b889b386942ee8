"""Typed results of inspecting a dataset (pure data; the inspector fills them)."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field


class Shape(str, Enum):
    """What the file as a whole looks like."""

    CHAT = "chat"  # OpenAI chat JSONL: {"messages": [...]}
    QUESTION_ANSWER = "question_answer"  # {"question", "answer"} rows
    PROMPT_COMPLETION = "prompt_completion"  # {"prompt", "completion"} rows
    EMPTY = "empty"
    UNKNOWN = "unknown"


class Problem(BaseModel):
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


class ProblemGroup(BaseModel):
    """All problems of one kind: the first few with line numbers, and the total."""

    kind: str  # e.g. "invalid_json", "unknown_role"
    title: str  # human sentence for the kind, e.g. "invalid JSON"
    blocking: bool  # True: the run cannot train on this data as it is
    count: int
    examples: list[Problem] = Field(default_factory=list)


class Conversion(BaseModel):
    """A conversion the inspector offers; applying it writes a new file."""

    kind: str  # "question_answer_to_chat" | "prompt_completion_to_chat" | "ground_truth_to_assistant" | "tool_role"
    description: str
    rows: int  # how many rows it touches


class InspectionReport(BaseModel):
    """Everything a plan needs to know about a dataset, and every problem by line."""

    path: str
    bytes: int
    lines: int  # non-blank lines seen
    samples: int  # rows that are trainable after the offered conversion
    shape: Shape
    role_counts: dict[str, int] = Field(default_factory=dict)
    avg_turns: float = 0.0  # assistant turns per sample
    tokens: int = 0  # estimated tokens over the trainable samples
    token_method: str = ""  # how tokens were estimated (labelled as an estimate)
    max_sample_tokens: int = 0
    longest_line: int | None = None  # the line of the longest sample (1-based)
    problems: list[ProblemGroup] = Field(default_factory=list)
    conversions: list[Conversion] = Field(default_factory=list)

    @property
    def blocking(self) -> bool:
        """True when the data cannot be trained on, even with the offered conversion."""
        return any(g.blocking for g in self.problems)

    @property
    def trainable(self) -> bool:
        return not self.blocking
