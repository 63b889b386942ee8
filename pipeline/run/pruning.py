"""Pruning's effects in a sweep (the rule itself is pure, in pipeline/run/prune_rule.py).

Reads each training candidate's epoch validation losses as rarely as possible, asks the rule
whom to stop, and stops them the way submits are made: the decision is recorded first (state
PRUNING, the reason as the candidate's note, a ``candidate_pruned`` audit event), then the
platform's own cancel is sent and a resource row says it was; the job is PRUNED once it has
stopped. On resume a PRUNING job is read back and cancelled only when that row says the
cancel was never sent, so a restart neither cancels twice, nor prunes again (a PRUNING or
PRUNED candidate is out of the race for the rule), nor brings the candidate back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from pipeline.domain.platform import JobState, JobStatus, LossPoint, PlatformError, Training
from pipeline.domain.provenance import Change, Ref, ResourceKind, ResourceState
from pipeline.domain.records import CandidateRecord
from pipeline.domain.slots import CandidateState
from pipeline.run import prune_rule
from pipeline.run.metrics import load_points, read_points
from pipeline.run.once import job_finished
from pipeline.store import runs
from pipeline.store.db import Database

Checkpoint = Callable[[str], Awaitable[None]]
Record = Callable[[CandidateRecord, JobStatus], Awaitable[bool]]  # the watch's own bookkeeping of a job seen


class Pruner:
    """Stops a sweep's hopeless candidates at epoch boundaries; one per job watch."""

    def __init__(
        self, *, db: Database, training: Training, run_id: str, workspace: Path, checkpoint: Checkpoint, record: Record
    ) -> None:
        self.db = db
        self.training = training
        self.run_id = run_id
        self.ws = workspace
        self.cp = checkpoint
        self.record = record
        self._losses: dict[str, dict[int, float]] = {}  # job id -> validation loss per finished epoch
        self._read_for: dict[str, tuple[int, float | None]] = {}  # job id -> (epoch, val loss) its metrics were read at

    def seen(self, job_id: str, points: list[LossPoint]) -> None:
        """The watch read a job's metrics (at its end): keep its epoch losses."""
        self._losses[job_id] = prune_rule.epoch_losses([(p.epoch, p.val_loss) for p in points])

    async def _read(self, job_id: str) -> None:
        points = await read_points(self.training, self.ws, job_id)
        if points is not None:
            self.seen(job_id, points)

    async def _epoch_losses(self, c: CandidateRecord) -> dict[int, float]:
        """Validation loss per finished epoch of one candidate, read as rarely as possible.

        A training job's metrics are read when it has passed an epoch boundary beyond the
        losses known, again only when its reported validation loss has changed since (the
        local trainer writes it just after the epoch's last step). A billing platform that
        shows no mid-job validation loss is asked once per epoch and pruning does nothing.
        """
        if c.job_id not in self._losses and (c.state.is_finished() or c.state is CandidateState.PRUNING):
            self._losses[c.job_id] = prune_rule.epoch_losses([(p.epoch, p.val_loss) for p in load_points(self.ws, c.job_id)])
        known = self._losses.get(c.job_id, {})
        if c.state is not CandidateState.RUNNING or c.epoch is None:
            return known
        boundary = int(c.epoch + 1e-6)
        if boundary <= max(known, default=0) or self._read_for.get(c.job_id) == (boundary, c.val_loss):
            return known
        self._read_for[c.job_id] = (boundary, c.val_loss)
        await self._read(c.job_id)
        return self._losses.get(c.job_id, known)

    async def round(self, cands: list[CandidateRecord]) -> bool:
        """Ask the rule whom to stop now, and stop them (decision recorded first)."""
        refused = {
            r.resource_id
            for r in await self.db.resources(self.run_id)
            if r.kind is ResourceKind.JOB and r.state is ResourceState.PRUNE_REFUSED
        }
        entries = [
            prune_rule.Entry(
                slot=c.slot,
                base_model=c.base_model,
                epochs=c.epochs,
                losses=await self._epoch_losses(c),
                # One the platform would not stop trains on to the end: in the race, never tried again.
                standing=_standing(c) if c.job_id not in refused else prune_rule.Standing.DONE,
            )
            for c in cands
        ]
        decisions = prune_rule.decide(entries)
        by_slot = {c.slot: c for c in cands}
        for d in decisions:
            await self._prune(by_slot[d.slot], d)
        return bool(decisions)

    async def _prune(self, c: CandidateRecord, d: prune_rule.Prune) -> None:
        """Record the decision and its reason, then cancel through the platform's own path."""
        async with self.db.write() as tx:
            await runs.set_state(tx, self.run_id, c.slot, CandidateState.PRUNING)
            await runs.set_note(tx, self.run_id, c.slot, d.reason)
            await self.db.move_resource(tx, self.run_id, _job(c), ResourceState.PRUNING)
            await tx.audit(
                run_id=self.run_id,
                actor="sftbot",
                action="candidate_pruned",
                details={
                    "job_id": c.job_id,
                    "slot": str(c.slot),
                    "epoch": d.epoch,
                    "val_loss": d.val_loss,
                    "best": d.best,
                    "best_slot": str(d.best_slot),
                    "rank": d.rank,
                    "rung": d.rung,
                    "rule": prune_rule.RULE,
                    "reason": d.reason,
                },
            )
        await self.cp(_job(c).checkpoint(ResourceState.PRUNING))
        await self._cancel_pruned(c, d.reason)

    async def _cancel_pruned(self, c: CandidateRecord, reason: str) -> bool:
        try:
            status = await self.training.cancel(c.job_id)
        except PlatformError as exc:
            if exc.retryable:
                return False  # still PRUNING: the next poll tries again
            # The platform will not stop it: it trains on, the reason stays on record, and the
            # resource row keeps the rule from trying again (also after a restart).
            async with self.db.write() as tx:
                await runs.set_state(tx, self.run_id, c.slot, CandidateState.RUNNING)
                await runs.set_note(tx, self.run_id, c.slot, f"could not be pruned: {exc}")
                # Never pruned again (also after a restart): the rule reads this state.
                await self.db.move_resource(tx, self.run_id, _job(c), ResourceState.PRUNE_REFUSED, Change(error=str(exc)))
                await tx.audit(
                    run_id=self.run_id,
                    actor="sftbot",
                    action="cancel_job_failed",
                    details={"job_id": c.job_id, "error": str(exc)},
                )
            return True
        async with self.db.write() as tx:
            await self.db.move_resource(tx, self.run_id, _job(c), ResourceState.CANCEL_SENT)
            await tx.audit(
                run_id=self.run_id,
                actor="sftbot",
                action="job_cancelled",
                details={"job_id": c.job_id, "state": status.state.value, "reason": reason},
            )
        await self.cp(_job(c).checkpoint(ResourceState.CANCEL_SENT))
        return await self.settle(c, status)

    async def settle(self, c: CandidateRecord, status: JobStatus | None = None) -> bool:
        """A PRUNING job read back: PRUNED once stopped; cancelled now only if it never was."""
        if status is None:
            try:
                status = await self.training.get(c.job_id)
            except PlatformError as exc:
                if not exc.retryable:
                    raise
                return False
            if not status.state.terminal and await self._job_resource_state(c) is not ResourceState.CANCEL_SENT:
                # A restart came between the decision and the cancel: the note is the recorded reason.
                return await self._cancel_pruned(c, c.note or "pruned")
        if not status.state.terminal:
            return False  # the platform is still stopping it
        if status.state is JobState.COMPLETED:
            # It finished before the cancel reached it: it keeps its model (and cost the full price).
            await self.record(c, status)
            async with self.db.write() as tx:
                await runs.set_note(tx, self.run_id, c.slot, "finished before it could be pruned")
            return True
        state = CandidateState.PRUNED  # cancelled, or failed on its way down: either way no model
        await self._read(c.job_id)  # its curve up to the stop, for the report
        saved = max(0.0, c.epochs - (status.epoch or 0.0))
        async with self.db.write() as tx:
            await runs.update_candidate(tx, c, status, state=state, progressed=True, stalled=False)
            await job_finished(self.db, tx, self.run_id, status, state)
            await tx.audit(
                run_id=self.run_id,
                actor="sftbot",
                action=f"job_{state.value}",
                details={"job_id": c.job_id, "epoch": status.epoch, "saved_epochs": round(saved, 2)},
            )
        await self.cp(_job(c).checkpoint(ResourceState.of(state)))
        return True

    async def _job_resource_state(self, c: CandidateRecord) -> ResourceState | None:
        found = await self.db.resource(_job(c))
        return found.state if found is not None else None


def _job(c: CandidateRecord) -> Ref:
    return Ref(kind=ResourceKind.JOB, id=c.job_id)


def _standing(c: CandidateRecord) -> prune_rule.Standing:
    if c.state is CandidateState.RUNNING:
        return prune_rule.Standing.TRAINING
    if c.state is CandidateState.COMPLETED:
        return prune_rule.Standing.DONE
    if c.state in (CandidateState.WAITING, CandidateState.SUBMITTING, CandidateState.PENDING):
        return prune_rule.Standing.WAITING
    return prune_rule.Standing.OUT  # failed, cancelled, pruned or being pruned
