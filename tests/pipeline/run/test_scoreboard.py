"""Scoreboard ranking as a table: finished before running, score before loss, the final run apart."""

from __future__ import annotations

import pytest

from pipeline.domain.records import CandidateRecord
from pipeline.domain.slots import FINAL, CandidateState, Slot
from pipeline.run.scoreboard import leader, rank


def cand(
    n: int, *, state: CandidateState = CandidateState.COMPLETED, loss: float | None = None, score: float | None = None
) -> CandidateRecord:
    slot = FINAL if n == 0 else Slot.candidate(n)
    return CandidateRecord(
        run_id="r", slot=slot, job_id=f"j{n}", base_model="m", lora_rank=8, learning_rate=1e-4, epochs=1, train_samples=1,
        state=state, val_loss=loss, score=score,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("cands", "order", "lead"),
    [
        ([cand(1, loss=1.2), cand(2, loss=0.9), cand(3, loss=1.0)], [2, 3, 1], 2),  # lowest loss first
        ([cand(1, loss=0.5, state=CandidateState.RUNNING), cand(2, loss=0.9)], [2, 1], 2),  # finished first
        ([cand(1, loss=0.5, score=0.2), cand(2, loss=0.9, score=0.8)], [2, 1], 2),  # score beats loss
        ([cand(1, loss=0.9, score=0.8), cand(2, loss=0.5, score=0.8)], [2, 1], 2),  # loss breaks a score tie
        ([cand(1, score=0.5), cand(2, loss=0.1)], [1, 2], 1),  # a scored candidate ranks above an unscored one
        ([cand(2), cand(1)], [1, 2], None),  # no metric: candidate order, and nobody leads
        ([cand(0, loss=0.1), cand(1, loss=0.9)], [1], 1),  # the final run is not a candidate
    ],
)
def test_ranking(cands: list[CandidateRecord], order: list[int], lead: int | None) -> None:
    assert [c.slot.number for c in rank(cands)] == order
    top = leader(cands)
    assert (top.slot.number if top else None) == lead
