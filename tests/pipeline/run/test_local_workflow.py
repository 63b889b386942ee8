"""The whole workflow on the local platform with the tiny in-process model: both gates,
evaluator-based selection on real generated outputs, deployment to the local endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")

from pipeline.dataset.demo_data import generate
from pipeline.domain.machine import Phase
from pipeline.domain.records import Actor
from pipeline.platforms.local.platform import LocalPlatform
from pipeline.run import events
from pipeline.run.decisions import Approve, Promote
from pipeline.store import runs

pytestmark = pytest.mark.local
ALICE = Actor(id="U_ALICE", name="alice")

# Scores an output by its length: arbitrary, but it differs between candidates' real
# outputs, so the test can check the gate ranks by it and not by validation loss.
LENGTH_EVALUATOR = """
def evaluate(messages, ground_truth=None, **kwargs):
    out = messages[-1]["content"]
    return {"score": min(1.0, len(out) / 400.0), "reason": f"{len(out)} characters"}
"""


async def test_local_workflow_through_both_gates_ranked_by_evaluator(make_runner, tmp_path: Path) -> None:
    data = tmp_path / "contacts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in generate(n=40, seed=3)), encoding="utf-8")
    evaluators = tmp_path / "evaluators"
    evaluators.mkdir()
    (evaluators / "length.py").write_text(LENGTH_EVALUATOR, encoding="utf-8")
    platform = LocalPlatform(tmp_path / "local", port=0)
    runner, log = await make_runner(platform, evaluator_dir=evaluators, poll_seconds=0.2, eval_max_tokens=24)
    try:
        run = await runner.start(
            f"dataset={data} model=tiny-llama candidates=8:5e-3,16:1e-3 epochs=1 eval=evaluator:length.py eval_examples=4",
            ALICE,
        )
        proposed = await log.wait_kind(events.PlanProposed, run.id, timeout=120)
        plan = await runs.get_plan(runner.db, run.id, proposed.plan.version)
        assert plan is not None and plan.max_parallel == platform.max_parallel  # the machine's cap is stated
        assert plan.final is not None and plan.evaluator is not None
        await runner.decide(run.id, Approve(plan_version=plan.version), ALICE)
        gate = await log.wait_kind(events.PromotionRequested, run.id, timeout=300)
        scored = [c for c in gate.ranked if c.score is not None]
        assert len(scored) == 2 and all(c.val_loss is not None for c in scored)
        assert scored[0].score >= scored[1].score  # type: ignore[operator]
        await runner.decide(run.id, Promote(gate.ranked[0].slot), ALICE)
        await log.wait_kind(events.ReportReady, run.id, timeout=300)
        await runner.wait(run.id)
        final = await runner.get(run.id)
        assert final.phase is Phase.SUCCEEDED, final.error
        deployed = next(e for e in log.events if isinstance(e, events.Deployed) and e.run.id == run.id)
        endpoint = deployed.deployment.endpoint
        assert endpoint.startswith("http://127.0.0.1:")
        from openai import AsyncOpenAI

        client = AsyncOpenAI(base_url=endpoint, api_key="local")
        resp = await client.chat.completions.create(
            model=deployed.deployment.model_string,
            messages=[{"role": "user", "content": "Lea Kim, 30, chef in Rome."}],
            max_tokens=8,
        )
        await client.close()
        assert resp.choices[0].message.content is not None  # the deployed endpoint answers
        report = (Path(final.workspace) / "final_report.md").read_text(encoding="utf-8")
        assert "## Evaluation" in report and "from openai import OpenAI" in report
        cands = await runs.candidates(runner.db, run.id)
        final_job = next(c for c in cands if c.slot.is_final)
        assert final_job.score is not None and final_job.val_loss is not None
    finally:
        await runner.close()
        await platform.close()
