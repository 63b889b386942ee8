"""The end of a run: cancel what it still has running, and say how it ended."""

from __future__ import annotations

import asyncio

from pipeline.domain.machine import Event, Phase
from pipeline.domain.platform import JobStatus, NotFound, PlatformError
from pipeline.domain.poll import Pace, PollTimeout, poll_until
from pipeline.domain.provenance import ResourceKind, ResourceState
from pipeline.domain.records import Actor, CandidateRecord, RunRecord
from pipeline.domain.slots import CandidateState
from pipeline.run.context import RunContext
from pipeline.run.events import RunCancelled, RunFailed, RunSucceeded
from pipeline.run.once import job_finished
from pipeline.store import runs


async def cancel_jobs(ctx: RunContext, run: RunRecord) -> None:
    """Cancel this run's active jobs only (never anything the bot did not create).

    The state recorded is the one read back, never assumed: a job that finished just before
    the cancel arrived keeps its real state (and its model). A cancel is asynchronous on the
    platform (JOB_STATE_CANCELLING), so the job is read back for a short while until it has
    stopped; one still stopping stays active, and a restart reads it back again. A candidate
    being pruned whose cancel was already sent is only read back (never cancelled twice), and
    stays pruned rather than becoming "cancelled".
    """
    asked: list[tuple[CandidateRecord, JobStatus]] = []
    sent = {
        r.resource_id
        for r in await ctx.db.resources(run.id)
        if r.kind is ResourceKind.JOB and r.state is ResourceState.CANCEL_SENT
    }
    for c in await runs.candidates(ctx.db, run.id):
        if not c.state.is_active():
            continue
        try:
            if c.state is CandidateState.PRUNING and c.job_id in sent:
                asked.append((c, await ctx.platform.training.get(c.job_id)))
                continue
            asked.append((c, await ctx.platform.training.cancel(c.job_id)))
        except NotFound:
            # Recorded but never created (the run stopped between the two): nothing to cancel.
            async with ctx.db.write() as tx:
                await runs.set_state(tx, run.id, c.slot, CandidateState.CANCELLED, message="never created")
        except PlatformError as exc:
            await ctx.db.audit(
                run_id=run.id, actor="sftbot", action="cancel_job_failed", details={"job_id": c.job_id, "error": str(exc)}
            )
    # Every cancel is sent first, then all are read back together: one slow stop delays no other.
    settled = await asyncio.gather(*(_settled(ctx, status) for _, status in asked))
    for (c, _), status in zip(asked, settled, strict=True):
        state = CandidateState.of(status.state)
        if c.state is CandidateState.PRUNING and state in (CandidateState.CANCELLED, CandidateState.FAILED):
            state = CandidateState.PRUNED
        async with ctx.db.write() as tx:
            await runs.update_candidate(tx, c, status, state=state, progressed=True, stalled=False)
            if state is not CandidateState.PRUNED:  # a pruned one keeps its reason
                await runs.set_note(tx, run.id, c.slot, None if state.is_finished() else f"cancel requested ({status.raw_state})")
            if state.is_finished():  # what the cancel left: the job's end (and a model, if it finished first)
                await job_finished(ctx.db, tx, run.id, status, state)
            await tx.audit(
                run_id=run.id,
                actor="sftbot",
                action="job_pruned" if c.job_id in sent else "job_cancelled",  # no second cancel was sent
                details={"job_id": c.job_id, "state": state.value},
            )


async def _settled(ctx: RunContext, status: JobStatus) -> JobStatus:
    """The job read back until it has stopped, for at most ``cancel_settle_seconds``."""
    try:
        return await poll_until(
            lambda: ctx.platform.training.get(status.job_id),
            lambda s: s.state.terminal,
            Pace(timeout=ctx.config.cancel_settle_seconds, interval=min(ctx.config.poll_seconds, 2.0)),
            first=status,
            what=f"job {status.job_id}",
        )
    except PollTimeout as exc:
        return exc.last if isinstance(exc.last, JobStatus) else status
    except PlatformError:
        return status


async def finish(ctx: RunContext, run: RunRecord) -> None:
    if run.phase is Phase.SUCCEEDED:
        await ctx.emit(RunSucceeded(run=run))
    elif run.phase is Phase.FAILED:
        await ctx.emit(RunFailed(run=run, reason=run.error or "unknown error"))
    elif run.phase is Phase.CANCELLED:
        trail = await ctx.db.audit_trail(run.id)
        who = next((a for a in reversed(trail) if a.action == Event.CANCEL.value), None)
        actor = Actor(id=who.actor, name=who.actor_name) if who is not None else None
        await ctx.emit(RunCancelled(run=run, actor=actor))
