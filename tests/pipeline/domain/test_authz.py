"""The one authorization function as a table: who may do what, and the rule that refuses the rest."""

from __future__ import annotations

import pytest

from pipeline.domain.authz import Action, Policy, Rule, Subject, authorize, plan_authors, sees
from pipeline.domain.records import Actor, GateDecision

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
    verdict = authorize(actor, action, policy=policy, channel=channel, about=Subject(requester=ALICE.id, estimated_usd=estimate))
    assert verdict.allowed is (rule is None) and verdict.rule is rule


def test_self_approval_is_refused_even_to_an_approver_who_asked() -> None:
    policy = STRICT.model_copy(update={"approvers": ["U_ALICE", "U_BOB"]})
    verdict = authorize(
        ALICE, Action.APPROVE, policy=policy, channel="C_ML", about=Subject(requester=ALICE.id, estimated_usd=1.0)
    )
    assert verdict.rule is Rule.SELF_APPROVAL


def test_nobody_who_wrote_the_plan_approves_it_when_self_approval_is_off() -> None:
    wrote = Subject(requester=ALICE.id, authors=frozenset({"U_BOB"}), estimated_usd=1.0)
    verdict = authorize(BOB, Action.APPROVE, policy=STRICT, channel="C_ML", about=wrote)
    assert verdict.rule is Rule.SELF_APPROVAL
    admin_wrote = Subject(requester=ALICE.id, authors=frozenset({"U_CAROL"}), estimated_usd=1.0)
    admin_author = authorize(CAROL, Action.APPROVE, policy=STRICT, channel="C_ML", about=admin_wrote)
    assert admin_author.rule is Rule.SELF_APPROVAL  # four eyes hold for admins too
    assert authorize(BOB, Action.APPROVE, policy=OPEN, about=wrote).allowed


def _decided(actor: str, decision: str, version: int) -> GateDecision:
    gate = f"input:{version + 1}" if decision == "answer" else f"plan:v{version}"
    return GateDecision(run_id="r", gate=gate, decision=decision, actor=actor, plan_version=version, decided_at=0.0)


def test_everyone_who_shaped_a_plan_version_is_its_author() -> None:
    lineage = [
        _decided("U_BOB", "answer", 0),  # chose the base model before plan v1
        _decided("U_ALICE", "answer", 0),  # how to judge
        _decided("U_CAROL", "revise", 1),  # revised v1 into v2
        _decided("U_DAVE", "answer", 2),  # answered after v2 (e.g. "deploy anyway"): not an author of v2
        _decided("U_ERIN", "approve", 1),
    ]
    assert plan_authors("U_ALICE", lineage, 1) == {"U_ALICE", "U_BOB"}
    assert plan_authors("U_ALICE", lineage, 2) == {"U_ALICE", "U_BOB", "U_CAROL"}


def test_a_run_is_seen_by_members_of_its_channel_and_admins_only() -> None:
    assert sees(DAVE, "C_ML", policy=STRICT, in_channel=True)
    assert not sees(DAVE, "C_ML", policy=STRICT, in_channel=False)
    assert not sees(DAVE, "C_OTHER", policy=STRICT, in_channel=True)  # a channel the bot is not enabled in
    assert not sees(DAVE, None, policy=STRICT, in_channel=True)  # a terminal run
    assert sees(CAROL, "C_ML", policy=STRICT, in_channel=False) and sees(CAROL, None, policy=STRICT, in_channel=False)
    assert sees(DAVE, "C_ANY", policy=OPEN, in_channel=True) and not sees(DAVE, "C_ANY", policy=OPEN, in_channel=False)


def test_with_unsafe_evaluators_only_admins_supply_evaluator_code() -> None:
    unsafe = STRICT.model_copy(update={"admin_evaluators": True})
    code = Subject(requester=ALICE.id, evaluator_code=True)
    for action in (Action.START, Action.ANSWER, Action.REVISE):
        assert authorize(ALICE, action, policy=unsafe, channel="C_ML", about=code).rule is Rule.EVALUATOR_CODE
        assert authorize(CAROL, action, policy=unsafe, channel="C_ML", about=code).allowed
        assert authorize(ALICE, action, policy=STRICT, channel="C_ML", about=code).allowed  # the sandbox contains it
    assert authorize(ALICE, Action.START, policy=unsafe, channel="C_ML", about=Subject(requester=ALICE.id)).allowed
