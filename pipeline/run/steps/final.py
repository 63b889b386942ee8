"""Phase 5: the promoted candidate's config, retrained on the full train split."""

from __future__ import annotations

from pipeline.domain.gates import BudgetStep
from pipeline.domain.machine import Event
from pipeline.domain.platform import PlatformError
from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.domain.slots import FINAL, CandidateState
from pipeline.run.context import Outcome, RunContext
from pipeline.run.steps import data
from pipeline.run.steps.budget import hold
from pipeline.run.steps.sweep import current_plan, record, request, watch
from pipeline.store import runs


async def shipped(ctx: RunContext, run: RunRecord) -> CandidateRecord:
    """The model that ships: the final run, or the promoted candidate when it was skipped."""
    by_slot = {c.slot: c for c in await runs.candidates(ctx.db, run.id)}
    chosen = by_slot.get(FINAL) or (by_slot.get(run.promoted) if run.promoted else None)
    if chosen is None:
        raise ValueError(f"run #{run.number} has no promoted candidate")
    return chosen


async def final(ctx: RunContext, run: RunRecord) -> Outcome:
    """Train the winner's configuration on the full data and wait for it."""
    if (held := await hold(ctx, run, BudgetStep.FINAL)) is not None:
        return held
    plan = await current_plan(ctx, run)
    assert plan.final is not None and run.promoted is not None
    winner = next(c for c in await runs.candidates(ctx.db, run.id) if c.slot == run.promoted)
    planned = next((j for j in plan.candidates if j.slot == winner.slot), None)
    job = plan.final.model_copy(
        update={
            "base_model": winner.base_model,
            "lora_rank": winner.lora_rank,
            "learning_rate": winner.learning_rate,
            "max_context_length": planned.max_context_length if planned else plan.final.max_context_length,
        }
    )
    names = await data.upload(ctx, run, plan)
    async with ctx.db.write() as tx:
        await runs.insert_candidate(tx, record(run, job))
    req = request(run, job, dataset=names["train"], eval_dataset=names.get("eval"), what="final")
    (done,) = await watch(ctx, run, final=True).run({FINAL: req}, max_active=1)
    if done.state is not CandidateState.COMPLETED:
        raise PlatformError(f"the final run {req.job_id} {done.state.value}: {done.message or done.raw_state}")
    return Outcome(Event.FINAL_DONE)
