"""The one authorization function: who may start, answer, approve, revise, promote, cancel.

Slash commands, buttons, modals, messages and the terminal all call ``authorize`` (through
``pipeline.run.decisions``); a denial names the rule that refused it, and the decisions
module turns the rule into a sentence for the person.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from pydantic import BaseModel, Field

from pipeline.domain.records import Actor, GateDecision


class Action(str, Enum):
    START = "start"
    ANSWER = "answer"
    APPROVE = "approve"
    REVISE = "revise"
    PROMOTE = "promote"
    CANCEL = "cancel"
    TEARDOWN = "teardown"  # delete a run's deployment (stops its billing; the model stays)
    VIEW = "view"


class Rule(str, Enum):
    """Why an action was refused (each has its sentence in pipeline.run.decisions)."""

    CHANNEL = "channel"  # SFTBOT_CHANNELS: not in this channel
    NOT_APPROVER = "not_approver"  # SFTBOT_APPROVERS: approving/promoting spends money
    SELF_APPROVAL = "self_approval"  # SFTBOT_ALLOW_SELF_APPROVAL=false: someone else must approve
    OVER_BUDGET = "over_budget"  # SFTBOT_BUDGET_USD: an admin must approve
    NOT_INVOLVED = "not_involved"  # only the requester, approvers or admins may do this
    EVALUATOR_CODE = "evaluator_code"  # SFTBOT_UNSAFE_EVALUATORS=true: only admins supply evaluator files


class Policy(BaseModel):
    """Who may do what. Empty lists mean "anyone" (a small team's sensible default)."""

    approvers: list[str] = Field(default_factory=list)  # user ids and/or user-group ids
    admins: list[str] = Field(default_factory=list)
    allow_self_approval: bool = True
    channels: list[str] = Field(default_factory=list)  # allowlist; empty = any channel
    budget_usd: float | None = None  # plans estimated above it need an admin to approve
    # SFTBOT_UNSAFE_EVALUATORS=true: evaluator files may run without the sandbox, so only
    # admins may supply one (a run's own file, an answer, a revision that names one).
    admin_evaluators: bool = False


class Verdict(BaseModel):
    allowed: bool
    rule: Rule | None = None

    @property
    def denied(self) -> bool:
        return not self.allowed


ALLOWED = Verdict(allowed=True)


def member(actor: Actor, ids: list[str]) -> bool:
    return actor.id in ids or any(g in ids for g in actor.groups)


def admin(actor: Actor, policy: Policy) -> bool:
    """Admins, and the operator at the terminal (``actor.local``), who can read and write the
    bot's database anyway."""
    return actor.local or member(actor, policy.admins)


class Subject(BaseModel):
    """What an action is about, beyond who and where.

    ``requester``: who asked for the run. ``authors``: everyone who shaped the plan being
    approved (``plan_authors``); with self-approval off none of them may approve it.
    ``estimated_usd``: what approving would let the run spend. ``evaluator_code``: the start,
    answer or revision names an evaluator file not named before (code the bot will run).
    """

    requester: str | None = None
    authors: frozenset[str] = frozenset()
    estimated_usd: float | None = None
    evaluator_code: bool = False


NOTHING = Subject()  # an action about no run in particular (a start, a list)


def authorize(actor: Actor, action: Action, *, policy: Policy, channel: str | None = None, about: Subject = NOTHING) -> Verdict:
    """Decide one action for one person in ``channel``; a denial names the rule that refused it.

    The operator at the terminal (``actor.local``) may do everything, like an admin.
    """
    is_admin = admin(actor, policy)
    if policy.channels and channel not in policy.channels and not is_admin:
        return Verdict(allowed=False, rule=Rule.CHANNEL)  # no channel at all counts as "not an allowed one"
    if about.evaluator_code and policy.admin_evaluators and not is_admin:
        return Verdict(allowed=False, rule=Rule.EVALUATOR_CODE)
    if action in (Action.START, Action.VIEW):
        return ALLOWED
    involved = is_admin or actor.id == about.requester or not policy.approvers or member(actor, policy.approvers)
    if action in (Action.CANCEL, Action.REVISE, Action.ANSWER, Action.TEARDOWN):
        # The requester may always steer or stop their own run; otherwise approvers and admins.
        return ALLOWED if involved else Verdict(allowed=False, rule=Rule.NOT_INVOLVED)
    # approve / promote: spend money
    if policy.approvers and not (is_admin or member(actor, policy.approvers)):
        return Verdict(allowed=False, rule=Rule.NOT_APPROVER)
    wrote_it = actor.id == about.requester or actor.id in about.authors
    # Four eyes bind admins too: two people must look at spend, so only the operator at the
    # terminal (who runs the bot alone) approves what they wrote.
    if action is Action.APPROVE and not policy.allow_self_approval and wrote_it and not actor.local:
        return Verdict(allowed=False, rule=Rule.SELF_APPROVAL)
    # An estimate that could not be made is not under the budget: an admin has to look.
    over = about.estimated_usd is None or about.estimated_usd > (policy.budget_usd or 0.0)
    if action is Action.APPROVE and policy.budget_usd is not None and over and not is_admin:
        return Verdict(allowed=False, rule=Rule.OVER_BUDGET)
    return ALLOWED


def plan_authors(requester: str, decisions: Iterable[GateDecision], version: int) -> frozenset[str]:
    """Everyone who shaped plan ``version``: the requester, and whoever revised an earlier plan
    or answered a question before it was made (four eyes over the whole lineage, not only the
    last hand: a base model chosen in an answer shaped every plan after it).

    A decision's ``plan_version`` is the run's version when it was made, so everything that
    led to version v was decided at a version below v.
    """
    steered = {g.actor for g in decisions if g.decision in ("revise", "answer") and (g.plan_version or 0) < version}
    return frozenset({requester, *steered})


def sees(actor: Actor, run_channel: str | None, *, policy: Policy, in_channel: bool) -> bool:
    """Whether ``actor`` may see a run asked for in ``run_channel`` (its status, audit trail,
    instruction and data names, in any list): only members of that channel (``in_channel``,
    which the surface looks up), admins and the terminal excepted. A run of no channel was
    started at the terminal; a channel outside SFTBOT_CHANNELS shows nothing.
    """
    if admin(actor, policy):
        return True
    if run_channel is None or (policy.channels and run_channel not in policy.channels):
        return False
    return in_channel


class Deciders(BaseModel):
    """Who can make a decision now, for the message that asks them (from the same rules).

    ``ids``: user and user-group ids to mention; empty with ``anyone`` = anyone in the
    channel, ``excluded``: people who may not (the plan's authors under four eyes).
    """

    ids: list[str] = Field(default_factory=list)
    anyone: bool = False
    excluded: list[str] = Field(default_factory=list)
    admins_only: bool = False  # over the budget: only admins


def deciders(
    action: Action,
    *,
    policy: Policy,
    requester: str,
    authors: frozenset[str] = frozenset(),
    estimated_usd: float | None = None,
) -> Deciders:
    """Who ``authorize`` would let approve or promote, as a list to mention (ids before names)."""
    over = policy.budget_usd is not None and (estimated_usd is None or estimated_usd > policy.budget_usd)
    excluded = sorted({requester, *authors}) if action is Action.APPROVE and not policy.allow_self_approval else []
    if action is Action.APPROVE and over:
        return Deciders(ids=[i for i in policy.admins if i not in excluded], excluded=excluded, admins_only=True)
    if not policy.approvers:
        return Deciders(anyone=True, excluded=excluded)
    # Approvers are the ones to ask (admins could too, but pinging them on every plan is
    # noise); when every approver wrote the plan, only the admins are left.
    ids = [i for i in policy.approvers if i not in excluded] or [i for i in policy.admins if i not in excluded]
    return Deciders(ids=ids, excluded=excluded)
