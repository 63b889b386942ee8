"""Scoreboard ranking (pure): who leads, by the selection metric of the plan."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.domain.records import CandidateRecord
from pipeline.domain.slots import CandidateState
from pipeline.planning.plan_types import Duration


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


def timing(c: CandidateRecord, now: float, planned: Duration | None = None) -> tuple[float | None, float | None]:
    """(elapsed, remaining) seconds of one job; None where unknown.

    Elapsed runs from when it was first seen running. Remaining comes from its own progress
    rate once it has some, from the plan's estimate before that (and for jobs still waiting).
    """
    guess = (planned.low_seconds + planned.high_seconds) / 2 if planned is not None else None
    if c.state.is_finished():
        spent = c.finished_at - c.started_at if c.started_at is not None and c.finished_at is not None else None
        return spent, 0.0
    if c.started_at is None:
        return None, guess
    elapsed = max(0.0, now - c.started_at)
    if c.progress > 0:
        return elapsed, elapsed * (100.0 - c.progress) / c.progress
    return elapsed, max(0.0, guess - elapsed) if guess is not None else None
