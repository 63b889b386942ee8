"""Where a run is in time: its step of the seven, elapsed, remaining, spent so far.

Pure functions over stored records, so the root message, the scoreboard, ``/sft status``
and the terminal all say the same thing. Remaining time is extrapolated from the jobs' own
progress (the platform's percentage since each job first ran); with nothing to extrapolate
from it is None, and the surfaces say nothing rather than guess.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from pipeline.domain.machine import Phase
from pipeline.domain.records import CandidateRecord
from pipeline.domain.slots import CandidateState

TOTAL_STEPS = 7
# The seven phases of DESIGN.md as people count them; a gate belongs to the step it decides.
STEP = {
    Phase.INSPECTING: 1,
    Phase.AWAITING_INPUT: 1,
    Phase.AWAITING_PLAN_APPROVAL: 2,
    Phase.SWEEPING: 3,
    Phase.AWAITING_PROMOTION: 4,
    Phase.FINAL_TRAINING: 5,
    Phase.EVALUATING: 6,
    Phase.DEPLOYING: 7,
    Phase.REPORTING: 7,
}
_ACTIVE = (CandidateState.SUBMITTING, CandidateState.PENDING, CandidateState.RUNNING, CandidateState.PRUNING)


def job_total(c: CandidateRecord, now: float) -> float | None:
    """How long this job trains in all: measured once it completed, extrapolated while it runs."""
    if c.started_at is None:
        return None
    if c.state is CandidateState.COMPLETED:
        return max(0.0, c.updated_at - c.started_at)
    if c.state is CandidateState.RUNNING and 1.0 <= c.progress < 100.0:
        return (now - c.started_at) * 100.0 / c.progress
    return None


def job_remaining(c: CandidateRecord, now: float) -> float | None:
    total = job_total(c, now)
    if total is None or c.started_at is None:
        return None
    return max(0.0, total - (now - c.started_at))


def remaining(cands: Sequence[CandidateRecord], *, max_parallel: int, now: float) -> float | None:
    """Seconds until every job of ``cands`` has finished, or None when it cannot be told yet.

    The longest-running active job sets the pace; waiting ones start as slots free up, in
    waves of ``max_parallel``, each taking about as long as the jobs seen so far (median).
    """
    active = [c for c in cands if c.state in _ACTIVE]
    waiting = [c for c in cands if c.state is CandidateState.WAITING]
    if not active and not waiting:
        return 0.0
    known = [t for c in cands if (t := job_total(c, now)) is not None]
    typical = statistics.median(known) if known else None
    left = []
    for c in active:
        r = job_remaining(c, now)
        if r is None:
            if typical is None:
                return None
            r = typical  # submitted or queued at the platform: about one whole job
        left.append(r)
    longest = max(left, default=0.0)
    if not waiting:
        return longest
    if typical is None:
        return None
    return longest + math.ceil(len(waiting) / max(1, max_parallel)) * typical


def minutes(seconds: float) -> str:
    """A duration as people say it in chat: 40 s, 12 min, 1 h 05 min."""
    if seconds < 60:
        return f"{max(0, round(seconds))} s"
    m = round(seconds / 60)
    if m < 60:
        return f"{m} min"
    return f"{m // 60} h {m % 60:02d} min"
