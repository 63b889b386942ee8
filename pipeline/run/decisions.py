"""The one decision function: every click, modal, thread reply, mention and terminal prompt.

``decide`` authorizes the person, works out which gate the decision closes, records it with
the transition and its audit event in one transaction, and raises ``Refusal`` otherwise.
``Refusal.sentence`` is the one map from a refusal to what the person reads; surfaces only
choose how names and times look.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from pipeline.dataset.access import LocalFiles, check_use
from pipeline.domain.authz import Action, Policy, Rule, Subject, authorize
from pipeline.domain.gates import PROMOTION, GateKey, apply_answer
from pipeline.domain.machine import WAITING_FOR, Event, Phase, Refused, allowed
from pipeline.domain.money import money
from pipeline.domain.records import Actor, GateDecision, RunRecord
from pipeline.domain.slots import CandidateState, Slot
from pipeline.domain.spec import RunSpec, SpecError
from pipeline.run.authorship import authors_of, supplies_evaluator
from pipeline.store import runs, uploads
from pipeline.store.db import Database, GateAlreadyDecided
from pipeline.store.runs import RunChanges


@dataclass(frozen=True)
class Approve:
    plan_version: int | None = None  # the version the person saw (None: the current one)


@dataclass(frozen=True)
class Revise:
    spec: RunSpec
    plan_version: int | None = None


@dataclass(frozen=True)
class Promote:
    slot: Slot


@dataclass(frozen=True)
class Answer:
    answer: str
    question: int | None = None  # the question number the person answered (None: the open one)


@dataclass(frozen=True)
class RaiseBudget:
    """Approve the budget gate's ``more_usd``: the held step runs."""

    number: int | None = None  # the budget request the person saw (None: the open one)
    # The amount the person typed (`sftbot decide N raise 12.50`): it must be the gate's own, to
    # the cent, so nobody approves a sum they did not name (None: the button, which names it).
    amount_usd: float | None = None


@dataclass(frozen=True)
class SkipStep:
    """Go on without the step the budget gate holds."""

    number: int | None = None


@dataclass(frozen=True)
class Cancel:
    pass


Decision = Approve | Revise | Promote | Answer | RaiseBudget | SkipStep | Cancel

_EVENT: dict[type[Any], tuple[Event, Action]] = {
    Approve: (Event.APPROVE, Action.APPROVE),
    Revise: (Event.REVISE, Action.REVISE),
    Promote: (Event.PROMOTE, Action.PROMOTE),
    Answer: (Event.ANSWER, Action.ANSWER),
    # More money is approved like a plan (approvers, admins above the budget, four eyes);
    # skipping a paid step changes what ships, so it is decided like a promotion.
    RaiseBudget: (Event.RAISE_BUDGET, Action.APPROVE),
    SkipStep: (Event.SKIP_STEP, Action.PROMOTE),
    Cancel: (Event.CANCEL, Action.CANCEL),
}


def event_of(decision: Decision) -> Event:
    return _EVENT[type(decision)][0]


class RefusalKind(str, Enum):
    NOT_FOUND = "not_found"  # no such run
    DENIED = "denied"  # the policy does not allow this person
    DECIDED = "decided"  # the gate was decided before: the first decision wins
    STALE = "stale"  # the person decided on something replaced since (an old plan, an old question)
    NOT_NOW = "not_now"  # the run is not at that gate
    INVALID = "invalid"  # the decision itself cannot be carried out (a candidate that failed, a bad value)


def _plain_person(user_id: str, label: str) -> str:
    return label or user_id


def _utc(epoch: float) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(epoch))


_VERBS = {"approve": "approved", "revise": "revised", "promote": "promoted", "cancel": "cancelled", "answer": "answered"}
_VERBS |= {"raise_budget": "decided (more money approved)", "skip_step": "decided (step skipped)"}
_WHAT = {
    Event.APPROVE: "plan",
    Event.REVISE: "plan",
    Event.PROMOTE: "promotion gate",
    Event.ANSWER: "question",
    Event.RAISE_BUDGET: "budget gate",
    Event.SKIP_STEP: "budget gate",
    Event.CANCEL: "run",
}
_DO = {Event.RAISE_BUDGET: "approve more money for", Event.SKIP_STEP: "skip a step of"}
_UNSAFE = (
    "evaluators may run without the sandbox here (SFTBOT_UNSAFE_EVALUATORS is on), so only an admin can supply an "
    "evaluator file: {admins}. Use `eval=loss` or `eval=generate` instead."
)


@dataclass(frozen=True)
class Denial:
    """What a DENIED refusal explains: the rule that said no, the policy it read, the estimate the
    budget rule judged, and ``verb``: what the person tried, when the event's name would mislead
    ("deploy", not "answer")."""

    rule: Rule | None
    policy: Policy
    estimated_usd: float | None = None
    verb: str | None = None


class Refusal(Exception):
    """Nothing happened; ``sentence()`` says why and what to do instead."""

    def __init__(
        self,
        kind: RefusalKind,
        detail: str = "",
        *,
        event: Event | None = None,
        first: GateDecision | None = None,
        denial: Denial | None = None,
    ) -> None:
        self.kind, self.detail, self.event, self.first = kind, detail, event, first
        d = denial or Denial(None, Policy())
        self.rule, self.policy, self.estimated_usd, self.verb = d.rule, d.policy, d.estimated_usd, d.verb
        super().__init__(self.sentence())

    @classmethod
    def denied(
        cls,
        rule: Rule | None,
        policy: Policy,
        *,
        event: Event | None = None,
        estimated_usd: float | None = None,
        verb: str | None = None,
    ) -> Refusal:
        """Authorization said no (``rule``, read from ``policy``)."""
        return cls(RefusalKind.DENIED, event=event, denial=Denial(rule, policy, estimated_usd, verb))

    def sentence(
        self,
        *,
        person: Callable[[str, str], str] = _plain_person,
        when: Callable[[float], str] = _utc,
        place: Callable[[str], str] = str,
    ) -> str:
        """What the person reads; ``person(id, label)``, ``when(epoch)`` and ``place(channel)`` format."""
        if self.kind is RefusalKind.DECIDED and self.first is not None:
            f = self.first
            what = _WHAT.get(self.event, "gate") if self.event else "gate"
            verb = _VERBS.get(f.decision, f.decision)
            return f"This {what} was already {verb} by {person(f.actor, f.actor_name)} at {when(f.decided_at)}; nothing else was done."
        if self.kind is RefusalKind.DENIED and self.rule is not None:
            return self._denial(person, place)
        return self.detail

    def _denial(self, person: Callable[[str, str], str], place: Callable[[str], str]) -> str:
        p = self.policy

        def who(ids: list[str], fallback: str) -> str:
            return ", ".join(person(i, "") for i in ids[:10]) if ids else fallback

        verb = self.verb or (_DO.get(self.event, self.event.value) if self.event else "do")
        if self.rule is Rule.CHANNEL:
            return f"sftbot is not enabled in this channel; runs and decisions happen in {', '.join(place(c) for c in p.channels[:5])}."
        if self.rule is Rule.NOT_APPROVER:
            return f"only {who(p.approvers, 'the approvers')} can {verb} this run; they were asked in its thread."
        if self.rule is Rule.SELF_APPROVAL:
            return (
                "you asked for this run or wrote part of its plan; someone else must approve it: "
                f"{who(p.approvers, 'another teammate')} (asked in its thread)."
            )
        if self.rule is Rule.EVALUATOR_CODE:
            return _UNSAFE.format(admins=who(p.admins, "an admin"))
        if self.rule is Rule.OVER_BUDGET:
            over = (
                f"the estimate {money(self.estimated_usd)} is above the {money(p.budget_usd)} budget"
                if self.estimated_usd is not None
                else f"the cost of this plan could not be estimated and there is a {money(p.budget_usd)} budget"
            )
            return f"{over}, so an admin has to approve it: {who(p.admins, 'an admin')}."
        return f"only the person who started this run, an approver or an admin can {verb} it."


class Gatekeeper(Protocol):
    """What ``decide`` needs from the runner: the store, the policy, and a transition."""

    db: Database

    @property
    def policy(self) -> Policy: ...

    @property
    def files(self) -> LocalFiles: ...

    async def transition(
        self,
        run_id: str,
        event: Event,
        *,
        actor: Actor,
        gate: GateDecision | None = None,
        changes: RunChanges | None = None,
        details: dict[str, Any] | None = None,
    ) -> RunRecord: ...


async def decide(keeper: Gatekeeper, key: str | int, decision: Decision, actor: Actor, *, channel: str | None) -> RunRecord:
    """Record one decision at a gate and move the run on; raises ``Refusal`` when nothing happened."""
    run = await runs.get_run(keeper.db, key)
    event, _ = _EVENT[type(decision)]
    if run is None:
        raise Refusal(RefusalKind.NOT_FOUND, f"There is no run {str(key)[:20]}.", event=event)
    refusal = await screen(keeper, run, decision, actor, channel=channel)
    if refusal is not None:
        raise refusal
    await check_open(keeper.db, run, decision)
    gate, changes, details = _gate(run, decision, event)
    if "spec" in changes:
        try:  # a revision or an answer may name a file or a dataset: the same checks as a new run
            await check_use(
                changes["spec"], channel=run.channel, files=keeper.files, origin=lambda r: uploads.origin(keeper.db, r)
            )
        except SpecError as exc:
            raise Refusal(RefusalKind.INVALID, str(exc), event=event) from None
    record = (
        GateDecision(
            run_id=run.id,
            gate=gate,
            decision=event.value,
            actor=actor.id,
            actor_name=actor.name,
            plan_version=run.plan_version,
            details=details,
            decided_at=time.time(),
        )
        if gate is not None
        else None
    )
    try:
        return await keeper.transition(run.id, event, actor=actor, gate=record, changes=changes, details=details)
    except GateAlreadyDecided as exc:
        raise Refusal(RefusalKind.DECIDED, event=event, first=exc.first) from None
    except Refused as exc:
        raise Refusal(RefusalKind.NOT_NOW, f"Run #{run.number}: {exc}.", event=event) from None


async def screen(keeper: Gatekeeper, run: RunRecord, decision: Decision, actor: Actor, *, channel: str | None) -> Refusal | None:
    """``permission``, a denial recorded in the audit trail (asked before anything is fetched or posted for it, too)."""
    refusal = await permission(keeper, run, decision, actor, channel=channel)
    if refusal is not None:
        details = {"rule": refusal.rule.value if refusal.rule else None, "reason": refusal.sentence()}
        said = {"actor_name": actor.name, "action": f"denied_{event_of(decision).value}", "plan_version": run.plan_version}
        await keeper.db.audit(run_id=run.id, actor=actor.id, details=details, **said)
    return refusal


async def permission(
    keeper: Gatekeeper, run: RunRecord, decision: Decision, actor: Actor, *, channel: str | None
) -> Refusal | None:
    """The denial ``decide`` would give this person, or None; also asked before opening a form
    so nobody fills in a Revise modal they may not submit."""
    event, action = _EVENT[type(decision)]
    if isinstance(decision, Answer) and run.question is not None and run.question.kind.blocks_deploy:
        action = Action.PROMOTE  # deploying anyway spends like a promotion: the same people decide
    version = decision.plan_version if isinstance(decision, Approve) and decision.plan_version else run.plan_version
    authors = await authors_of(keeper.db, run, version) if action is Action.APPROVE else frozenset()
    usd = run.estimated_usd
    if isinstance(decision, RaiseBudget) and run.budget is not None:
        usd = run.budget.approved_usd + run.budget.more_usd  # what would then be approved in all
    about = Subject(
        requester=run.requester,
        authors=authors,
        estimated_usd=usd,
        evaluator_code=supplies_evaluator(
            run,
            revised=decision.spec if isinstance(decision, Revise) else None,
            answer=decision.answer if isinstance(decision, Answer) else None,
        ),
    )
    verdict = authorize(actor, action, policy=keeper.policy, channel=channel, about=about)
    if not verdict.denied:
        return None
    verb = "deploy" if action is Action.PROMOTE and event is Event.ANSWER else None
    return Refusal.denied(verdict.rule, keeper.policy, event=event, estimated_usd=usd, verb=verb)


def _target(run: RunRecord, decision: Decision) -> GateKey | None:
    """The gate a decision is about (before checking that it can close it)."""
    if isinstance(decision, Approve | Revise):
        return GateKey.plan(decision.plan_version or run.plan_version)
    if isinstance(decision, Promote):
        return PROMOTION
    if isinstance(decision, Answer):
        number = decision.question or (run.question.number if run.question else None)
        return GateKey.input(number) if number else None
    if isinstance(decision, RaiseBudget | SkipStep):
        number = decision.number or (run.budget.number if run.budget else None)
        return GateKey.budget(number) if number else None
    return None


async def check_open(db: Database, run: RunRecord, decision: Decision) -> None:
    """Raise the Refusal ``decide`` would raise, without deciding (e.g. before opening a form).

    A gate decided before answers first (who decided it wins over "that plan is old").
    """
    event = event_of(decision)
    target = _target(run, decision)
    if target is not None:
        first = next((g for g in await db.gate_decisions(run.id) if g.gate == target), None)
        if first is not None:
            raise Refusal(RefusalKind.DECIDED, event=event, first=first)
    if run.phase.finished:
        raise Refusal(RefusalKind.NOT_NOW, f"Run #{run.number} has already {run.phase.value}; nothing was done.", event=event)
    _gate(run, decision, event)
    if not isinstance(decision, Cancel) and not allowed(run.phase, event):
        raise Refusal(
            RefusalKind.NOT_NOW,
            f"Run #{run.number}: cannot {event.value} now: {WAITING_FOR.get(run.phase, run.phase.value)}.",
            event=event,
        )
    if isinstance(decision, Promote):
        await check_promotable(db, run, decision.slot)


def _gate(run: RunRecord, decision: Decision, event: Event) -> tuple[GateKey | None, RunChanges, dict[str, Any]]:
    """The gate a decision closes, the run fields it changes, and its audit details."""
    if isinstance(decision, Cancel):
        open_gate = {
            Phase.AWAITING_INPUT: run.question.gate if run.question else None,
            Phase.AWAITING_PLAN_APPROVAL: GateKey.plan(run.plan_version),
            Phase.AWAITING_PROMOTION: PROMOTION,
            Phase.AWAITING_BUDGET: run.budget.gate if run.budget else None,
        }.get(run.phase)
        return open_gate, RunChanges(), {}
    if isinstance(decision, Approve | Revise):
        version = decision.plan_version or run.plan_version
        if version > run.plan_version or version < 1:
            raise Refusal(RefusalKind.INVALID, f"Run #{run.number} has no plan v{version}.", event=event)
        if version < run.plan_version:
            raise Refusal(
                RefusalKind.STALE, f"Plan v{version} was replaced by v{run.plan_version}; decide on the newest plan.", event=event
            )
        if isinstance(decision, Revise):
            return GateKey.plan(version), RunChanges(spec=decision.spec), {"spec": decision.spec.model_dump(mode="json")}
        # What was approved in dollars: the run's cap is this x the margin (pipeline/planning/ledger.py).
        return GateKey.plan(version), RunChanges(approved_usd=run.estimated_usd), {"plan_version": version}
    if isinstance(decision, Promote):
        return PROMOTION, RunChanges(promoted=decision.slot), {"candidate": str(decision.slot)}
    if isinstance(decision, RaiseBudget | SkipStep):
        return _budget(run, decision, event)
    return _answer(run, decision, event)


def _answer(run: RunRecord, decision: Answer, event: Event) -> tuple[GateKey, RunChanges, dict[str, Any]]:
    """An answer closes the open question's gate and changes the spec as the question's kind says."""
    question = run.question
    if question is None or run.phase is not Phase.AWAITING_INPUT:
        raise Refusal(RefusalKind.NOT_NOW, f"Run #{run.number} has no open question.", event=event)
    if decision.question is not None and decision.question != question.number:
        raise Refusal(RefusalKind.STALE, "That question was replaced by a newer one; answer the newest.", event=event)
    try:
        spec = apply_answer(run.spec, question.kind, decision.answer)
    except SpecError as exc:
        raise Refusal(RefusalKind.INVALID, str(exc), event=event) from None
    details = {"question": question.kind.value, "text": question.text, "answer": decision.answer}
    return question.gate, RunChanges(spec=spec, question=None), details


def _budget(run: RunRecord, decision: RaiseBudget | SkipStep, event: Event) -> tuple[GateKey, RunChanges, dict[str, Any]]:
    req = run.budget
    if req is None or run.phase is not Phase.AWAITING_BUDGET:
        raise Refusal(RefusalKind.NOT_NOW, f"Run #{run.number} is not waiting at a budget gate.", event=event)
    if decision.number is not None and decision.number != req.number:
        raise Refusal(RefusalKind.STALE, "That budget request was replaced by a newer one; decide on the newest.", event=event)
    details: dict[str, Any] = {
        "step": req.step.value,
        **req.model_dump(mode="json", include={"spent_usd", "next_usd", "cap_usd"}),
    }
    if isinstance(decision, RaiseBudget):
        if decision.amount_usd is not None and round(decision.amount_usd, 2) != round(req.more_usd, 2):
            raise Refusal(
                RefusalKind.INVALID,
                f"Run #{run.number}'s budget gate asks for ${req.more_usd:,.2f} more, not ${decision.amount_usd:,.2f}: "
                f"`sftbot decide {run.number} raise {req.more_usd:.2f}` approves it.",
                event=event,
            )
        approved = round(req.approved_usd + req.more_usd, 2)
        details |= {"more_usd": req.more_usd, "approved_usd": approved}
        return req.gate, RunChanges(approved_usd=approved, budget=None), details
    return req.gate, RunChanges(budget=None), details


async def check_promotable(db: Database, run: RunRecord, slot: Slot) -> None:
    """Only a completed sweep candidate can be promoted (a refusal names the choice)."""
    cands = {c.slot: c for c in await runs.candidates(db, run.id)}
    chosen = cands.get(slot)
    if chosen is None or slot.is_final or chosen.state is not CandidateState.COMPLETED:
        raise Refusal(
            RefusalKind.INVALID,
            f"Candidate {slot.name} has not completed; pick one of the completed candidates.",
            event=Event.PROMOTE,
        )
