"""The one authorization function as a table: who may do what, and the rule that refuses the rest."""

from __future__ import annotations

import pytest

from pipeline.authz import Action, Policy, Rule, authorize
from pipeline.store.records import Actor

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
]


@pytest.mark.parametrize(("policy", "actor", "action", "channel", "estimate", "rule"), CASES)
def test_authorize(policy: Policy, actor: Actor, action: Action, channel: str, estimate: float | None, rule: Rule | None) -> None:
    verdict = authorize(actor, action, policy=policy, channel=channel, requester=ALICE.id, estimated_usd=estimate)
    assert verdict.allowed is (rule is None) and verdict.rule is rule


def test_self_approval_is_refused_even_to_an_approver_who_asked() -> None:
    policy = STRICT.model_copy(update={"approvers": ["U_ALICE", "U_BOB"]})
    verdict = authorize(ALICE, Action.APPROVE, policy=policy, channel="C_ML", requester=ALICE.id, estimated_usd=1.0)
    assert verdict.rule is Rule.SELF_APPROVAL
