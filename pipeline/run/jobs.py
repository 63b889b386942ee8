"""Submitting and watching a run's training jobs: at most N active, ids before side effects, backoff.

A job's id is recorded (state SUBMITTING) before its create call and the state moves on
after it; on resume a SUBMITTING job is looked up by id first and only created when the
platform has never heard of it, so no restart ever creates a job twice.

With pruning on (a sweep's ``prune=on``), every poll also lets pipeline/run/pruning.py stop
hopeless candidates at epoch boundaries, the decision recorded before the cancel.

Quota and capacity are back-pressure, not failure: a create the platform refuses (any
retryable error) puts the job back in the queue and lowers the effective parallel limit to
what is running; the next try comes when one of the run's jobs finishes, or after a backoff
(which also probes one slot more). Nothing running is ever cancelled for it. Only when
nothing of the run can run for ``give_up_seconds`` does the sweep fail, in one sentence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.domain.platform import Busy, JobRequest, JobStatus, NotFound, PlatformError, Training
from pipeline.domain.provenance import Change, Ref, ResourceKind, ResourceState
from pipeline.domain.records import CandidateRecord
from pipeline.domain.slots import CandidateState, Slot
from pipeline.run.metrics import last_loss, no_validation_loss, read_points
from pipeline.run.once import Create, create_once, job_finished
from pipeline.run.pruning import Pruner
from pipeline.store import runs
from pipeline.store.db import Database, Tx

Checkpoint = Callable[[str], Awaitable[None]]
Changed = Callable[[list[CandidateRecord]], Awaitable[None]]
Stalled = Callable[[CandidateRecord, float], Awaitable[None]]
Queued = Callable[[list[CandidateRecord], int, str], Awaitable[None]]  # (candidates, running, why)
MAX_BACKOFF = 300.0  # the longest wait between tries of a refused job while nothing of ours finishes


async def _nothing_queued(cands: list[CandidateRecord], running: int, why: str) -> None:
    return None


def waiting_note(exc: PlatformError, running: int) -> str:
    """What the scoreboard says about a job the platform would not start yet."""
    why = "quota" if isinstance(exc, Busy) else "the platform"
    return f"waiting for {why} ({running} running)"


@dataclass(frozen=True)
class JobScope:
    """The run whose jobs a watch drives, and what it reads and writes for them."""

    db: Database
    training: Training
    run_id: str
    workspace: Path
    checkpoint: Checkpoint


@dataclass(frozen=True)
class WatchTiming:
    """How often a watch polls, when a job counts as stalled, and how long nothing may run."""

    poll_seconds: float
    stall_seconds: float
    give_up_seconds: float = 3600.0
    clock: Callable[[], float] = time.monotonic


class JobWatch:
    """Drives a set of a run's slots to finished states."""

    def __init__(
        self,
        scope: JobScope,
        timing: WatchTiming,
        *,
        changed: Changed,
        stalled: Stalled,
        queued: Queued = _nothing_queued,
        prune: bool = False,
    ) -> None:
        self.db, self.training, self.run_id = scope.db, scope.training, scope.run_id
        self.ws, self.cp = scope.workspace, scope.checkpoint
        self.changed = changed
        self.on_stall = stalled
        self.poll = timing.poll_seconds
        self.stall = timing.stall_seconds
        self.give_up = timing.give_up_seconds
        self.on_queued = queued
        self.clock = timing.clock
        self.pruner = (
            Pruner(
                db=scope.db,
                training=scope.training,
                run_id=scope.run_id,
                workspace=scope.workspace,
                checkpoint=scope.checkpoint,
                record=self._record,
            )
            if prune
            else None
        )

    async def _mine(self, requests: dict[Slot, JobRequest]) -> list[CandidateRecord]:
        return [c for c in await runs.candidates(self.db, self.run_id) if c.slot in requests]

    async def run(self, requests: dict[Slot, JobRequest], *, max_active: int) -> list[CandidateRecord]:
        """Submit and poll until every slot in ``requests`` is finished."""
        delay = self.poll
        gate = _Gate(max_active, poll=self.poll, give_up=self.give_up)
        while True:
            cands = await self._mine(requests)
            active = [c for c in cands if c.state.is_active()]
            waiting = [c for c in cands if c.state is CandidateState.WAITING]
            if not active and not waiting:
                return cands
            now = self.clock()
            for c in waiting[: gate.room(len(active), now)]:
                try:
                    await self._submit(c, requests[c.slot])
                except PlatformError as exc:
                    if not exc.retryable and c.slot.is_final:
                        raise  # the final run's one job: the run fails with it
                    if not exc.retryable:
                        await self._refused(c, exc)  # that candidate fails; the others' jobs train on
                        continue
                    running = sum(1 for x in await self._mine(requests) if x.state.is_active() and x.slot != c.slot)
                    if gate.refused(running, now):
                        raise PlatformError(gate.sentence(exc, waiting=len(waiting))) from None
                    await self._queue(requests, c, exc, running)
                    break
                gate.started(now)
            before = await self._mine(requests)
            changed = await self._poll_once(before)
            if self.pruner is not None and await self.pruner.round(await self._mine(requests)):
                changed = True
                await self.changed(await runs.candidates(self.db, self.run_id))
            # Back off while nothing moves (no retry storms on a slow platform); snap back on change.
            delay = self.poll if changed else min(delay * 1.5, self.poll * 4)
            after = await self._mine(requests)
            freed = sum(c.state.is_active() for c in after) < sum(c.state.is_active() for c in before)
            if freed and any(c.state is CandidateState.WAITING for c in after):
                continue  # a slot freed up: submit the next one at once
            await asyncio.sleep(delay)

    async def _queue(self, requests: dict[Slot, JobRequest], c: CandidateRecord, exc: PlatformError, running: int) -> None:
        """The refused job goes back in the queue; every queued job says why it waits."""
        note = waiting_note(exc, running)
        async with self.db.write() as tx:
            await runs.set_state(tx, self.run_id, c.slot, CandidateState.WAITING)
            await self.db.move_resource(tx, self.run_id, Ref(kind=ResourceKind.JOB, id=c.job_id), ResourceState.QUEUED)
            for other in await self._mine(requests):
                if other.state is CandidateState.WAITING or other.slot == c.slot:
                    await runs.set_note(tx, self.run_id, other.slot, note)
            await tx.audit(
                run_id=self.run_id, actor="sftbot", action="job_queued", details={"job_id": c.job_id, "reason": str(exc)}
            )
        await self.on_queued(await runs.candidates(self.db, self.run_id), running, str(exc))

    async def _refused(self, c: CandidateRecord, exc: PlatformError) -> None:
        """A create refused for good fails that candidate alone, with the platform's sentence."""
        async with self.db.write() as tx:
            await runs.set_state(tx, self.run_id, c.slot, CandidateState.FAILED, message=str(exc))
            job = Ref(kind=ResourceKind.JOB, id=c.job_id)
            await self.db.move_resource(tx, self.run_id, job, ResourceState.FAILED, Change(error=str(exc)))
            await tx.audit(
                run_id=self.run_id, actor="sftbot", action="job_create_refused", details={"job_id": c.job_id, "reason": str(exc)}
            )
        await self.changed(await runs.candidates(self.db, self.run_id))

    async def _submit(self, c: CandidateRecord, req: JobRequest) -> None:
        """Create the job once: its id and SUBMITTING recorded first, the candidate updated from the answer."""

        async def submitting(tx: Tx) -> None:
            await runs.set_state(tx, self.run_id, c.slot, CandidateState.SUBMITTING)
            await tx.audit(run_id=self.run_id, actor="sftbot", action="job_submitting", details={"job_id": req.job_id})

        async def created(tx: Tx, status: JobStatus) -> None:
            await runs.set_note(tx, self.run_id, c.slot, None)
            await runs.update_candidate(tx, c, status, state=CandidateState.of(status.state), progressed=True, stalled=False)
            await tx.audit(run_id=self.run_id, actor="sftbot", action="job_created", details={"job_id": req.job_id})

        create = Create(
            run_id=self.run_id,
            ref=Ref(kind=ResourceKind.JOB, id=req.job_id),
            call=lambda: self.training.create(req),
            answer=lambda status: Change(
                estimated_usd=status.cost_usd, details={"tracking_url": status.tracking_url} if status.tracking_url else {}
            ),
            before=submitting,
            after=created,
        )
        await create_once(self.db, self.cp, create)

    async def _poll_once(self, cands: list[CandidateRecord]) -> bool:
        changed = False
        for c in cands:
            if not c.state.is_active():
                continue
            if c.state is CandidateState.PRUNING and self.pruner is not None:
                changed |= await self.pruner.settle(c)
                continue
            try:
                status = await self.training.get(c.job_id)
            except NotFound:
                if c.state is not CandidateState.SUBMITTING:
                    raise
                # A crash between recording and creating: the platform never heard of it.
                async with self.db.write() as tx:
                    await runs.set_state(tx, self.run_id, c.slot, CandidateState.WAITING)
                changed = True
                continue
            except PlatformError as exc:
                if not exc.retryable:
                    raise
                continue
            changed |= await self._record(c, status)
        if changed:
            await self.changed(await runs.candidates(self.db, self.run_id))
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
        note: str | None = None
        if state is CandidateState.COMPLETED:
            train, val = await self._metrics(c.job_id)
            status = status.model_copy(update={"train_loss": train or status.train_loss, "val_loss": val or status.val_loss})
            if status.val_loss is None:
                note = no_validation_loss(self.ws / "metrics" / f"{c.job_id}.raw.jsonl")
        async with self.db.write() as tx:
            await runs.update_candidate(tx, c, status, state=state, progressed=progressed, stalled=stalled)
            if note is not None:
                await runs.set_note(tx, self.run_id, c.slot, note)
            if state.is_finished():
                await tx.audit(
                    run_id=self.run_id,
                    actor="sftbot",
                    action=f"job_{state.value}",
                    details={"job_id": c.job_id, "message": status.message, "val_loss": status.val_loss},
                )
                await job_finished(self.db, tx, self.run_id, status, state)
        if stalled and not c.stalled:
            await self.on_stall(c, (now - (c.last_progress_at or now)) / 60)
        if state.is_finished():
            await self.cp(Ref(kind=ResourceKind.JOB, id=c.job_id).checkpoint(ResourceState.of(state)))
        return progressed or (stalled and not c.stalled)

    async def _metrics(self, job_id: str) -> tuple[float | None, float | None]:
        """Final train and validation loss from the job's metrics file (kept in the workspace)."""
        points = await read_points(self.training, self.ws, job_id)
        if points is None:
            return None, None
        if self.pruner is not None:
            self.pruner.seen(job_id, points)
        return last_loss(points, "train_loss"), last_loss(points, "val_loss")


class _Gate:
    """The sweep's effective parallel limit under back-pressure (pure bookkeeping, no I/O).

    After a refusal the limit is what was running. A job of ours finishing frees a slot that
    is refilled at once; above the limit the gate probes one slot at a time, each probe after
    a backoff that doubles while the platform keeps refusing (a tight quota costs a few
    refused creates, not a storm) and shrinks again when a probe is taken.
    """

    def __init__(self, max_active: int, *, poll: float, give_up: float) -> None:
        self.max_active = max_active
        self.limit = max_active
        self.poll = poll
        self.give_up = give_up
        self.level = 0  # consecutive refused tries: the backoff doubles with it
        self.next_try = 0.0
        self.running_at_refusal = 0
        self.probing = False
        self.stuck_since: float | None = None  # nothing of ours running, and refused, since then

    def _backoff(self) -> float:
        return min(self.poll * 2.0**self.level, MAX_BACKOFF, max(self.poll, self.give_up / 4))

    def room(self, active: int, now: float) -> int:
        """How many queued jobs to try now: none during a backoff, unless one of ours finished."""
        freed = active < self.running_at_refusal
        if self.level and now < self.next_try and not freed:
            return 0
        if not freed and active >= self.limit and self.limit < self.max_active and now >= self.next_try:
            self.limit += 1  # probe one slot more: the quota may have grown, others' jobs may have ended
            self.probing = True
            self.next_try = now + self._backoff()
        return max(0, self.limit - active)

    def refused(self, running: int, now: float) -> bool:
        """Record a refusal; True when nothing has been able to run for ``give_up`` seconds."""
        self.level += 1
        self.probing = False
        self.limit = max(1, running)
        self.running_at_refusal = running
        self.next_try = now + self._backoff()
        if running:
            self.stuck_since = None
            return False
        self.stuck_since = self.stuck_since if self.stuck_since is not None else now
        return now - self.stuck_since >= self.give_up

    def started(self, now: float) -> None:
        self.stuck_since = None
        if self.probing:  # the platform took one more than the limit: probe again sooner
            self.level, self.probing = 0, False
            self.next_try = now + self._backoff()

    def sentence(self, exc: PlatformError, *, waiting: int) -> str:
        minutes = self.give_up / 60
        span = f"{minutes:.0f} minutes" if minutes >= 1 else f"{self.give_up:.0f} seconds"
        return (
            f"The platform refused to start any of the {waiting} waiting jobs for {span} while none of this run's jobs "
            f"was running, so the run stops here ({str(exc).rstrip('.')})."
        )
