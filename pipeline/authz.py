"""The one authorization function: who may start, approve, revise, promote, cancel.

Slash commands, buttons, modals, messages and the terminal all call ``authorize``; a denial
comes back with a sentence the surface shows to the person (and the caller audits it).
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field

from pipeline.store.records import Actor


class Action(str, Enum):
    START = "start"
    ANSWER = "answer"
    APPROVE = "approve"
    REVISE = "revise"
    PROMOTE = "promote"
    CANCEL = "cancel"
    VIEW = "view"


class Policy(BaseModel):
    """Who may do what. Empty lists mean "anyone" (a small team's sensible default)."""

    approvers: list[str] = Field(default_factory=list)  # user ids and/or user-group ids
    admins: list[str] = Field(default_factory=list)
    allow_self_approval: bool = True
    channels: list[str] = Field(default_factory=list)  # allowlist; empty = any channel
    budget_usd: float | None = None  # plans estimated above it need an admin to approve


class Verdict(BaseModel):
    allowed: bool
    reason: str = ""


def _member(actor: Actor, ids: list[str]) -> bool:
    return actor.id in ids or any(g in ids for g in actor.groups)


def authorize(
    actor: Actor,
    action: Action,
    *,
    policy: Policy,
    channel: str | None = None,
    requester: str | None = None,
    estimated_usd: float | None = None,
) -> Verdict:
    """Decide one action for one person; the reason names the rule that refused it."""
    admin = _member(actor, policy.admins)
    if policy.channels and channel is not None and channel not in policy.channels and not admin:
        return Verdict(allowed=False, reason="sftbot is not enabled in this channel (SFTBOT_CHANNELS)")
    if action in (Action.START, Action.VIEW, Action.ANSWER, Action.REVISE):
        return Verdict(allowed=True)
    if action is Action.CANCEL:
        # The requester may always stop their own run; otherwise approvers and admins.
        if admin or actor.id == requester or not policy.approvers or _member(actor, policy.approvers):
            return Verdict(allowed=True)
        return Verdict(allowed=False, reason="only the requester, an approver or an admin can cancel this run")
    # approve / promote: spend money
    if policy.approvers and not (admin or _member(actor, policy.approvers)):
        return Verdict(allowed=False, reason=f"only approvers can {action.value} (SFTBOT_APPROVERS)")
    if action is Action.APPROVE and not policy.allow_self_approval and actor.id == requester and not admin:
        return Verdict(
            allowed=False,
            reason="you requested this run; someone else has to approve its plan (SFTBOT_ALLOW_SELF_APPROVAL=false)",
        )
    if (
        action is Action.APPROVE
        and policy.budget_usd is not None
        and estimated_usd is not None
        and estimated_usd > policy.budget_usd
        and not admin
    ):
        return Verdict(
            allowed=False,
            reason=f"the estimate ${estimated_usd:,.2f} is above the ${policy.budget_usd:,.2f} budget; an admin must approve (SFTBOT_BUDGET_USD)",
        )
    return Verdict(allowed=True)
