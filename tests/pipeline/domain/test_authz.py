"""The one authorization function as a table: who may do what, and the rule that refuses the rest."""

from __future__ import annotations

import pytest

from pipeline.domain.authz import Action, Policy, Rule, authorize
from pipeline.domain.records import Actor

ALICE = Actor(id="U_ALICE")  # the requester
BOB = Actor(id="U_BOB")  # an approver
CAROL = Actor(id="U_CAROL", groups=("S_ADMINS",))  # an admin through her user group
DAVE = Actor(id="U_DAVE")  # anyone else
STRICT = Policy(approvers=["U_BOB"], admins=["S_ADMINS"], allow_self_approval=False, channels=["C_ML"], budget_usd=100)
OPEN = Policy()

CASES = [
    # (policy, actor, action, channel, estimate, allowed rule)
    (OPEN, DAVE, Action.APPROVE, "C_ANY", 5000.0, None),
    (OPEN, ALICE, Action.APPROVE, "C_ANY", 1.0, None),  # self-approval allowed by default
    (STRICT, DAVE, Action.START, "C_ML", None, None),
    (STRICT, DAVE, Action.START, "C_OTHER", None, Rule.CHANNEL),
    (STRICT, CAROL, Action.START, "C_OTHER", None, None),  # admins anywhere
    (STRICT, DAVE, Action.APPROVE, "C_ML", 1.0, Rule.NOT_APPROVER),
    (STRICT, DAVE, Action.PROMOTE, "C_ML", 1.0, Rule.NOT_APPROVER),
    (STRICT, BOB, Action.APPROVE, "C_ML", 1.0, None),
    (STRICT, BOB, Action.PROMOTE, "C_ML", 1.0, None),
    (STRICT, BOB, Action.APPROVE, "C_ML", 500.0, Rule.OVER_BUDGET),
    (STRICT, CAROL, Action.APPROVE, "C_ML", 500.0, None),
    (STRICT, DAVE, Action.CANCEL, "C_ML", None, Rule.NOT_INVOLVED),
    (STRICT, ALICE, Action.CANCEL, "C_ML", None, None),  # the requester may always stop their run
    (STRICT, BOB, Action.CANCEL, "C_ML", None, None),
    (STRICT, DAVE, Action.VIEW, "C_ML", None, None),
    (STRICT, DAVE, Action.VIEW, "C_OTHER", None, Rule.CHANNEL),
    (STRICT, DAVE, Action.VIEW, None, None, Rule.CHANNEL),  # a click that names no channel is not in an allowed one
    (STRICT, DAVE, Action.REVISE, "C_ML", None, Rule.NOT_INVOLVED),  # nobody else rewrites someone's plan
    (STRICT, DAVE, Action.ANSWER, "C_ML", None, Rule.NOT_INVOLVED),  # nor answers their run's questions
    (STRICT, ALICE, Action.REVISE, "C_ML", None, None),
    (STRICT, BOB, Action.ANSWER, "C_ML", None, None),
    (STRICT, BOB, Action.APPROVE, "C_ML", None, Rule.OVER_BUDGET),  # no estimate is not "under budget"
    (STRICT, CAROL, Action.APPROVE, "C_ML", None, None),
    (STRICT, Actor(id="cli:ops", local=True), Action.APPROVE, None, None, None),  # the operator at the terminal
]


@pytest.mark.parametrize(("policy", "actor", "action", "channel", "estimate", "rule"), CASES)
def test_authorize(policy: Policy, actor: Actor, action: Action, channel: str, estimate: float | None, rule: Rule | None) -> None:
    verdict = authorize(actor, action, policy=policy, channel=channel, requester=ALICE.id, estimated_usd=estimate)
    assert verdict.allowed is (rule is None) and verdict.rule is rule


def test_self_approval_is_refused_even_to_an_approver_who_asked() -> None:
    policy = STRICT.model_copy(update={"approvers": ["U_ALICE", "U_BOB"]})
    verdict = authorize(ALICE, Action.APPROVE, policy=policy, channel="C_ML", requester=ALICE.id, estimated_usd=1.0)
    assert verdict.rule is Rule.SELF_APPROVAL


def test_nobody_who_wrote_the_plan_approves_it_when_self_approval_is_off() -> None:
    verdict = authorize(
        BOB, Action.APPROVE, policy=STRICT, channel="C_ML", requester=ALICE.id, authors=frozenset({"U_BOB"}), estimated_usd=1.0
    )
    assert verdict.rule is Rule.SELF_APPROVAL
    admin_author = authorize(
        CAROL,
        Action.APPROVE,
        policy=STRICT,
        channel="C_ML",
        requester=ALICE.id,
        authors=frozenset({"U_CAROL"}),
        estimated_usd=1.0,
    )
    assert admin_author.rule is Rule.SELF_APPROVAL  # four eyes hold for admins too
    assert authorize(
        BOB, Action.APPROVE, policy=OPEN, requester=ALICE.id, authors=frozenset({"U_BOB"}), estimated_usd=1.0
    ).allowed
