"""Base model vs tuned (issue #15, parts 2-4): the base scored on the held-out prompts, base vs
leader with side-by-side examples at the promotion gate, and the block on deploy when the
tuned answers are the base's (an adapter that was never applied), with an audited override."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bot import settings
from bot.commands import records
from bot.terminal import Terminal
from bot.testing.memory_platform import MemoryPlatform
from bot.testing.runs import drive_to_end
from pipeline.domain.authz import Policy
from pipeline.domain.gates import QuestionKind
from pipeline.domain.machine import Phase
from pipeline.domain.records import Actor
from pipeline.evaluation.compare import SIDE_BY_SIDE, BaseScore, Example, Outputs, compare, identical, pick, rows_of
from pipeline.run import events
from pipeline.run.decisions import Answer, Approve, Cancel, Promote, Refusal, RefusalKind
from pipeline.store import baselines, runs
from tests.paths import TEXT2SQL
from tests.pipeline.run.evaluation_support import sql_platform

ALICE = Actor(id="U_ALICE", name="alice")
BOB = Actor(id="U_BOB", name="bob")  # the approver
TWO_PEOPLE = Policy(approvers=["U_BOB"], allow_self_approval=False)


# --- the pure choices ------------------------------------------------------------------------


def _row(i: int, base: str | None, tuned: str | None, bs: float | None = None, ts: float | None = None) -> Example:
    return Example(index=i, prompt=f"q{i}", base=base, tuned=tuned, expected=f"e{i}", base_score=bs, tuned_score=ts)


def test_pick_takes_the_largest_score_gaps_then_the_lowest_index() -> None:
    rows = [_row(0, "a", "b", 0.5, 0.5), _row(1, "a", "b", 0.0, 1.0), _row(2, "a", "b", 1.0, 0.0), _row(3, "a", "b", 0.2, 0.6)]
    assert [r.index for r in pick(rows)] == [1, 2, 3]


def test_pick_without_scores_prefers_rows_that_differ() -> None:
    rows = [_row(0, "same", "same"), _row(1, "x", "y"), _row(2, "same", " same "), _row(3, "p", "q")]
    assert [r.index for r in pick(rows)] == [1, 3, 0]
    assert len(pick(rows, SIDE_BY_SIDE)) == 3


def test_identical_ignores_whitespace_and_failed_answers_but_needs_one_pair() -> None:
    assert identical(["a  b", None, "c"], ["a b", "x", "c"])
    assert not identical(["a", "b"], ["a", "B"])
    assert not identical([None], ["a"])  # nothing to compare proves nothing


def test_compare_says_whether_the_tuned_model_beats_the_base() -> None:
    rows = rows_of(["p"], ["e"], Outputs(texts=["x"], scores=[0.0]), Outputs(texts=["y"], scores=[1.0]))
    better = compare(BaseScore(base_model="b", score=0.2), tuned="#1", tuned_score=0.9, tuned_val_loss=None, rows=rows)
    assert better.beats_base is True and not better.identical and better.examples[0].tuned == "y"
    tie = compare(BaseScore(base_model="b", score=0.9), tuned="#1", tuned_score=0.9, tuned_val_loss=None, rows=rows)
    assert tie.beats_base is False  # a tie is no help
    unknown = compare(BaseScore(base_model="b"), tuned="#1", tuned_score=0.9, tuned_val_loss=None, rows=[])
    assert unknown.beats_base is None


# --- inside a run ------------------------------------------------------------------------------


async def _to_gate(make_runner, platform: MemoryPlatform, **config: object):  # type: ignore[no-untyped-def]
    runner, log = await make_runner(platform, **config)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b Generate an evaluator for me.", ALICE)
    proposed = await log.wait_kind(events.PlanProposed, run.id)
    await runner.decide(run.id, Approve(plan_version=proposed.plan.version), BOB)
    gate = await log.wait_kind(events.PromotionRequested, run.id)
    return runner, log, run, proposed.plan, gate


async def test_the_plan_costs_the_base_and_the_gate_shows_base_vs_leader(make_runner) -> None:
    platform = sql_platform()
    runner, log, run, plan, gate = await _to_gate(make_runner, platform)
    assert plan.baseline is not None and f"same {plan.eval_examples} held-out prompts" in plan.baseline
    comp = gate.comparison
    assert comp is not None and comp.base.base_model == gate.ranked[0].base_model
    assert comp.base.score == 0.0 and comp.tuned_score == 1.0 and comp.beats_base is True and not comp.identical
    assert len(comp.examples) == SIDE_BY_SIDE and len(comp.rows) == plan.eval_examples
    first = comp.examples[0]
    assert first.tuned_score == 1.0 and first.base_score == 0.0 and first.expected and first.prompt
    assert first.tuned == first.expected and first.base is not None and first.base.startswith("Here is how")
    # Scored once and kept: the base's row and the audit event.
    stored = await baselines.scores(runner.db, run.id)
    assert list(stored) == [comp.base.base_model] and stored[comp.base.base_model].answered == plan.eval_examples
    assert [a.action for a in await runner.db.audit_trail(run.id)].count("base_scored") == 1
    assert platform.generated[comp.base.base_model] == plan.eval_examples
    # The report has the full table, base vs the model that ships, every held-out row.
    await runner.decide(run.id, Promote(gate.ranked[0].slot), BOB)
    ready = await log.wait_kind(events.ReportReady, run.id)
    report = ready.report.read_text()
    assert "## Base model vs tuned" in report and "The tuned model beats the base model." in report
    table = report.split("## Base model vs tuned", 1)[1].split("\n## ", 1)[0]
    assert table.count("| `Here is how I would write that") == plan.eval_examples


async def test_a_loss_only_plan_says_the_base_is_not_scored(make_runner) -> None:
    runner, log = await make_runner(MemoryPlatform())
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b eval=loss", ALICE)
    proposed = await log.wait_kind(events.PlanProposed, run.id)
    assert proposed.plan.baseline is not None and "not scored" in proposed.plan.baseline


async def test_tuned_answers_identical_to_the_base_block_the_deploy_until_an_approver_overrides(make_runner) -> None:
    platform = sql_platform()
    platform.ignores_adapter = True  # the adapter is never applied: every tuned model answers as the base
    runner, log, run, plan, gate = await _to_gate(make_runner, platform, policy=TWO_PEOPLE)
    assert plan.deploy
    assert gate.comparison is not None and gate.comparison.identical and gate.comparison.beats_base is False
    await runner.decide(run.id, Promote(gate.ranked[0].slot), BOB)
    asked = await log.wait_kind(events.QuestionAsked, run.id)
    await runner.wait(run.id)
    blocked = await runner.get(run.id)
    assert blocked.phase is Phase.AWAITING_INPUT and asked.question.kind is QuestionKind.IDENTICAL_OUTPUTS
    assert "Deploy blocked" in asked.question.text and "adapter was probably not loaded" in asked.question.text
    assert not any(isinstance(e, events.Deployed) for e in log.events)
    assert "deploy_blocked" in [a.action for a in await runner.db.audit_trail(run.id)]
    # The requester may answer questions, but deploying anyway spends: only an approver may.
    with pytest.raises(Refusal) as denied:
        await runner.decide(run.id, Answer("deploy anyway", question=asked.question.number), ALICE)
    assert denied.value.kind is RefusalKind.DENIED and "can deploy this run" in denied.value.sentence()
    with pytest.raises(Refusal) as wrong:
        await runner.decide(run.id, Answer("yes", question=asked.question.number), BOB)
    assert "answer deploy anyway, or cancel the run" in wrong.value.sentence()
    await runner.decide(run.id, Answer("deploy anyway", question=asked.question.number), BOB)
    await log.wait_kind(events.ReportReady, run.id)
    await runner.wait(run.id)
    assert (await runner.get(run.id)).phase is Phase.SUCCEEDED
    report = (Path(run.workspace) / "final_report.md").read_text()
    assert "identical to the base model's" in report and "Deployed anyway by bob" in report
    trail = await runner.db.audit_trail(run.id)
    override = next(a for a in trail if a.action == "answer" and a.details.get("question") == "identical_outputs")
    assert override.actor == BOB.id and override.details["answer"] == "deploy anyway"
    assert override.details["to"] == Phase.DEPLOYING.value
    assert [a.actor for a in trail if a.action == "denied_answer"] == [ALICE.id]


async def test_a_blocked_deploy_can_be_cancelled(make_runner) -> None:
    platform = sql_platform()
    platform.ignores_adapter = True
    runner, log, run, _plan, gate = await _to_gate(make_runner, platform)
    await runner.decide(run.id, Promote(gate.ranked[0].slot), BOB)
    await log.wait_kind(events.QuestionAsked, run.id)
    await runner.decide(run.id, Cancel(), BOB)
    await runner.wait(run.id)
    assert (await runner.get(run.id)).phase is Phase.CANCELLED
    assert not any(isinstance(e, events.Deployed) for e in log.events)


async def test_a_restart_does_not_score_the_base_again(make_runner, tmp_path: Path) -> None:
    platform = sql_platform()
    runner, _log, run, plan, gate = await _to_gate(make_runner, platform)
    base = gate.ranked[0].base_model
    asked = platform.generated[base]
    await runner.close()
    again, log2 = await make_runner(platform)
    await again.resume_all()
    regate = await log2.wait_kind(events.PromotionRequested, run.id)
    assert platform.generated[base] == asked  # no second round of base answers
    assert regate.comparison is not None and regate.comparison.base.score == 0.0
    detail = json.loads(next((Path(run.workspace) / "eval").glob("base-*.json")).read_text())
    assert len(detail["outputs"]) == plan.eval_examples and detail["prompts"][0]
    assert await runs.get_run(again.db, run.id) is not None


# --- the terminal and `sftbot show` -------------------------------------------------------------


async def test_the_terminal_shows_base_vs_leader_and_asks_before_deploying_anyway(make_runner) -> None:
    platform = sql_platform()
    platform.ignores_adapter = True
    runner, _log = await make_runner(platform)
    said: list[str] = []
    prompts: list[str] = []

    def person(prompt: str) -> str:
        prompts.append(prompt)
        if prompt.startswith("Approve"):
            return "a"
        if prompt.startswith("Type 'deploy anyway'"):
            return "deploy anyway"
        return ""  # promote the best

    term = Terminal(runner, yes=False, ask=person, out=said.append)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b Generate an evaluator for me.", ALICE)
    assert await term.follow(run.id) == 0
    text = "\n".join(said)
    assert "Base vs leader on" in text and "score 0.000" in text
    assert "⚠️ the leader answers exactly like the base model on every prompt" in text
    assert "Example 1, row" in text and "expected:" in text
    assert "Deploy blocked" in text and any(p.startswith("Type 'deploy anyway'") for p in prompts)
    trail = await runner.db.audit_trail(run.id)
    assert any(a.action == "answer" and a.details.get("answer") == "deploy anyway" for a in trail)


async def test_yes_never_deploys_anyway(make_runner) -> None:
    platform = sql_platform()
    platform.ignores_adapter = True
    runner, _log = await make_runner(platform)
    said: list[str] = []
    term = Terminal(runner, yes=True, out=said.append)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b Generate an evaluator for me.", ALICE)
    assert await term.follow(run.id) == 4  # the run waits for a person (bot/errors.py)
    assert (await runner.get(run.id)).phase is Phase.AWAITING_INPUT
    assert f"--yes never deploys anyway; run #{run.number} waits here" in "\n".join(said)


async def test_show_json_has_the_base_comparison(make_runner, db, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    platform = sql_platform()
    runner, log = await make_runner(platform)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b Generate an evaluator for me.", ALICE)
    await drive_to_end(runner, log, run.id, actor=BOB)
    monkeypatch.setattr(settings, "load_settings", lambda: _Settings(db_path=tmp_path / "test.sqlite3"))
    assert await records.show(argparse.Namespace(run=run.id, json=True)) == 0
    shown = json.loads(capsys.readouterr().out)
    comp = shown["base_comparison"]
    assert comp["against"] == "shipped" and comp["tuned"].startswith("final ") and comp["base"]["score"] == 0.0
    assert comp["beats_base"] is (comp["tuned_score"] > comp["base"]["score"])
    assert len(comp["examples"]) == SIDE_BY_SIDE and comp["identical"] is False
    assert {"prompt", "base", "tuned", "expected"} <= set(comp["examples"][0])


class _Settings:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.spend_margin = 1.2


async def test_a_stop_between_the_base_answers_and_their_row_does_not_ask_the_base_again(make_runner) -> None:
    platform = sql_platform()

    async def stop(name: str) -> None:
        if name.startswith("base:") and name.endswith(":answered"):
            raise RuntimeError("simulated stop")

    runner, log = await make_runner(platform, checkpoint=stop)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b Generate an evaluator for me.", ALICE)
    proposed = await log.wait_kind(events.PlanProposed, run.id)
    await runner.decide(run.id, Approve(plan_version=proposed.plan.version), BOB)
    await runner.crashed.wait()
    await runner.close()
    base = proposed.plan.candidates[0].base_model
    asked = platform.generated[base]
    assert asked == proposed.plan.eval_examples and await baselines.scores(runner.db, run.id) == {}
    again, log2 = await make_runner(platform)
    await again.resume_all()
    gate = await log2.wait_kind(events.PromotionRequested, run.id)
    assert platform.generated[base] == asked  # the kept answers were used, not asked for again
    assert gate.comparison is not None and gate.comparison.base.answered == asked


async def test_yes_at_a_terminal_prompts_at_the_deploy_block_instead_of_exiting(make_runner) -> None:
    platform = sql_platform()
    platform.ignores_adapter = True
    runner, _log = await make_runner(platform)
    said: list[str] = []
    prompts: list[str] = []

    def person(prompt: str) -> str:  # a person at the TTY: only the deploy block asks (--yes decided the rest)
        prompts.append(prompt)
        return "deploy anyway"

    term = Terminal(runner, yes=True, ask=person, out=said.append)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b Generate an evaluator for me.", ALICE)
    assert await term.follow(run.id) == 0
    assert prompts == ["Type 'deploy anyway' to deploy it, or [c]ancel: "]
    assert "  --yes never deploys anyway: you decide here." in said and f"Run #{run.number} succeeded." in said
    trail = await runner.db.audit_trail(run.id)
    assert any(a.action == "answer" and a.details.get("answer") == "deploy anyway" for a in trail)
