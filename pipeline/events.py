"""Typed events the runner publishes for surfaces (terminal, Slack).

Events are published only after the change they describe has committed. A surface that
raises does not stop the run: the bus logs and goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

from pipeline.store.records import Actor, CandidateRecord, Question, RunRecord

log = logging.getLogger("sftbot.events")


class EventKind(str, Enum):
    RUN_CREATED = "run_created"
    PHASE_CHANGED = "phase_changed"
    QUESTION_ASKED = "question_asked"
    PLAN_PROPOSED = "plan_proposed"
    PLAN_DECIDED = "plan_decided"
    CANDIDATE_PROGRESS = "candidate_progress"
    SCOREBOARD_CHANGED = "scoreboard_changed"
    STALL_WARNING = "stall_warning"
    PROMOTION_REQUESTED = "promotion_requested"
    PROMOTION_DECIDED = "promotion_decided"
    FINAL_PROGRESS = "final_progress"
    EVALUATION_DONE = "evaluation_done"
    DEPLOYED = "deployed"
    REPORT_READY = "report_ready"
    FAILED = "failed"
    CANCELLED = "cancelled"
    NOTICE = "notice"  # a milestone sentence worth a thread reply


class RunEvent(BaseModel):
    """One thing that happened to a run, with what a surface needs to show it."""

    kind: EventKind
    run: RunRecord
    at: float = Field(default_factory=time.time)
    actor: Actor | None = None
    text: str = ""  # one plain sentence for the surface
    question: Question | None = None
    plan_version: int | None = None
    decision: str | None = None
    candidates: list[CandidateRecord] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)  # name -> local path (report, loss curve)
    data: dict[str, Any] = Field(default_factory=dict)


Subscriber = Callable[[RunEvent], Awaitable[None]]


class EventBus:
    """Fan-out of run events to every subscribed surface."""

    def __init__(self) -> None:
        self._subs: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> None:
        self._subs.append(fn)

    async def publish(self, event: RunEvent) -> None:
        for fn in list(self._subs):
            try:
                await fn(event)
            except Exception:  # a broken surface must not break the run
                log.exception("subscriber failed on %s for run %s", event.kind.value, event.run.number)
