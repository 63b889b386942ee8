"""Phase 3: train every candidate on the HP split, at most N active at once, then score them."""

from __future__ import annotations

from pipeline.domain import ids
from pipeline.domain.machine import Event
from pipeline.domain.platform import JobRequest, PlatformError
from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.domain.slots import CandidateState, Slot
from pipeline.planning.plan_types import Plan, PlannedJob
from pipeline.run.context import Outcome, RunContext, workspace
from pipeline.run.events import FinalProgress, QuotaWait, ScoreboardChanged, StallWarning
from pipeline.run.jobs import JobScope, JobWatch, WatchTiming
from pipeline.run.steps import data
from pipeline.run.steps.scoring import score_candidates
from pipeline.store import runs


async def current_plan(ctx: RunContext, run: RunRecord) -> Plan:
    plan = await runs.get_plan(ctx.db, run.id, run.plan_version)
    if plan is None:
        raise ValueError(f"run #{run.number} has no plan v{run.plan_version}")
    return plan


def watch(ctx: RunContext, run: RunRecord, *, final: bool = False, prune: bool = False) -> JobWatch:
    """A JobWatch whose changes become scoreboard events (``final``: FinalProgress events);
    ``prune``: stop hopeless candidates at epoch boundaries (the sweep only, never the final run)."""

    async def changed(cands: list[CandidateRecord]) -> None:
        fresh = await ctx.reload(run)
        last = next((c for c in cands if c.slot.is_final), None)
        if final and last is not None:
            await ctx.emit(FinalProgress(run=fresh, candidate=last))
        elif not final:
            await ctx.emit(ScoreboardChanged(run=fresh, candidates=tuple(c for c in cands if not c.slot.is_final)))

    async def stalled(c: CandidateRecord, minutes: float) -> None:
        await ctx.emit(StallWarning(run=await ctx.reload(run), slot=c.slot, label=c.label, minutes=minutes))

    async def queued(cands: list[CandidateRecord], running: int, reason: str) -> None:
        fresh = await ctx.reload(run)
        last = next((c for c in cands if c.slot.is_final), None)
        if final and last is not None:
            await ctx.emit(FinalProgress(run=fresh, candidate=last))
        elif not final:
            sweep = tuple(c for c in cands if not c.slot.is_final)
            await ctx.emit(QuotaWait(run=fresh, candidates=sweep, running=running, reason=reason))

    return JobWatch(
        JobScope(db=ctx.db, training=ctx.platform.training, run_id=run.id, workspace=workspace(run), checkpoint=ctx.checkpoint),
        WatchTiming(
            poll_seconds=ctx.config.poll_seconds,
            stall_seconds=ctx.config.stall_minutes * 60,
            give_up_seconds=ctx.config.quota_give_up_seconds,
        ),
        changed=changed,
        stalled=stalled,
        queued=queued,
        prune=prune and not final,
    )


def request(run: RunRecord, job: PlannedJob, *, dataset: str, eval_dataset: str | None, what: str) -> JobRequest:
    job_id = ids.job_id(run.id, job.slot)
    return JobRequest(
        job_id=job_id,
        base_model=job.base_model,
        dataset=dataset,
        eval_dataset=eval_dataset or None,
        epochs=job.epochs,
        lora_rank=job.lora_rank,
        learning_rate=job.learning_rate,
        output_model=job_id,
        display_name=f"sftbot run {run.number} {what}",
        max_context_length=job.max_context_length,
    )


def record(run: RunRecord, job: PlannedJob) -> CandidateRecord:
    return CandidateRecord(
        run_id=run.id,
        slot=job.slot,
        job_id=ids.job_id(run.id, job.slot),
        base_model=job.base_model,
        lora_rank=job.lora_rank,
        learning_rate=job.learning_rate,
        epochs=job.epochs,
        train_samples=job.train_samples,
    )


async def sweep(ctx: RunContext, run: RunRecord) -> Outcome:
    """Train the plan's candidates on the HP-tuning split; score them when the plan has an evaluator."""
    plan = await current_plan(ctx, run)
    names = await data.upload(ctx, run, plan)
    train = names.get("hp") or names["train"]
    requests: dict[Slot, JobRequest] = {}
    async with ctx.db.write() as tx:
        for job in plan.candidates:
            await runs.insert_candidate(tx, record(run, job))
            requests[job.slot] = request(
                run, job, dataset=train, eval_dataset=names.get("eval"), what=f"candidate {job.slot.number}"
            )
    cands = await watch(ctx, run, prune=plan.prune).run(requests, max_active=plan.max_parallel)
    # Pruning never stops the last candidate of a base model, so only failures can leave none.
    if not any(c.state is CandidateState.COMPLETED for c in cands):
        errors = "; ".join(f"{c.label}: {c.message or c.raw_state or c.state.value}" for c in cands)
        raise PlatformError(f"every candidate failed ({errors})")
    await score_candidates(ctx, run, plan)
    return Outcome(Event.SWEEP_DONE)
