"""The end of a run: cancel what it still has running, and say how it ended."""

from __future__ import annotations

from pipeline.platforms.base import NotFound, PlatformError
from pipeline.run.context import RunContext
from pipeline.run.events import RunCancelled, RunFailed, RunSucceeded
from pipeline.run.machine import Event, Phase
from pipeline.run.slots import CandidateState
from pipeline.store import runs as q
from pipeline.store.records import Actor, RunRecord


async def cancel_jobs(ctx: RunContext, run: RunRecord) -> None:
    """Cancel this run's active jobs only (never anything the bot did not create).

    The state recorded is the one read back: a job that finished just before the cancel
    arrived keeps its real state (and its model).
    """
    for c in await q.candidates(ctx.db, run.id):
        if not c.state.is_active():
            continue
        try:
            status = await ctx.platform.cancel_job(c.job_id)
        except NotFound:
            # Recorded but never created (the run stopped between the two): nothing to cancel.
            async with ctx.db.write() as tx:
                await q.set_state(tx, run.id, c.slot, CandidateState.CANCELLED, message="never created")
            continue
        except PlatformError as exc:
            await ctx.db.audit(
                run_id=run.id, actor="sftbot", action="cancel_job_failed", details={"job_id": c.job_id, "error": str(exc)}
            )
            continue
        state = CandidateState.of(status.state)
        if not state.is_finished():
            state = CandidateState.CANCELLED  # cancelling: nothing more will come of it
        async with ctx.db.write() as tx:
            await q.update_candidate(tx, run.id, c.slot, status, state=state, progressed=True, stalled=False)
            await tx.audit(
                run_id=run.id, actor="sftbot", action="job_cancelled", details={"job_id": c.job_id, "state": state.value}
            )


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
