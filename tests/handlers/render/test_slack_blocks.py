"""Every message the bot can send, rendered with realistic and extreme data, within Slack's limits.

Limits from reference/slack.md §3; slack_sdk's own model validation runs on top (it checks
what it knows: section text, button text/value, header, options, confirm, view sizes).
"""

from __future__ import annotations

import json
import time

import pytest
from slack_sdk.models.views import View

from handlers.render import board, final_message, plan_message, questions, replies, root_message
from handlers.render.home_tab import home_view
from handlers.render.modals import revise_modal
from handlers.render.mrkdwn import Message, code_block, escape
from handlers.stamps import stamp_text
from handlers.surface import refusal_message
from pipeline.domain.authz import Deciders, Policy
from pipeline.domain.catalog import BaseModelInfo
from pipeline.domain.gates import GateKey, Question, QuestionKind
from pipeline.domain.machine import Event, Phase
from pipeline.domain.platform import DeploymentState, DeploymentStatus
from pipeline.domain.records import AuditEvent, CandidateRecord, GateDecision, RunRecord
from pipeline.domain.slots import FINAL, CandidateState, Slot
from pipeline.domain.spec import EvalKind, Evaluation, RunSpec
from pipeline.planning.plan_types import CostEstimate, CostLine, Plan, PlannedJob, Source
from pipeline.run.decisions import Refusal, RefusalKind
from pipeline.run.summary import CostSummary, RunSummary
from tests.handlers.slack_checks import check_blocks, check_message

NASTY = "<!channel> & <script>alert(1)</script> *bold* _x_ `tick` ```fence``` "
NOW = time.time()


def run(phase: Phase = Phase.SWEEPING, *, text: str = "", number: int = 12) -> RunRecord:
    spec = RunSpec(dataset=f"accounts/acme/datasets/support-conv{text}", base_models=("qwen3-8b", f"qwen3-32b{text[:50]}"))
    return RunRecord(
        id="ab12cd34",
        number=number,
        requester="U0ALICE",
        requester_name=f"alice{text}",
        instruction=f"run {text}",
        spec=spec,
        platform="fireworks",
        phase=phase,
        plan_version=3,
        error=f"the platform said: {text}" if text else None,
        workspace="/tmp/x",
        estimated_usd=1234.5,
        created_at=NOW,
        updated_at=NOW,
    )


def cands(n: int, *, text: str = "") -> list[CandidateRecord]:
    return [
        CandidateRecord(
            run_id="ab12cd34",
            slot=Slot.candidate(i),
            job_id=f"sftbot-ab12cd34-c{i}",
            base_model=f"qwen3-8b{text[:40]}",
            lora_rank=8,
            learning_rate=1e-4 * i,
            epochs=3,
            train_samples=1000,
            state=CandidateState.COMPLETED if i % 3 else CandidateState.RUNNING,
            progress=99.5,
            epoch=2.0,
            val_loss=1.0 + i / 100,
            score=0.5 if i % 2 else None,
            stalled=i % 7 == 0,
            message=text or None,
        )
        for i in range(1, n + 1)
    ]


def plan(n: int, *, text: str = "") -> Plan:
    jobs = [
        PlannedJob(
            slot=Slot.candidate(i),
            base_model=f"qwen3-8b{text[:40]}",
            lora_rank=16,
            learning_rate=1e-4 / i,
            epochs=5,
            train_samples=1000,
            train_tokens=123_456,
        )
        for i in range(1, n + 1)
    ]
    cost = CostEstimate(
        training_usd=12.3456,
        inference_usd=2.9,
        total_usd=15.2456,
        low_usd=10.0,
        high_usd=22.0,
        prices_as_of="2026-10-08",
        price_source=f"fireworks.ai/pricing {text}",
        billed_tokens=10**9,
        lines=[CostLine(phase="training", label="c", usd=1.0, detail=text)],
        unknown=[text] * 5 if text else [],
    )
    return Plan(
        version=3,
        platform="fireworks",
        spec=RunSpec(dataset="d", base_models=("qwen3-8b",)),
        dataset=f"accounts/acme/datasets/support-conv{text}",
        eval_dataset=text or None,
        samples=3_000_000,
        tokens=10**10,
        train_samples=2_700_000,
        test_samples=300_000,
        hp_samples=1000,
        candidates=jobs,
        final=jobs[0].model_copy(update={"slot": FINAL}),
        max_parallel=6,
        evaluation=Evaluation(kind=EvalKind.LOSS),
        eval_examples=0,
        deploy=True,
        sources={"grid": Source.DEFAULT},
        cost=cost,
        warnings=[text] * 9 if text else [],
    )


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
            cands=ranked,
            deciders=Deciders(ids=["U0BOB", "S0OPS"] * n),
            model=f"accounts/a/models/m{text}",
            actor="U0BOB",
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
        "plan": plan_message.plan_message(r, p, deciders=Deciders(anyone=True, excluded=["U0ALICE"]), previous=plan(n + 1)),
        "plan_superseded": plan_message.plan_superseded(r, p, stamp),
        "plan_stamped": plan_message.plan_stamped(r, p, stamp),
        "scoreboard": board.scoreboard(r, ranked),
        "gate": board.promotion_gate(r, ranked, summary=f"Winner {text}", deciders=Deciders(ids=["U0BOB"]), plan=p),
        "final_board": board.final_board(r, ranked[0]),
        "gate_stamped": board.promotion_stamped(r, ranked, summary=f"Winner {text}", stamp_text=stamp),
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
        "U0ALICE", mine=[r] * n, active=[r] * n, policy=Policy(approvers=["S0GROUP", "U0BOB"] * n), platform="fireworks"
    )
    check_blocks(home["blocks"], max_blocks=100)
    View(**home).validate_json()
    modal = revise_modal(r, plan(n, text=NASTY))
    check_blocks([blk for blk in modal["blocks"] if blk["type"] != "input"] or [{"type": "divider"}], max_blocks=100)
    View(**modal).validate_json()
    assert len(modal["private_metadata"]) <= 3000


def test_user_text_is_escaped_and_code_fences_stay_closed() -> None:
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"
    fenced = code_block("x" * 10_000 + "&")
    assert fenced.startswith("```\n") and fenced.endswith("\n```") and len(fenced) <= 3000
    gate = board.promotion_gate(run(), cands(3), summary="Winner")
    promote = gate.blocks[-1]["elements"][0]
    assert json.loads(promote["value"]) == {"run": "ab12cd34", "c": str(cands(3)[0].slot)}
    approve = plan_message.plan_message(run(), plan(2)).blocks[-1]["elements"][0]
    assert json.loads(approve["value"]) == {"run": "ab12cd34", "v": 3}  # run id + plan version
