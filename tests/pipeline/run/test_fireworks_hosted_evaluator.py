"""Path B: an evaluator hosted on Fireworks, named the way the seed writes it. It is checked to
exist before approval, the answers are uploaded as a dataset and scored by evaluation jobs,
and the per-row scores read back drive the gate like a local evaluator's. Through the real
SDK against the fake (whose output-row schema is invented: see bot/testing/fireworks/evaluators.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import drive_to_end
from pipeline.domain.gates import QuestionKind
from pipeline.domain.instructions import parse_instruction
from pipeline.domain.machine import Phase
from pipeline.domain.spec import EvalKind
from pipeline.run import events
from pipeline.run.decisions import Approve, Promote
from pipeline.store.db import Database
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ALICE, BOB, running

DATA = DATASETS / "text2sql_dataset.jsonl"
SEED = "Use evaluator accounts/acme/evaluators/exact."


def answers() -> dict[str, str]:
    """Every prompt of the data -> its reference answer (what a perfect model says)."""
    out = {}
    for line in DATA.read_text().splitlines():
        msgs = json.loads(line)["messages"]
        out[msgs[-2]["content"]] = msgs[-1]["content"]
    return out


def test_the_seed_sentence_names_a_hosted_evaluator() -> None:
    spec = parse_instruction(f"dataset=x.jsonl model=qwen3-8b {SEED}")
    assert spec.evaluation is not None and spec.evaluation.kind is EvalKind.EVALUATOR
    assert spec.evaluation.ref == "accounts/acme/evaluators/exact" and spec.evaluation.hosted
    same = parse_instruction("dataset=x.jsonl model=qwen3-8b eval=evaluator:accounts/acme/evaluators/exact")
    assert same.evaluation == spec.evaluation


@pytest.mark.parametrize(("rows", "key"), [("eval_protocol", "evaluation_result.score"), ("evals", "eval_details.score")])
async def test_use_evaluator_runs_end_to_end_and_the_gate_ranks_by_its_scores(
    db: Database, tmp_path: Path, rows: str, key: str
) -> None:
    """Output rows as Eval Protocol uploads them, or with only its evals / eval_details keys."""
    right = answers()
    async with FakeFireworks(account="acme", job_seconds=0.15, deployment_seconds=0.05) as fake:
        fake.add_evaluator("exact")
        fake.eval_rows = rows

        def responder(model: str, messages: list[dict[str, object]]) -> str:
            # Only candidate 3 (the worst by validation loss) and the final run answer right.
            good = "-c3#" in model or "-final#" in model
            return right.get(str(messages[-1]["content"]), "OK") if good else "SELECT nothing"

        fake.chat_responder = responder
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(f"dataset={DATA} model=qwen3-8b parallel=3 {SEED}", ALICE)
            proposed = await log.wait_kind(events.PlanProposed, run.id)
            assert not fake.jobs  # nothing trained before approval...
            assert fake.calls("GET", r"/accounts/acme/evaluators/exact$")  # ...but the evaluator was checked
            await runner.decide(run.id, Approve(plan_version=1), BOB)
            gate = await log.wait_kind(events.PromotionRequested, run.id)
            await runner.decide(run.id, Promote(gate.ranked[0].slot), BOB)
            after = await drive_to_end(runner, log, run.id, actor=BOB, timeout=60)
        assert after.phase is Phase.SUCCEEDED, after.error
        jobs = fake.create_counts("evaluationJobs")
        assert jobs == {f"sftbot-{run.id}-evaljob-{s}": 1 for s in ("c1", "c2", "c3", "final")}
        body = fake.calls("POST", r"/evaluationJobs$")[0].json
        assert body["evaluationJob"]["evaluator"] == "accounts/acme/evaluators/exact"
        assert body["evaluationJob"]["outputDataset"].startswith(f"accounts/acme/datasets/sftbot-{run.id}-evalout-")
    assert proposed.plan.evaluator is not None and proposed.plan.evaluator.hosted == "accounts/acme/evaluators/exact"
    assert "exact_match" in proposed.plan.evaluator.summary  # its criteria, shown for review
    ranked = list(gate.ranked)
    assert str(ranked[0].slot) == "c3" and ranked[0].score == 1.0
    assert ranked[1].score == ranked[2].score == 0.0
    assert (ranked[1].val_loss or 0) < (ranked[0].val_loss or 0)  # by loss c3 would not have won: the scores ranked
    assert gate.summary.startswith("Winner by evaluator score: #3")
    ws = Path(after.workspace)
    assert (ws / "eval" / "final.hosted-output.jsonl").exists()  # the raw rows are kept
    report = (ws / "final_report.md").read_text()
    assert "Final model score: 1.0000." in report
    assert f"Read 10 rows of accounts/acme/datasets/sftbot-{run.id}-evalout-final: scores from `{key}`" in report
    assert "checked to exist and be ACTIVE on Fireworks before approval" in report


async def test_a_missing_or_unbuilt_evaluator_is_asked_about_before_approval(db: Database, tmp_path: Path) -> None:
    async with FakeFireworks(account="acme") as fake:
        fake.add_evaluator("building", state="BUILDING")
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            missing = await runner.start(f"dataset={DATA} model=qwen3-8b Use evaluator accounts/acme/evaluators/nope.", ALICE)
            asked = await log.wait_kind(events.QuestionAsked, missing.id)
            unbuilt = await runner.start(f"dataset={DATA} model=qwen3-8b eval=evaluator:accounts/acme/evaluators/building", ALICE)
            asked_too = await log.wait_kind(events.QuestionAsked, unbuilt.id)
        assert not fake.jobs and not fake.create_counts("datasets")
    assert asked.question.kind is QuestionKind.EVALUATION
    assert asked.question.text.startswith("evaluator accounts/acme/evaluators/nope does not exist on Fireworks")
    assert "How should I judge the candidates instead?" in asked.question.text
    assert "is BUILDING, not ACTIVE" in asked_too.question.text and "wait until it is ACTIVE" in asked_too.question.text
