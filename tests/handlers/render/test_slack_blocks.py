"""Every message the bot can send, rendered with realistic and extreme data, within Slack's limits.

Limits from reference/slack.md §3; slack_sdk's own model validation runs on top (it checks
what it knows: section text, button text/value, header, options, confirm, view sizes).
"""

from __future__ import annotations

import json

import pytest
from slack_sdk.models.views import View

from handlers.render import board, details, final_message, plan_message, questions, replies, root_message
from handlers.render.home_tab import HomeLists, home_view
from handlers.render.modals import revise_modal
from handlers.render.mrkdwn import Message, code_block, escape
from handlers.render.people import Ask
from handlers.stamps import stamp_text
from handlers.surface import refusal_message
from pipeline.domain.authz import Deciders, Policy
from pipeline.domain.catalog import BaseModelInfo
from pipeline.domain.gates import GateKey, Question, QuestionKind
from pipeline.domain.machine import Event, Phase
from pipeline.domain.platform import DeploymentState, DeploymentStatus
from pipeline.domain.records import AuditEvent, GateDecision
from pipeline.run.decisions import Refusal, RefusalKind
from pipeline.run.summary import CostSummary, RunSummary
from tests.handlers.render.samples import NASTY, NOW, cands, plan, run
from tests.handlers.slack_checks import check_blocks, check_message


def messages(text: str, n: int) -> dict[str, Message]:
    """One of every message, with ``text`` in every user/platform-supplied field and ``n`` rows."""
    r = run(text=text)
    ranked = cands(n, text=text)
    gate = GateDecision(run_id=r.id, gate="plan:v3", decision="approve", actor="U0BOB", actor_name=f"bob{text}", decided_at=NOW)
    deployment = DeploymentStatus(
        deployment_id=f"d{text}",
        state=DeploymentState.READY,
        model=f"accounts/a/models/m{text}",
        endpoint=text,
        model_string=f"m#{text}",
    )
    summary = RunSummary(
        run=r,
        plan=None,
        ranked=ranked,
        final=ranked[0],
        shipped=ranked[0],
        promoted_by=gate,
        deployment=deployment,
        snippet=f"print('{text}')\n" * n * 20,
        resources=[],
        cost=CostSummary(total_est=10.0, training_actual=11.0),
        evaluation=f"val loss 1.0 {text}",
    )
    events = [
        AuditEvent(id=i, run_id=r.id, at=NOW, actor="U0BOB", action=f"approve{text[:200]}", plan_version=1) for i in range(n * 40)
    ]
    models = [BaseModelInfo(id=f"model-{i}{text[:30]}", params_b=8.0, max_context=131072) for i in range(n * 5)]
    out: dict[str, Message] = {
        f"root_{p.value}": root_message.root(
            run(p, text=text),
            root_message.RootFacts(
                ask=Ask(Deciders(ids=["U0BOB", "S0OPS"] * n), {"U0BOB": f"bob{text}"}),
                cands=ranked,
                model=f"accounts/a/models/m{text}",
                actor="U0BOB",
            ),
        )
        for p in Phase
    }
    p = plan(n, text=text)
    stamp = stamp_text(GateKey.plan(3), gate)
    many = Question(
        kind=QuestionKind.BASE_MODEL, text=f"Which base model? {text}", choices=[f"m{i}{text[:60]}" for i in range(n * 5)]
    )
    few = Question(kind=QuestionKind.EVALUATION, text=f"How? {text}", choices=["loss", "evaluator", "generate"], number=2)
    out |= {
        "plan": plan_message.plan_message(
            r, p, ask=Ask(Deciders(anyone=True, excluded=["U0ALICE"])), previous=plan(n + 1), author=f"bob{text}"
        ),
        "plan_superseded": plan_message.plan_superseded(r, p, stamp),
        "plan_stamped": plan_message.plan_stamped(r, p, stamp),
        "scoreboard": board.scoreboard(r, ranked),
        "gate": board.promotion_gate(r, ranked, ask=Ask(Deciders(ids=["U0BOB"])), plan=p, note=f"evaluator failed {text}"),
        "final_board": board.final_board(r, ranked[0]),
        "scoreboard_ended": board.scoreboard(r, ranked, ended=board.Ended.CANCELLED),
        "gate_stamped": board.promotion_stamped(r, ranked, stamp_text=stamp),
        "question_many": questions.question(r, many),
        "question_few": questions.question(r, few),
        "question_stamped": questions.question_stamped(r, few, stamp),
        "final": final_message.final_message(summary),
        "failure": root_message.failure(r, reason=f"boom {text}", left_running=[f"deployment {text}"] * n),
        "cancelled": root_message.cancelled(r, actor="U0BOB", left_running=[text] * n),
        "notice": root_message.notice(f"note {text}"),
        "help": replies.help_message(),
        "help_problem": replies.help_message(problem=f"unknown {text}"),
        "problem": replies.problem_message(f"bad {text}"),
        "note": replies.note_message("Run #12 started"),
        "models": replies.models_message(models, platform="fireworks"),
        "runs": replies.runs_message([run(text=text, number=i) for i in range(1, 16)], scope="all"),
        "runs_empty": replies.runs_message([], scope="mine"),
        "status": replies.status_message(r, ranked, channel="C0TEAM"),
        "audit": replies.audit_message(r, events),
        "confirm_cancel": replies.confirm_cancel_message(r),
        "already": refusal_message(Refusal(RefusalKind.DECIDED, event=Event.APPROVE, first=gate)),
    }
    return out


@pytest.mark.parametrize(("text", "n"), [("", 3), (NASTY, 3), (NASTY * 60, 150)], ids=["plain", "nasty", "extreme"])
def test_every_message_fits_slack_limits(text: str, n: int) -> None:
    for name, msg in messages(text, n).items():
        try:
            check_message(msg)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc


@pytest.mark.parametrize("n", [1, 150])
def test_views_fit(n: int) -> None:
    r = run(text=NASTY * (n // 10 + 1))
    home = home_view(
        "U0ALICE",
        HomeLists(mine=[r] * n, active=[r] * n),
        policy=Policy(approvers=["S0GROUP", "U0BOB"] * n),
        platform="fireworks",
    )
    check_blocks(home["blocks"], max_blocks=100)
    View(**home).validate_json()
    spec = f"# Spec {NASTY}\n\n**bold** <!channel> `a<b`\n\n" + "- item\n" * n * 20
    for view in (
        details.price_details(r, plan(n, text=NASTY)),
        details.evaluation_spec(r, plan(n, text=NASTY), spec),
        details.error_details(r.model_copy(update={"error": NASTY * n * 10})),
    ):
        check_blocks(view["blocks"], max_blocks=100)
        View(**view).validate_json()
        assert "<!channel>" not in json.dumps(view)  # a document never pings
    modal = revise_modal(r, plan(n, text=NASTY))
    check_blocks([blk for blk in modal["blocks"] if blk["type"] != "input"] or [{"type": "divider"}], max_blocks=100)
    View(**modal).validate_json()
    assert len(modal["private_metadata"]) <= 3000


def test_user_text_is_escaped_and_code_fences_stay_closed() -> None:
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"
    fenced = code_block("x" * 10_000 + "&")
    assert fenced.startswith("```\n") and fenced.endswith("\n```") and len(fenced) <= 3000
    gate = board.promotion_gate(run(), cands(3))
    promote = next(b for b in gate.blocks if b["type"] == "actions")["elements"][0]
    assert json.loads(promote["value"]) == {"run": "ab12cd34", "c": str(cands(3)[0].slot)}
    approve = next(b for b in plan_message.plan_message(run(), plan(2)).blocks if b["type"] == "actions")["elements"][0]
    assert json.loads(approve["value"]) == {"run": "ab12cd34", "v": 3}  # run id + plan version


def test_a_failure_is_two_sentences_and_a_button_and_names_nobody_twice() -> None:
    platform_said = "Quota exceeded: The platform refused to start the job: 429 quota exceeded for account a\n" * 9
    reason = (
        "The platform refused to start any of the 4 waiting jobs for 60 minutes while none of this run's jobs was "
        f"running, so the run stops here ({platform_said})."
    )
    msg = root_message.failure(run(), reason=reason, left_running=[], started_jobs=2)
    first = msg.blocks[0]["text"]["text"]
    assert "so the run stops here." in first and "Quota exceeded" not in first  # summarised once, no doubled clause
    assert [el["text"]["text"] for el in msg.blocks[1]["elements"]] == ["Retry", "Error details"]
    assert msg.blocks[1]["elements"][0]["style"] == "primary"
    own = root_message.cancelled(run(), actor="U0ALICE", left_running=[], names={"U0ALICE": "alice"})
    assert "cancelled by alice." in str(own.blocks) and "<@" not in str(own.blocks)  # not "by @alice, @alice"
    other = root_message.cancelled(run(), actor="U0BOB", left_running=[], names={"U0BOB": "bob"})
    assert str(other.blocks).count("<@U0ALICE>") == 1 and "cancelled by bob" in str(other.blocks)


def test_audit_lines_show_people_as_mentions_not_raw_ids() -> None:
    denied = AuditEvent(
        id=1,
        run_id="r",
        at=NOW,
        actor="U0ALICE",
        action="denied_approve",
        details={"reason": "only U0BOB, S0OPS can approve this run; they were asked in its thread (at 10:00 UTC)."},
    )
    text = str(replies.audit_message(run(), [denied]).blocks)
    assert "only <@U0BOB>, <!subteam^S0OPS> can approve" in text and "10:00 UTC" in text and " U0BOB" not in text
