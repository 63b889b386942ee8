"""Which training job of a run: a sweep candidate or the final run, and the job's state.

A slot is written ``c3`` (candidate 3, 1-based) or ``final``, in the store, in resource ids
and in button values; it is parsed only here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from pipeline.domain.platform import JobState
from pipeline.domain.provenance import IllegalMove

_SLOT = re.compile(r"c([1-9][0-9]{0,5})|final")


@dataclass(frozen=True)
class Slot:
    """A sweep candidate (``number`` 1..n) or the final run (``number`` None)."""

    number: int | None

    @staticmethod
    def candidate(number: int) -> Slot:
        if number < 1:
            raise ValueError(f"candidates are numbered from 1, not {number}")
        return Slot(number)

    @staticmethod
    def parse(text: object) -> Slot:
        """``c3`` or ``final`` (also a bare candidate number such as ``3``); ValueError otherwise."""
        raw = str(text).strip().lstrip("#")
        if raw.isdigit() and 0 < len(raw) <= 6:
            return Slot.candidate(int(raw))
        m = _SLOT.fullmatch(raw)
        if m is None:
            raise ValueError(f"{str(text)[:40]!r} is neither a candidate (c1, c2, …) nor the final run")
        return FINAL if m.group(1) is None else Slot.candidate(int(m.group(1)))

    @property
    def is_final(self) -> bool:
        return self.number is None

    @property
    def name(self) -> str:
        """How people read it: ``#3`` or ``final``."""
        return "final" if self.number is None else f"#{self.number}"

    @property
    def order(self) -> tuple[int, int]:
        """Candidates in number order, the final run last."""
        return (1, 0) if self.number is None else (0, self.number)

    def __str__(self) -> str:
        return "final" if self.number is None else f"c{self.number}"


FINAL = Slot(None)


class CandidateState(str, Enum):
    """A training job as the run sees it, from planned to finished.

    WAITING and SUBMITTING are the run's own: the job is planned (or back in the queue after
    the platform refused it for quota), or its id is recorded and the create call is in
    flight — on resume a SUBMITTING job is looked up before anything is created.

    PRUNING and PRUNED are the run's own too (pipeline/run/prune_rule.py): the decision to stop a
    hopeless candidate is recorded (PRUNING, still active: its cancel may not have landed)
    before the platform's cancel is sent, and PRUNED once the job has stopped. A pruned
    candidate has no model: it is never promoted and is not a failure.
    """

    WAITING = "waiting"
    SUBMITTING = "submitting"
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PRUNING = "pruning"
    PRUNED = "pruned"

    def is_finished(self) -> bool:
        return self in (CandidateState.COMPLETED, CandidateState.FAILED, CandidateState.CANCELLED, CandidateState.PRUNED)

    def is_active(self) -> bool:
        """Submitted (or being submitted) and not finished: it may hold platform resources."""
        return self in (CandidateState.SUBMITTING, CandidateState.PENDING, CandidateState.RUNNING, CandidateState.PRUNING)

    @staticmethod
    def of(job: JobState) -> CandidateState:
        """The state of a job the platform reported."""
        return CandidateState(job.value)

    def check_move(self, to: CandidateState) -> None:
        """Raise IllegalMove unless a candidate in this state may move to ``to`` (the same state
        again is always allowed: a poll records what it saw before). A finished candidate never
        moves: its model, its cost and its place on the scoreboard are settled."""
        if to is not self and to not in _MOVES.get(self, frozenset()):
            raise IllegalMove(f"a candidate cannot move from {self.value} to {to.value}")


C = CandidateState
_SETTLED = frozenset({C.PENDING, C.RUNNING, C.COMPLETED, C.FAILED, C.CANCELLED})
# Where each state may go next (finished states are absent: they go nowhere).
# SUBMITTING -> WAITING: the platform refused the create (quota) or never heard of it (a crash
# between recording and creating). PRUNING -> RUNNING: the platform refused the cancel, or is
# still stopping the job when the run ends. A job read back may jump states between two polls.
_MOVES: dict[CandidateState, frozenset[CandidateState]] = {
    C.WAITING: frozenset({C.SUBMITTING}),
    C.SUBMITTING: frozenset({C.WAITING, *_SETTLED}),
    C.PENDING: _SETTLED,
    C.RUNNING: frozenset({C.PRUNING, *_SETTLED}),
    C.PRUNING: frozenset({C.PENDING, C.RUNNING, C.COMPLETED, C.PRUNED}),
}


def _coerce(value: object) -> Slot:
    if isinstance(value, Slot):
        return value
    if isinstance(value, dict) and "number" in value:  # a Slot dumped as a plain dataclass
        number = value["number"]
        return FINAL if number is None else Slot.candidate(int(number))
    return Slot.parse(value)


# A Slot inside pydantic models: stored and sent as "c3" / "final".
SlotField = Annotated[Slot, PlainValidator(_coerce), PlainSerializer(str, return_type=str), WithJsonSchema({"type": "string"})]
