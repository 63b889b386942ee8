"""What happened to a run, one small frozen class per kind, for the surfaces (terminal, Slack).

Events describe committed changes: those raised inside a write are delivered after its
COMMIT (``Tx.emit``); the rest are emitted after the write that recorded their state. A
surface that raises does not stop the run: the bus logs and goes on. Surfaces choose what
to do by the event's class, never by its wording.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.domain.gates import BudgetRequest, BudgetStep, Question
from pipeline.domain.machine import Event, Phase
from pipeline.domain.money import money
from pipeline.domain.platform import DeploymentStatus
from pipeline.domain.records import Actor, CandidateRecord, RunRecord
from pipeline.domain.slots import Slot
from pipeline.evaluation.compare import Comparison
from pipeline.planning.plan_types import Plan

log = logging.getLogger("sftbot.events")


@dataclass(frozen=True, kw_only=True)
class RunEvent:
    """The run as it is after the change, who caused it (None: the bot), and when."""

    run: RunRecord
    actor: Actor | None = None
    at: float = field(default_factory=time.time)


@dataclass(frozen=True, kw_only=True)
class RunCreated(RunEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class PhaseChanged(RunEvent):
    event: Event
    previous: Phase


@dataclass(frozen=True, kw_only=True)
class QuestionAsked(RunEvent):
    question: Question


@dataclass(frozen=True, kw_only=True)
class PlanProposed(RunEvent):
    plan: Plan


@dataclass(frozen=True, kw_only=True)
class PlanDecided(RunEvent):
    decision: Event  # APPROVE or REVISE
    version: int


@dataclass(frozen=True, kw_only=True)
class ScoreboardChanged(RunEvent):
    """The sweep's candidates as they are now (a live message, coalesced by surfaces)."""

    candidates: tuple[CandidateRecord, ...]


@dataclass(frozen=True, kw_only=True)
class QuotaWait(ScoreboardChanged):
    """The platform would not start a job (quota, capacity): it waits in the queue while
    ``running`` of the run's jobs go on; a scoreboard line, never a failure."""

    running: int
    reason: str  # the platform's own sentence


@dataclass(frozen=True, kw_only=True)
class FinalProgress(RunEvent):
    """The final run's job as it is now (a live message, coalesced by surfaces)."""

    candidate: CandidateRecord


@dataclass(frozen=True, kw_only=True)
class StallWarning(RunEvent):
    """A job has made no progress for a while: a warning, never a failure."""

    slot: Slot
    label: str
    minutes: float


@dataclass(frozen=True, kw_only=True)
class PromotionRequested(RunEvent):
    ranked: tuple[CandidateRecord, ...]  # best first
    summary: str  # one sentence: the winner and why
    curves: Path | None = None  # the sweep's loss curves
    comparison: Comparison | None = None  # the base model vs the leader (None: the base was not scored)


@dataclass(frozen=True, kw_only=True)
class PromotionDecided(RunEvent):
    slot: Slot


@dataclass(frozen=True, kw_only=True)
class BudgetRequested(RunEvent):
    """A paid step would take the run past its cap: it waits for a person (the budget gate)."""

    request: BudgetRequest


@dataclass(frozen=True, kw_only=True)
class SpendWarning(RunEvent):
    """A paid step that fits the cap would take committed past 80% of it: said before the step
    starts, once per step (the run does not wait)."""

    step: BudgetStep
    step_usd: float
    committed_usd: float
    cap_usd: float

    def sentence(self) -> str:
        """The warning in words every surface says (the Slack thread, the terminal)."""
        step = (
            f"{self.step.label} (first hour ≈ {money(self.step_usd)})"
            if self.step is BudgetStep.DEPLOY
            else (f"{self.step.label} (≈ {money(self.step_usd)})")
        )
        after = round(self.committed_usd + self.step_usd, 2)
        return (
            f"Run #{self.run.number} starts {step} now: that takes it to ≈ {money(after)} committed of its "
            f"{money(self.cap_usd)} cap, past 80%. A step that would pass the cap waits at a budget gate."
        )


@dataclass(frozen=True, kw_only=True)
class BudgetDecided(RunEvent):
    request: BudgetRequest
    decision: Event  # RAISE_BUDGET or SKIP_STEP


@dataclass(frozen=True, kw_only=True)
class EvaluatorFailed(RunEvent):
    """The evaluator failed on a candidate after approval: the gate ranks by validation loss."""

    slot: Slot
    reason: str


@dataclass(frozen=True, kw_only=True)
class EvaluationDone(RunEvent):
    summary: str
    candidate: CandidateRecord  # the model that ships


@dataclass(frozen=True, kw_only=True)
class Deployed(RunEvent):
    deployment: DeploymentStatus
    snippet: str


@dataclass(frozen=True, kw_only=True)
class DeploymentIdle(RunEvent):
    """The run's deployment has been up for the idle time: ask its requester, once."""

    deployment_id: str
    hours: float
    usd_per_hour: float | None


@dataclass(frozen=True, kw_only=True)
class DeploymentKept(RunEvent):
    """Someone chose to keep the deployment (``scaled``: with no replica until the next request)."""

    deployment_id: str
    scaled: bool


@dataclass(frozen=True, kw_only=True)
class DeploymentTornDown(RunEvent):
    """Someone deleted the run's deployment (``/sft teardown``): it no longer bills."""

    deployment_id: str
    state: str  # as read back from the platform


@dataclass(frozen=True, kw_only=True)
class ReportReady(RunEvent):
    report: Path
    curves: Path | None = None


@dataclass(frozen=True, kw_only=True)
class StoragePaused(RunEvent):
    """The bot's own storage failed (a full disk, a lock held elsewhere): the run waits, loses nothing."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class RunSucceeded(RunEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class RunFailed(RunEvent):
    reason: str


@dataclass(frozen=True, kw_only=True)
class RunCancelled(RunEvent):
    pass


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
                log.exception("subscriber failed on %s for run %s", type(event).__name__, event.run.number)
