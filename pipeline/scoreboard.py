"""Scoreboard ranking (pure): who leads, by the selection metric of the plan."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.run.slots import CandidateState
from pipeline.store.records import CandidateRecord


def _key(c: CandidateRecord) -> tuple[int, float, float, tuple[int, int]]:
    # Completed first; then highest evaluator score (when scored); then lowest validation loss.
    done = 0 if c.state is CandidateState.COMPLETED else 1
    score = -(c.score if c.score is not None else float("-inf"))
    loss = c.val_loss if c.val_loss is not None else float("inf")
    return (done, score, loss, c.slot.order)


def rank(cands: Iterable[CandidateRecord]) -> list[CandidateRecord]:
    """Sweep candidates best first: completed, highest score, then lowest validation loss."""
    return sorted((c for c in cands if not c.slot.is_final), key=_key)


def leader(cands: Iterable[CandidateRecord]) -> CandidateRecord | None:
    """The current leader among candidates with a metric, if any."""
    ranked = [c for c in rank(cands) if c.val_loss is not None or c.score is not None]
    return ranked[0] if ranked else None
