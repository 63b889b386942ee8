"""Evaluator strategies inside a run: generated and user evaluators, fallback, broken evaluators."""

from __future__ import annotations

import json
from pathlib import Path

from bot.testing.memory_platform import MemoryPlatform
from pipeline.domain.machine import Phase
from pipeline.domain.records import Actor
from pipeline.domain.spec import EvalKind
from pipeline.run import events
from pipeline.run.decisions import Answer, Approve, Promote
from pipeline.store import runs
from tests.paths import DATASETS
from tests.pipeline.run.evaluation_support import sql_platform

ALICE = Actor(id="U_ALICE", name="alice")
TEXT2SQL = DATASETS / "text2sql_dataset.jsonl"


async def test_generated_evaluator_picks_the_winner_by_score(make_runner) -> None:
    platform = sql_platform()
    runner, log = await make_runner(platform)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b Generate an evaluator for me.", ALICE)
    proposed = await log.wait_kind(events.PlanProposed, run.id)
    plan = await runs.get_plan(runner.db, run.id, proposed.plan.version)
    assert plan is not None and plan.evaluator is not None and plan.evaluator.kind == "sql"
    assert Path(plan.evaluator.evaluator_path).exists() and Path(plan.evaluator.spec_path or "").exists()
    assert plan.evaluator.validated_on == 3 and plan.eval_examples > 0
    await runner.decide(run.id, Approve(plan_version=plan.version), ALICE)
    gate = await log.wait_kind(events.PromotionRequested, run.id)
    best = gate.ranked[0]
    assert best.learning_rate == 5e-5 and best.score == 1.0
    assert all(c.score == 0.0 for c in gate.ranked[1:])
    assert best.val_loss is not None and best.val_loss > min(c.val_loss for c in gate.ranked)  # type: ignore[type-var]
    assert "evaluator score" in gate.summary
    await runner.decide(run.id, Promote(best.slot), ALICE)
    done = await log.wait_kind(events.EvaluationDone, run.id)
    assert "mean evaluator score 1.000" in done.summary
    await log.wait_kind(events.ReportReady, run.id)
    await runner.wait(run.id)
    final = await runner.get(run.id)
    assert final.phase is Phase.SUCCEEDED
    report = (Path(final.workspace) / "final_report.md").read_text()
    assert "## Evaluation" in report and "Final model score: 1.0000" in report
    assert "Worst examples" in report


async def test_free_text_falls_back_to_validation_loss_and_says_so(make_runner, tmp_path: Path) -> None:
    data = tmp_path / "prose.jsonl"
    rows = []
    for i in range(40):
        text = (
            " ".join(["The weather today feels", "quite", "different", "from yesterday"][: 1 + i % 4])
            + f" because of reason number {i} and more words follow here."
        )
        rows.append({"messages": [{"role": "user", "content": f"Tell me something {i}"}, {"role": "assistant", "content": text}]})
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner, log = await make_runner(MemoryPlatform())
    run = await runner.start(f"dataset={data} model=qwen3-8b eval=generate", ALICE)
    proposed = await log.wait_kind(events.PlanProposed, run.id)
    plan = await runs.get_plan(runner.db, run.id, proposed.plan.version)
    assert plan is not None and plan.evaluation.kind is EvalKind.LOSS and plan.evaluator is None
    assert plan.fallback_note is not None and "validation loss instead" in plan.fallback_note


async def test_broken_user_evaluator_is_caught_before_approval(make_runner, tmp_path: Path) -> None:
    folder = tmp_path / "evaluators"
    folder.mkdir()
    (folder / "broken.py").write_text("def evaluate(messages, ground_truth=None, **kw):\n    raise RuntimeError('boom')\n")
    platform = sql_platform()
    runner, log = await make_runner(platform, evaluator_dir=folder)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b eval=evaluator:broken.py", ALICE)
    asked = await log.wait_kind(events.QuestionAsked, run.id)
    assert asked.question is not None and asked.question.kind.value == "evaluator_failed"
    assert asked.question.detail and "boom" in asked.question.detail and not platform.jobs  # nothing spent
    assert "boom" not in asked.question.text and asked.question.detail_for == ALICE.id  # the error is told privately
    await runner.decide(run.id, Answer("loss"), ALICE)
    proposed = await log.wait_kind(events.PlanProposed, run.id)
    assert proposed.run.spec.evaluation is not None and proposed.run.spec.evaluation.kind is EvalKind.LOSS


async def test_user_evaluator_outside_the_folder_is_refused_with_a_question(make_runner, tmp_path: Path) -> None:
    folder = tmp_path / "evaluators"
    folder.mkdir()
    runner, log = await make_runner(MemoryPlatform(), evaluator_dir=folder)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b eval=evaluator:../../etc/passwd", ALICE)
    asked = await log.wait_kind(events.QuestionAsked, run.id)
    assert asked.question is not None and "outside SFTBOT_EVALUATOR_DIR" in asked.question.text


async def test_user_evaluator_scores_candidates(make_runner, tmp_path: Path) -> None:
    folder = tmp_path / "evaluators"
    folder.mkdir()
    (folder / "exact.py").write_text(
        "def evaluate(messages, ground_truth=None, **kwargs):\n"
        "    out = messages[-1]['content'].strip().lower()\n"
        "    return {'score': float(out == (ground_truth or '').strip().lower()), 'reason': 'exact match'}\n"
    )
    platform = sql_platform()
    runner, log = await make_runner(platform, evaluator_dir=folder)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b eval=evaluator:exact.py final=skip", ALICE)
    proposed = await log.wait_kind(events.PlanProposed, run.id)
    await runner.decide(run.id, Approve(plan_version=proposed.plan.version), ALICE)
    gate = await log.wait_kind(events.PromotionRequested, run.id)
    assert gate.ranked[0].learning_rate == 5e-5 and gate.ranked[0].score == 1.0
