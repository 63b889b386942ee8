"""Base model vs tuned model on the same held-out prompts (pure).

Two questions a person asks before promoting or deploying: did fine-tuning help at all, and
what do the answers look like. Fireworks' own guidance: a fine-tune that does not beat the
base on the held-out split is not ready, and an output identical to the base's usually means
the adapter was not loaded. This module picks the examples to show and makes both calls;
the steps read and write the files, the surfaces only format what is decided here.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

SIDE_BY_SIDE = 3  # examples shown at the gate; the report lists every held-out row


class Outputs(BaseModel):
    """One model's answers to the held-out prompts (None: that answer failed) and their scores."""

    texts: list[str | None]
    scores: list[float | None] = Field(default_factory=list)  # per example; empty without an evaluator


class Example(BaseModel):
    """One held-out row, base and tuned side by side."""

    index: int
    prompt: str
    base: str | None
    tuned: str | None
    expected: str | None
    base_score: float | None = None
    tuned_score: float | None = None


class BaseScore(BaseModel):
    """The base model on the held-out set, as stored (``note`` says why a number is missing)."""

    base_model: str
    score: float | None = None  # mean evaluator score (a failed answer counts 0, as for candidates)
    val_loss: float | None = None  # None: the platform cannot compute the base's loss (said in ``note``)
    answered: int = 0
    note: str | None = None


class Comparison(BaseModel):
    """What the promotion gate, the terminal, ``sftbot show`` and the report show."""

    base: BaseScore
    tuned: str  # the tuned model's label (the leader at the gate, the final model after evaluation)
    tuned_score: float | None = None
    tuned_val_loss: float | None = None
    beats_base: bool | None = None  # None: nothing to compare by
    identical: bool = False  # every answer the same as the base's: the adapter was probably not loaded
    examples: list[Example] = Field(default_factory=list)  # the side-by-side ones, best first
    rows: list[Example] = Field(default_factory=list)  # every held-out row (the report's table)


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and " ".join(a.split()) == " ".join(b.split())


def identical(base: Sequence[str | None], tuned: Sequence[str | None]) -> bool:
    """True when every row both models answered reads the same (whitespace aside).

    Needs at least one such row: no answers prove nothing either way.
    """
    pairs = [(b, t) for b, t in zip(base, tuned, strict=False) if b is not None and t is not None]
    return bool(pairs) and all(_same(b, t) for b, t in pairs)


def beats(base_score: float | None, tuned_score: float | None) -> bool | None:
    """Strictly better than the base by the evaluator; a tie does not count as help."""
    if base_score is None or tuned_score is None:
        return None
    return tuned_score > base_score


def beats_by_loss(base_loss: float | None, tuned_loss: float | None) -> bool | None:
    if base_loss is None or tuned_loss is None:
        return None
    return tuned_loss < base_loss


def rows_of(prompts: Sequence[str], expected: Sequence[str | None], base: Outputs, tuned: Outputs) -> list[Example]:
    def at(values: Sequence[float | None], i: int) -> float | None:
        return values[i] if i < len(values) else None

    def text(values: Sequence[str | None], i: int) -> str | None:
        return values[i] if i < len(values) else None

    return [
        Example(
            index=i,
            prompt=prompt,
            base=text(base.texts, i),
            tuned=text(tuned.texts, i),
            expected=expected[i] if i < len(expected) else None,
            base_score=at(base.scores, i),
            tuned_score=at(tuned.scores, i),
        )
        for i, prompt in enumerate(prompts)
    ]


def pick(rows: Sequence[Example], n: int = SIDE_BY_SIDE) -> list[Example]:
    """The ``n`` rows where base and tuned differ most, deterministically.

    With scores: the largest score difference first, then the lowest index. Without: rows
    whose answers differ before rows that read the same, then the lowest index (a person
    learns most from a difference; equal rows fill up only when there are no others).
    """

    def key(r: Example) -> tuple[float, int, int]:
        gap = abs(r.tuned_score - r.base_score) if r.tuned_score is not None and r.base_score is not None else -1.0
        return (-gap, 0 if not _same(r.base, r.tuned) else 1, r.index)

    return sorted(rows, key=key)[:n]


def compare(
    base: BaseScore,
    *,
    tuned: str,
    tuned_score: float | None,
    tuned_val_loss: float | None,
    rows: list[Example],
) -> Comparison:
    """Base vs one tuned model: who is better, whether the answers are all the same, which to show."""
    better = beats(base.score, tuned_score)
    if better is None:
        better = beats_by_loss(base.val_loss, tuned_val_loss)
    return Comparison(
        base=base,
        tuned=tuned,
        tuned_score=tuned_score,
        tuned_val_loss=tuned_val_loss,
        beats_base=better,
        identical=identical([r.base for r in rows], [r.tuned for r in rows]),
        examples=pick(rows),
        rows=rows,
    )
