"""Submitting and watching training jobs: at most N active, ids before side effects, backoff.

A job's id is recorded (``submit_state='submitting'``) before its create call and marked
``submitted`` after; on resume a ``submitting`` job is looked up by id first and only created
when the platform has never heard of it, so no restart ever creates a job twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pipeline.platforms.base import JobRequest, JobState, JobStatus, LossPoint, NotFound, Platform, PlatformError
from pipeline.store import runs as q
from pipeline.store.db import Database
from pipeline.store.records import CandidateRecord

Checkpoint = Callable[[str], Awaitable[None]]
Notify = Callable[[str, list[CandidateRecord]], Awaitable[None]]  # (what changed, candidates)


class JobWatch:
    """Drives a set of a run's candidates to terminal states."""

    def __init__(
        self,
        *,
        db: Database,
        platform: Platform,
        run_id: str,
        workspace: Path,
        checkpoint: Checkpoint,
        notify: Notify,
        poll_seconds: float,
        stall_seconds: float,
    ) -> None:
        self.db = db
        self.platform = platform
        self.run_id = run_id
        self.ws = workspace
        self.cp = checkpoint
        self.notify = notify
        self.poll = poll_seconds
        self.stall = stall_seconds

    async def run(self, requests: dict[int, JobRequest], *, max_active: int) -> list[CandidateRecord]:
        """Submit and poll until every candidate in ``requests`` is terminal."""
        delay = self.poll
        while True:
            cands = [c for c in await q.candidates(self.db, self.run_id) if c.idx in requests]
            active = [c for c in cands if c.submit_state != "planned" and not c.state.terminal]
            waiting = [c for c in cands if c.submit_state == "planned"]
            if not active and not waiting:
                return cands
            for c in waiting[: max(0, max_active - len(active))]:
                await self._submit(c, requests[c.idx])
            changed = await self._poll_once([c for c in await q.candidates(self.db, self.run_id) if c.idx in requests])
            # Back off while nothing moves (no retry storms on a slow platform); snap back on change.
            delay = self.poll if changed else min(delay * 1.5, self.poll * 4)
            if (
                any(c.submit_state == "planned" for c in await q.candidates(self.db, self.run_id) if c.idx in requests)
                and changed
            ):
                continue
            await asyncio.sleep(delay)

    async def _submit(self, c: CandidateRecord, req: JobRequest) -> None:
        async with self.db.write() as tx:
            await q.set_submit_state(tx, self.run_id, c.idx, "submitting")
            await self.db.record_resource(tx, kind="job", resource_id=req.job_id, run_id=self.run_id, state="submitting")
            await tx.audit(run_id=self.run_id, actor="sftbot", action="job_submitting", details={"job_id": req.job_id})
        await self.cp(f"job:{req.job_id}:recorded")
        status = await self.platform.create_job(req)
        async with self.db.write() as tx:
            await q.set_submit_state(tx, self.run_id, c.idx, "submitted")
            await q.update_candidate(tx, self.run_id, c.idx, status, progressed=True, stalled=False)
            await self.db.record_resource(tx, kind="job", resource_id=req.job_id, run_id=self.run_id, state="created")
            await tx.audit(run_id=self.run_id, actor="sftbot", action="job_created", details={"job_id": req.job_id})
        await self.cp(f"job:{req.job_id}:created")

    async def _poll_once(self, cands: list[CandidateRecord]) -> bool:
        changed = False
        for c in cands:
            if c.submit_state == "planned" or c.state.terminal:
                continue
            if c.submit_state == "submitting":
                # A crash between recording and creating: look it up before creating anything.
                try:
                    status = await self.platform.get_job(c.job_id)
                except NotFound:
                    async with self.db.write() as tx:
                        await q.set_submit_state(tx, self.run_id, c.idx, "planned")
                    changed = True
                    continue
                async with self.db.write() as tx:
                    await q.set_submit_state(tx, self.run_id, c.idx, "submitted")
            else:
                try:
                    status = await self.platform.get_job(c.job_id)
                except PlatformError as exc:
                    if not exc.retryable:
                        raise
                    continue
            changed |= await self._record(c, status)
        if changed:
            await self.notify("scoreboard", await q.candidates(self.db, self.run_id))
        return changed

    async def _record(self, c: CandidateRecord, status: JobStatus) -> bool:
        progressed = status.state != c.state or status.progress != c.progress or (status.epoch or 0) != (c.epoch or 0)
        now = time.time()
        stalled = (
            not status.state.terminal
            and not progressed
            and c.last_progress_at is not None
            and now - c.last_progress_at > self.stall
        )
        if status.state is JobState.COMPLETED:
            train, val = await self._metrics(c.job_id)
            status = status.model_copy(update={"train_loss": train or status.train_loss, "val_loss": val or status.val_loss})
        async with self.db.write() as tx:
            await q.update_candidate(tx, self.run_id, c.idx, status, progressed=progressed, stalled=stalled)
            if status.state.terminal:
                await tx.audit(
                    run_id=self.run_id,
                    actor="sftbot",
                    action=f"job_{status.state.value}",
                    details={"job_id": c.job_id, "message": status.message, "val_loss": status.val_loss},
                )
                await self.db.record_resource(tx, kind="job", resource_id=c.job_id, run_id=self.run_id, state=status.state.value)
                if status.state is JobState.COMPLETED and status.model:
                    await self.db.record_resource(
                        tx, kind="model", resource_id=status.model, run_id=self.run_id, name=status.model, state="ready"
                    )
        if stalled and not c.stalled:
            minutes = (now - (c.last_progress_at or now)) / 60
            await self.notify(f"stall:{c.idx}:{minutes:.0f}", await q.candidates(self.db, self.run_id))
        if status.state.terminal:
            await self.cp(f"job:{c.job_id}:{status.state.value}")
        return progressed or (stalled and not c.stalled)

    async def _metrics(self, job_id: str) -> tuple[float | None, float | None]:
        """Final train and validation loss from the job's metrics file (kept in the workspace)."""
        folder = self.ws / "metrics"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            points = await self.platform.job_metrics(job_id, folder / f"{job_id}.raw.jsonl")
        except PlatformError:
            return None, None
        (folder / f"{job_id}.json").write_text(json.dumps([p.model_dump() for p in points]), encoding="utf-8")
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
