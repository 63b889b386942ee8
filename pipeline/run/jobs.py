"""Submitting and watching a run's training jobs: at most N active, ids before side effects, backoff.

A job's id is recorded (state SUBMITTING) before its create call and the state moves on
after it; on resume a SUBMITTING job is looked up by id first and only created when the
platform has never heard of it, so no restart ever creates a job twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pipeline.fsio import write_atomic
from pipeline.platforms.base import JobRequest, JobStatus, LossPoint, NotFound, Platform, PlatformError
from pipeline.run.slots import CandidateState, Slot
from pipeline.store import runs as q
from pipeline.store.db import Database
from pipeline.store.records import CandidateRecord

Checkpoint = Callable[[str], Awaitable[None]]
Changed = Callable[[list[CandidateRecord]], Awaitable[None]]
Stalled = Callable[[CandidateRecord, float], Awaitable[None]]


class JobWatch:
    """Drives a set of a run's slots to finished states."""

    def __init__(
        self,
        *,
        db: Database,
        platform: Platform,
        run_id: str,
        workspace: Path,
        checkpoint: Checkpoint,
        changed: Changed,
        stalled: Stalled,
        poll_seconds: float,
        stall_seconds: float,
    ) -> None:
        self.db = db
        self.platform = platform
        self.run_id = run_id
        self.ws = workspace
        self.cp = checkpoint
        self.changed = changed
        self.on_stall = stalled
        self.poll = poll_seconds
        self.stall = stall_seconds

    async def _mine(self, requests: dict[Slot, JobRequest]) -> list[CandidateRecord]:
        return [c for c in await q.candidates(self.db, self.run_id) if c.slot in requests]

    async def run(self, requests: dict[Slot, JobRequest], *, max_active: int) -> list[CandidateRecord]:
        """Submit and poll until every slot in ``requests`` is finished."""
        delay = self.poll
        while True:
            cands = await self._mine(requests)
            active = [c for c in cands if c.state.is_active()]
            waiting = [c for c in cands if c.state is CandidateState.WAITING]
            if not active and not waiting:
                return cands
            for c in waiting[: max(0, max_active - len(active))]:
                await self._submit(c, requests[c.slot])
            changed = await self._poll_once(await self._mine(requests))
            # Back off while nothing moves (no retry storms on a slow platform); snap back on change.
            delay = self.poll if changed else min(delay * 1.5, self.poll * 4)
            if changed and any(c.state is CandidateState.WAITING for c in await self._mine(requests)):
                continue  # a slot may have freed up: submit the next one at once
            await asyncio.sleep(delay)

    async def _submit(self, c: CandidateRecord, req: JobRequest) -> None:
        async with self.db.write() as tx:
            await q.set_state(tx, self.run_id, c.slot, CandidateState.SUBMITTING)
            await self.db.record_resource(tx, kind="job", resource_id=req.job_id, run_id=self.run_id, state="submitting")
            await tx.audit(run_id=self.run_id, actor="sftbot", action="job_submitting", details={"job_id": req.job_id})
        await self.cp(f"job:{req.job_id}:recorded")
        status = await self.platform.create_job(req)
        async with self.db.write() as tx:
            await q.update_candidate(
                tx, self.run_id, c.slot, status, state=CandidateState.of(status.state), progressed=True, stalled=False
            )
            await self.db.record_resource(tx, kind="job", resource_id=req.job_id, run_id=self.run_id, state="created")
            await tx.audit(run_id=self.run_id, actor="sftbot", action="job_created", details={"job_id": req.job_id})
        await self.cp(f"job:{req.job_id}:created")

    async def _poll_once(self, cands: list[CandidateRecord]) -> bool:
        changed = False
        for c in cands:
            if not c.state.is_active():
                continue
            try:
                status = await self.platform.get_job(c.job_id)
            except NotFound:
                if c.state is not CandidateState.SUBMITTING:
                    raise
                # A crash between recording and creating: the platform never heard of it.
                async with self.db.write() as tx:
                    await q.set_state(tx, self.run_id, c.slot, CandidateState.WAITING)
                changed = True
                continue
            except PlatformError as exc:
                if not exc.retryable:
                    raise
                continue
            changed |= await self._record(c, status)
        if changed:
            await self.changed(await q.candidates(self.db, self.run_id))
        return changed

    async def _record(self, c: CandidateRecord, status: JobStatus) -> bool:
        state = CandidateState.of(status.state)
        progressed = state is not c.state or status.progress != c.progress or (status.epoch or 0) != (c.epoch or 0)
        now = time.time()
        stalled = (
            not state.is_finished()
            and not progressed
            and c.last_progress_at is not None
            and now - c.last_progress_at > self.stall
        )
        if state is CandidateState.COMPLETED:
            train, val = await self._metrics(c.job_id)
            status = status.model_copy(update={"train_loss": train or status.train_loss, "val_loss": val or status.val_loss})
        async with self.db.write() as tx:
            await q.update_candidate(tx, self.run_id, c.slot, status, state=state, progressed=progressed, stalled=stalled)
            if state.is_finished():
                await tx.audit(
                    run_id=self.run_id,
                    actor="sftbot",
                    action=f"job_{state.value}",
                    details={"job_id": c.job_id, "message": status.message, "val_loss": status.val_loss},
                )
                await self.db.record_resource(tx, kind="job", resource_id=c.job_id, run_id=self.run_id, state=state.value)
                if state is CandidateState.COMPLETED and status.model:
                    await self.db.record_resource(
                        tx, kind="model", resource_id=status.model, run_id=self.run_id, name=status.model, state="ready"
                    )
        if stalled and not c.stalled:
            await self.on_stall(c, (now - (c.last_progress_at or now)) / 60)
        if state.is_finished():
            await self.cp(f"job:{c.job_id}:{state.value}")
        return progressed or (stalled and not c.stalled)

    async def _metrics(self, job_id: str) -> tuple[float | None, float | None]:
        """Final train and validation loss from the job's metrics file (kept in the workspace)."""
        folder = self.ws / "metrics"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            points = await self.platform.job_metrics(job_id, folder / f"{job_id}.raw.jsonl")
        except PlatformError:
            return None, None
        write_atomic(folder / f"{job_id}.json", json.dumps([p.model_dump() for p in points]))
        return last_loss(points, "train_loss"), last_loss(points, "val_loss")


def last_loss(points: list[LossPoint], field: str) -> float | None:
    for p in reversed(points):
        v = getattr(p, field)
        if v is not None:
            return float(v)
    return None


def load_points(workspace: Path, job_id: str) -> list[LossPoint]:
    path = workspace / "metrics" / f"{job_id}.json"
    if not path.exists():
        return []
    return [LossPoint.model_validate(p) for p in json.loads(path.read_text(encoding="utf-8"))]
