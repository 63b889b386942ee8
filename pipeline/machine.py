"""The run state machine, written down: phases, one transition table, one ``advance``.

Pure: ``advance(phase, event, ctx)`` returns the next phase and the effects the runner must
execute. Gates are persisted phases (``awaiting_*``); a decision is an event. The table is
the single source of truth for what may happen when; anything not in it is refused.

    inspecting -> awaiting_input -> (inspecting) -> awaiting_plan_approval -> sweeping
      -> awaiting_promotion -> final_training -> evaluating -> deploying -> reporting
      -> succeeded                     (+ failed, cancelled from any unfinished phase)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Phase(str, Enum):
    INSPECTING = "inspecting"
    AWAITING_INPUT = "awaiting_input"
    AWAITING_PLAN_APPROVAL = "awaiting_plan_approval"
    SWEEPING = "sweeping"
    AWAITING_PROMOTION = "awaiting_promotion"
    FINAL_TRAINING = "final_training"
    EVALUATING = "evaluating"
    DEPLOYING = "deploying"
    REPORTING = "reporting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED)

    @property
    def gate(self) -> bool:
        """A phase that waits for a person (no work runs, nothing is spent)."""
        return self in (Phase.AWAITING_INPUT, Phase.AWAITING_PLAN_APPROVAL, Phase.AWAITING_PROMOTION)


class Event(str, Enum):
    """What can happen to a run: human decisions and the runner's own results."""

    # decisions (audited with who)
    ANSWER = "answer"
    APPROVE = "approve"
    REVISE = "revise"
    PROMOTE = "promote"
    CANCEL = "cancel"
    # runner results
    NEEDS_INPUT = "needs_input"
    PLANNED = "planned"
    SWEEP_DONE = "sweep_done"
    FINAL_DONE = "final_done"
    EVALUATED = "evaluated"
    DEPLOYED = "deployed"
    REPORTED = "reported"
    FAIL = "fail"


DECISIONS = frozenset({Event.ANSWER, Event.APPROVE, Event.REVISE, Event.PROMOTE, Event.CANCEL})


class Effect(str, Enum):
    """Work the runner executes after a transition has been committed."""

    INSPECT_AND_PLAN = "inspect_and_plan"
    ASK = "ask"
    PROPOSE_PLAN = "propose_plan"
    SWEEP = "sweep"
    REQUEST_PROMOTION = "request_promotion"
    FINAL_TRAIN = "final_train"
    EVALUATE = "evaluate"
    DEPLOY = "deploy"
    REPORT = "report"
    CANCEL_JOBS = "cancel_jobs"
    FINISH = "finish"


@dataclass(frozen=True)
class Context:
    """The facts about a run that choose between branches of the table."""

    final_run: bool = True
    deploy: bool = True


class Refused(Exception):
    """The event is not allowed in this phase; the message says why in plain words."""


# (phase, event) -> next phase. Branches that depend on the plan are resolved in ``advance``.
_TABLE: dict[tuple[Phase, Event], Phase] = {
    (Phase.INSPECTING, Event.NEEDS_INPUT): Phase.AWAITING_INPUT,
    (Phase.INSPECTING, Event.PLANNED): Phase.AWAITING_PLAN_APPROVAL,
    (Phase.AWAITING_INPUT, Event.ANSWER): Phase.INSPECTING,
    (Phase.AWAITING_PLAN_APPROVAL, Event.APPROVE): Phase.SWEEPING,
    (Phase.AWAITING_PLAN_APPROVAL, Event.REVISE): Phase.INSPECTING,
    (Phase.SWEEPING, Event.SWEEP_DONE): Phase.AWAITING_PROMOTION,
    (Phase.AWAITING_PROMOTION, Event.PROMOTE): Phase.FINAL_TRAINING,
    (Phase.FINAL_TRAINING, Event.FINAL_DONE): Phase.EVALUATING,
    (Phase.EVALUATING, Event.EVALUATED): Phase.DEPLOYING,
    (Phase.DEPLOYING, Event.DEPLOYED): Phase.REPORTING,
    (Phase.REPORTING, Event.REPORTED): Phase.SUCCEEDED,
}

_ENTRY_EFFECTS: dict[Phase, tuple[Effect, ...]] = {
    Phase.INSPECTING: (Effect.INSPECT_AND_PLAN,),
    Phase.AWAITING_INPUT: (Effect.ASK,),
    Phase.AWAITING_PLAN_APPROVAL: (Effect.PROPOSE_PLAN,),
    Phase.SWEEPING: (Effect.SWEEP,),
    Phase.AWAITING_PROMOTION: (Effect.REQUEST_PROMOTION,),
    Phase.FINAL_TRAINING: (Effect.FINAL_TRAIN,),
    Phase.EVALUATING: (Effect.EVALUATE,),
    Phase.DEPLOYING: (Effect.DEPLOY,),
    Phase.REPORTING: (Effect.REPORT,),
    Phase.SUCCEEDED: (Effect.FINISH,),
    Phase.FAILED: (Effect.CANCEL_JOBS, Effect.FINISH),
    Phase.CANCELLED: (Effect.CANCEL_JOBS, Effect.FINISH),
}

_WAITING_FOR: dict[Phase, str] = {
    Phase.INSPECTING: "the dataset is still being inspected",
    Phase.AWAITING_INPUT: "the run is waiting for an answer to its question",
    Phase.AWAITING_PLAN_APPROVAL: "the plan is waiting for approval",
    Phase.SWEEPING: "the sweep is running",
    Phase.AWAITING_PROMOTION: "the run is waiting for someone to promote a candidate",
    Phase.FINAL_TRAINING: "the final run is training",
    Phase.EVALUATING: "the model is being evaluated",
    Phase.DEPLOYING: "the model is being deployed",
    Phase.REPORTING: "the report is being written",
}


def _skip_forward(phase: Phase, ctx: Context) -> Phase:
    """Phases the plan switched off are passed straight through."""
    if phase is Phase.FINAL_TRAINING and not ctx.final_run:
        phase = Phase.EVALUATING
    if phase is Phase.DEPLOYING and not ctx.deploy:
        phase = Phase.REPORTING
    return phase


def advance(phase: Phase, event: Event, ctx: Context = Context()) -> tuple[Phase, tuple[Effect, ...]]:
    """The next phase and the effects to run, or ``Refused`` with a plain-English reason."""
    if phase.finished:
        raise Refused(f"the run has already {phase.value}")
    if event is Event.CANCEL:
        return Phase.CANCELLED, _ENTRY_EFFECTS[Phase.CANCELLED]
    if event is Event.FAIL:
        return Phase.FAILED, _ENTRY_EFFECTS[Phase.FAILED]
    nxt = _TABLE.get((phase, event))
    if nxt is None:
        raise Refused(f"cannot {event.value} now: {_WAITING_FOR.get(phase, phase.value)}")
    nxt = _skip_forward(nxt, ctx)
    return nxt, _ENTRY_EFFECTS[nxt]


def entry_effects(phase: Phase) -> tuple[Effect, ...]:
    """What to (re)do when a run is found in ``phase`` at start-up (resume)."""
    return _ENTRY_EFFECTS[phase]


def transitions() -> list[tuple[Phase, Event, Phase]]:
    """The table as rows (for the README and tests)."""
    return [(p, e, n) for (p, e), n in _TABLE.items()]
