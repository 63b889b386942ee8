"""Where evaluation happens in a run: candidates before the promotion gate, the final model after.

Validation loss (the default) needs no inference: the jobs' eval loss is the answer. With an
evaluator, each completed candidate's held-out outputs are scored in the sandbox and the
scoreboard ranks by mean score (validation loss breaks ties). Scores are stored per
candidate, so a restart never scores (or pays for outputs) twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.evaluation.models import EvalRun
from pipeline.evaluation.outputs import generate_outputs
from pipeline.evaluation.sandbox import run_evaluator
from pipeline.evaluation.scoring import worst_examples
from pipeline.evaluation.strategy import examples_for, held_out_rows
from pipeline.events import EventKind
from pipeline.plan import Plan
from pipeline.platforms.base import JobState
from pipeline.store import runs as q
from pipeline.store.records import CandidateRecord, RunRecord

if TYPE_CHECKING:
    from pipeline.runner import Runner

WORST = 5  # examples listed in the report


def _eval_dir(run: RunRecord) -> Path:
    path = Path(run.workspace) / "eval"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _held_out(r: Runner, run: RunRecord, plan: Plan) -> list[dict[str, Any]]:
    ws = Path(run.workspace)
    if plan.eval_dataset:
        local = ws / "eval_source.jsonl"
        if not local.exists():
            from pipeline.phases import stage_file

            await stage_file(r, plan.eval_dataset, local)
        return held_out_rows(local, plan.eval_examples)
    return held_out_rows(ws / "split" / "test.jsonl", plan.eval_examples)


async def _score(r: Runner, run: RunRecord, plan: Plan, cand: CandidateRecord) -> EvalRun:
    assert plan.evaluator is not None
    rows = await _held_out(r, run, plan)
    outputs = await generate_outputs(r, run, cand, rows)
    result = await run_evaluator(Path(plan.evaluator.evaluator_path), examples_for(rows, outputs))
    record = {
        "candidate": cand.idx,
        "mean": result.mean,
        "errors": result.errors,
        "fatal": result.fatal,
        "scores": [s.model_dump() for s in result.scores],
        "outputs": outputs,
        "references": [row["messages"][-1].get("content") for row in rows],
    }
    name = "final" if cand.idx == 0 else f"c{cand.idx}"
    (_eval_dir(run) / f"{name}.json").write_text(json.dumps(record, default=str), encoding="utf-8")
    return result


async def score_candidates(r: Runner, run: RunRecord, plan: Plan) -> None:
    """Score every completed, unscored candidate; a broken evaluator is reported, not fatal."""
    if plan.evaluator is None:
        return
    for cand in await q.candidates(r.db, run.id):
        if cand.idx == 0 or cand.state is not JobState.COMPLETED or cand.score is not None:
            continue
        result = await _score(r, run, plan, cand)
        if result.fatal:
            note = (
                f"The evaluator failed on {cand.label}: {result.fatal} "
                "The promotion gate ranks by validation loss instead: proceed with it, or cancel."
            )
            await r.db.set_ref(run.id, "evaluator_error", note)
            await r.publish(EventKind.NOTICE, await r.get(run.id), text=note)
            return
        async with r.db.write() as tx:
            await q.set_candidate_metrics(tx, run.id, cand.idx, train_loss=None, val_loss=None, score=result.mean)
            await tx.audit(
                run_id=run.id,
                actor="sftbot",
                action="candidate_scored",
                details={"job_id": cand.job_id, "score": result.mean, "errors": result.errors},
            )
        await r.cp(f"score:{cand.job_id}")
        await r.publish(EventKind.SCOREBOARD_CHANGED, await r.get(run.id), candidates=await q.candidates(r.db, run.id))


async def evaluate_final(r: Runner, run: RunRecord, final: CandidateRecord) -> str:
    """Evaluate the model that ships; returns one sentence for the thread."""
    loss = (
        f"validation loss {final.val_loss:.4f}"
        + (f" (train loss {final.train_loss:.4f})" if final.train_loss is not None else "")
        if final.val_loss is not None
        else "no validation loss reported"
    )
    plan = await q.get_plan(r.db, run.id, run.plan_version)
    if plan is None or plan.evaluator is None or await r.db.get_ref(run.id, "evaluator_error"):
        return f"Final model: {loss}."
    if final.score is None:
        result = await _score(r, run, plan, final)
        if result.fatal:
            return f"Final model: {loss}. The evaluator failed on it: {result.fatal}"
        async with r.db.write() as tx:
            await q.set_candidate_metrics(tx, run.id, final.idx, train_loss=None, val_loss=None, score=result.mean)
        worst = worst_examples(result, WORST)
        (_eval_dir(run) / "final_worst.json").write_text(json.dumps([w.model_dump() for w in worst]), encoding="utf-8")
        score = result.mean
    else:
        score = final.score
    return f"Final model: mean evaluator score {score:.3f} on {plan.eval_examples} held-out examples; {loss}."
