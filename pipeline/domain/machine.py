"""The run state machine, written down: phases, one transition table, one ``advance``.

Pure: ``advance(phase, event, ctx)`` returns the next phase and the effects to run. Each
effect names a step (``pipeline/run/steps``); ``ENTRY`` says which steps a phase runs when it
is entered, and resume runs the same entries for a run found in that phase. Gates are
persisted phases (``awaiting_*``): their entry step announces them, nothing is spent there,
and only a decision moves the run on.

    inspecting -> awaiting_input -> (inspecting) -> awaiting_plan_approval -> sweeping
      -> awaiting_promotion -> final_training -> evaluating -> (awaiting_input) -> deploying
      -> reporting -> succeeded                     (+ failed, cancelled from any unfinished phase)

    final_training | evaluating | deploying -> awaiting_budget -> (the same phase, or past its step)

The budget gate: a paid step that would take the run past its cap (approved x margin) does
not start; a person approves more (the step runs), skips the step (the final run: the
promoted candidate ships; the deployment: the run reports without one) or cancels.
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
    AWAITING_BUDGET = "awaiting_budget"
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
        return self in (Phase.AWAITING_INPUT, Phase.AWAITING_PLAN_APPROVAL, Phase.AWAITING_PROMOTION, Phase.AWAITING_BUDGET)


class Event(str, Enum):
    """What can happen to a run: human decisions and the steps' own results."""

    # decisions (audited with who)
    ANSWER = "answer"
    APPROVE = "approve"
    REVISE = "revise"
    PROMOTE = "promote"
    RAISE_BUDGET = "raise_budget"  # approve more money for the step the budget gate holds
    SKIP_STEP = "skip_step"  # go on without that step
    CANCEL = "cancel"
    # step results
    NEEDS_INPUT = "needs_input"
    PLANNED = "planned"
    SWEEP_DONE = "sweep_done"
    FINAL_DONE = "final_done"
    EVALUATED = "evaluated"
    DEPLOYED = "deployed"
    REPORTED = "reported"
    OVER_BUDGET = "over_budget"  # a paid step would pass the cap: it did not start
    FAIL = "fail"


class Effect(str, Enum):
    """A step to run after a transition has committed (the name of its module's function)."""

    INSPECT = "inspect"  # stage and inspect the data, ask what is missing, propose plan n+1
    ASK = "ask"  # announce the open question
    PROPOSE = "propose"  # announce the plan
    SWEEP = "sweep"
    REQUEST_PROMOTION = "request_promotion"  # announce the gate with the ranked scoreboard
    REQUEST_BUDGET = "request_budget"  # announce the budget gate with the numbers
    FINAL = "final"
    EVALUATE = "evaluate"
    DEPLOY = "deploy"
    REPORT = "report"
    CANCEL_JOBS = "cancel_jobs"  # this run's active jobs, never anything else
    FINISH = "finish"  # announce how the run ended

    @property
    def background(self) -> bool:
        """Work that takes minutes to hours and ends in an event (run in the run's own task)."""
        return self in _WORK


_WORK = frozenset({Effect.INSPECT, Effect.SWEEP, Effect.FINAL, Effect.EVALUATE, Effect.DEPLOY, Effect.REPORT})


@dataclass(frozen=True)
class Context:
    """The facts about a run that choose between branches of the table."""

    final_run: bool = True
    deploy: bool = True
    budget_held: str | None = None  # the phase an open budget gate holds (its value)
    answer_deploys: bool = False  # the open question blocks a deploy: its answer goes on to deploying


class Refused(Exception):
    """The event is not allowed in this phase; the message says why in plain words."""


# (phase, event) -> next phase. Branches that depend on the plan are resolved in ``advance``.
TABLE: dict[tuple[Phase, Event], Phase] = {
    (Phase.INSPECTING, Event.NEEDS_INPUT): Phase.AWAITING_INPUT,
    (Phase.INSPECTING, Event.PLANNED): Phase.AWAITING_PLAN_APPROVAL,
    (Phase.AWAITING_INPUT, Event.ANSWER): Phase.INSPECTING,
    (Phase.AWAITING_PLAN_APPROVAL, Event.APPROVE): Phase.SWEEPING,
    (Phase.AWAITING_PLAN_APPROVAL, Event.REVISE): Phase.INSPECTING,
    (Phase.SWEEPING, Event.SWEEP_DONE): Phase.AWAITING_PROMOTION,
    (Phase.AWAITING_PROMOTION, Event.PROMOTE): Phase.FINAL_TRAINING,
    (Phase.FINAL_TRAINING, Event.FINAL_DONE): Phase.EVALUATING,
    (Phase.EVALUATING, Event.EVALUATED): Phase.DEPLOYING,
    (Phase.EVALUATING, Event.NEEDS_INPUT): Phase.AWAITING_INPUT,  # deploy blocked: a person decides
    (Phase.DEPLOYING, Event.DEPLOYED): Phase.REPORTING,
    (Phase.REPORTING, Event.REPORTED): Phase.SUCCEEDED,
    (Phase.FINAL_TRAINING, Event.OVER_BUDGET): Phase.AWAITING_BUDGET,
    (Phase.EVALUATING, Event.OVER_BUDGET): Phase.AWAITING_BUDGET,
    (Phase.DEPLOYING, Event.OVER_BUDGET): Phase.AWAITING_BUDGET,
}

# The budget gate goes back to the phase it holds (more approved) or past the held step
# (skipped): the held phase is the run's open budget request (``Context.budget_held``).
# Evaluation holds for the production deployment when it scores the final model on it;
# skipping the deployment then skips that scoring too (there is nothing to score it on).
BUDGET_EXITS: dict[tuple[str, Event], Phase] = {
    (Phase.FINAL_TRAINING.value, Event.RAISE_BUDGET): Phase.FINAL_TRAINING,
    (Phase.FINAL_TRAINING.value, Event.SKIP_STEP): Phase.EVALUATING,
    (Phase.EVALUATING.value, Event.RAISE_BUDGET): Phase.EVALUATING,
    (Phase.EVALUATING.value, Event.SKIP_STEP): Phase.REPORTING,
    (Phase.DEPLOYING.value, Event.RAISE_BUDGET): Phase.DEPLOYING,
    (Phase.DEPLOYING.value, Event.SKIP_STEP): Phase.REPORTING,
}


def allowed(phase: Phase, event: Event) -> bool:
    """Whether ``event`` can move a run in ``phase`` at all (its branch may still depend on the run)."""
    budget = phase is Phase.AWAITING_BUDGET and event in (Event.RAISE_BUDGET, Event.SKIP_STEP)
    return (phase, event) in TABLE or budget


# What entering a phase runs; resume runs the same for a run found in that phase.
ENTRY: dict[Phase, tuple[Effect, ...]] = {
    Phase.INSPECTING: (Effect.INSPECT,),
    Phase.AWAITING_INPUT: (Effect.ASK,),
    Phase.AWAITING_PLAN_APPROVAL: (Effect.PROPOSE,),
    Phase.SWEEPING: (Effect.SWEEP,),
    Phase.AWAITING_PROMOTION: (Effect.REQUEST_PROMOTION,),
    Phase.AWAITING_BUDGET: (Effect.REQUEST_BUDGET,),
    Phase.FINAL_TRAINING: (Effect.FINAL,),
    Phase.EVALUATING: (Effect.EVALUATE,),
    Phase.DEPLOYING: (Effect.DEPLOY,),
    Phase.REPORTING: (Effect.REPORT,),
    Phase.SUCCEEDED: (Effect.FINISH,),
    Phase.FAILED: (Effect.CANCEL_JOBS, Effect.FINISH),
    Phase.CANCELLED: (Effect.CANCEL_JOBS, Effect.FINISH),
}

WAITING_FOR: dict[Phase, str] = {
    Phase.INSPECTING: "the dataset is still being inspected",
    Phase.AWAITING_INPUT: "the run is waiting for an answer to its question",
    Phase.AWAITING_PLAN_APPROVAL: "the plan is waiting for approval",
    Phase.SWEEPING: "the sweep is running",
    Phase.AWAITING_PROMOTION: "the run is waiting for someone to promote a candidate",
    Phase.AWAITING_BUDGET: "the run is waiting for someone to approve more money or skip a step",
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
        return Phase.CANCELLED, ENTRY[Phase.CANCELLED]
    if event is Event.FAIL:
        return Phase.FAILED, ENTRY[Phase.FAILED]
    nxt = TABLE.get((phase, event))
    if phase is Phase.AWAITING_BUDGET:
        nxt = BUDGET_EXITS.get((ctx.budget_held or "", event))
    if nxt is None:
        raise Refused(f"cannot {event.value} now: {WAITING_FOR.get(phase, phase.value)}")
    if phase is Phase.AWAITING_INPUT and event is Event.ANSWER and ctx.answer_deploys:
        nxt = Phase.DEPLOYING
    nxt = _skip_forward(nxt, ctx)
    return nxt, ENTRY[nxt]
