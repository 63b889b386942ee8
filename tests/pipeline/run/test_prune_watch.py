"""Pruning inside the job watch, on a fake platform whose jobs move one half-epoch per poll:
the decision is recorded before the cancel, a restart at either side of the cancel neither
cancels twice nor prunes again nor brings the candidate back, and a job that finishes as the
cancel arrives keeps its model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bot.testing.memory_platform import MemoryPlatform, MemoryTraining
from pipeline.domain.platform import JobRequest, JobStatus, LossPoint, PlatformError
from pipeline.domain.records import Actor, CandidateRecord, NewRun, RunRecord
from pipeline.domain.slots import CandidateState, Slot
from pipeline.domain.spec import RunSpec
from pipeline.run.context import RunContext, RunnerConfig
from pipeline.run.jobs import JobScope, JobWatch, WatchTiming
from pipeline.run.steps.stop import cancel_jobs
from pipeline.store import runs
from pipeline.store.db import Database

EPOCHS = 3
POLLS_PER_EPOCH = 2
LOSS = {1e-4: 1.0, 2e-4: 1.01, 1e-7: 2.0, 3e-4: 1.02}  # validation loss at every epoch, by learning rate
BAD = Slot.candidate(3)


class EpochPlatform(MemoryPlatform):
    """Jobs advance half an epoch per poll and report each finished epoch's validation loss."""

    def __init__(self) -> None:
        super().__init__(polls_to_finish=EPOCHS * POLLS_PER_EPOCH)
        self.cancels: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []  # (what, job id): creates, cancels and completions in order
        self.training = EpochTraining(self)

    def epoch(self, job_id: str) -> float:
        return min(float(EPOCHS), self.polls[job_id] / POLLS_PER_EPOCH)


class EpochTraining(MemoryTraining):
    p: EpochPlatform

    async def create(self, request: JobRequest) -> JobStatus:
        self.p.log.append(("create", request.job_id))
        return await super().create(request)

    async def get(self, job_id: str) -> JobStatus:
        status = await super().get(job_id)
        if status.state.value == "completed" and ("complete", job_id) not in self.p.log:
            self.p.log.append(("complete", job_id))
        return status.model_copy(update={"epoch": self.p.epoch(job_id)})

    async def cancel(self, job_id: str) -> JobStatus:
        self.p.cancels[job_id] += 1
        self.p.log.append(("cancel", job_id))
        return await super().cancel(job_id)

    async def metrics(self, job_id: str, dest: Path) -> list[LossPoint]:
        loss = LOSS[self.p.jobs[job_id].learning_rate]
        done = int(self.p.epoch(job_id))
        return [LossPoint(step=e * POLLS_PER_EPOCH, epoch=float(e), val_loss=loss, elapsed_s=2.0 * e) for e in range(1, done + 1)]


class SimulatedCrash(Exception):
    pass


async def _run(db: Database, tmp_path: Path, *, candidates: int = 3) -> tuple[RunRecord, dict[Slot, JobRequest]]:
    async with db.write() as tx:
        run = await runs.insert_run(
            tx, NewRun(requester=Actor(id="U1"), instruction="", spec=RunSpec(), platform="memory", workspace_root=str(tmp_path))
        )
        requests = {}
        for n, lr in enumerate(list(LOSS)[:candidates], start=1):
            slot = Slot.candidate(n)
            job_id = f"job-{run.id[:6]}-c{n}"
            await runs.insert_candidate(
                tx,
                CandidateRecord(
                    run_id=run.id,
                    slot=slot,
                    job_id=job_id,
                    base_model="qwen3-8b",
                    lora_rank=8,
                    learning_rate=lr,
                    epochs=EPOCHS,
                    train_samples=10,
                ),
            )
            requests[slot] = JobRequest(
                job_id=job_id,
                base_model="qwen3-8b",
                dataset="d",
                eval_dataset=None,
                epochs=EPOCHS,
                lora_rank=8,
                learning_rate=lr,
                output_model=job_id,
            )
    return run, requests


def _watch(db: Database, platform: EpochPlatform, run: RunRecord, crash_at: str | None = None, *, prune: bool = True) -> JobWatch:
    async def checkpoint(name: str) -> None:
        if name == crash_at:
            raise SimulatedCrash(name)

    async def nothing(*_: object) -> None:
        return None

    return JobWatch(
        JobScope(db=db, training=platform.training, run_id=run.id, workspace=Path(run.workspace), checkpoint=checkpoint),
        WatchTiming(poll_seconds=0.0, stall_seconds=3600),
        changed=nothing,
        stalled=nothing,
        prune=prune,
    )


async def _audit(db: Database, run: RunRecord, action: str) -> int:
    return sum(1 for e in await db.audit_trail(run.id) if e.action == action)


async def test_a_hopeless_candidate_is_pruned_after_epoch_one_and_the_others_finish(db: Database, tmp_path: Path) -> None:
    platform = EpochPlatform()
    run, requests = await _run(db, tmp_path)
    cands = {c.slot: c for c in await _watch(db, platform, run).run(requests, max_active=3)}
    bad = cands[BAD]
    assert bad.state is CandidateState.PRUNED and bad.model is None
    assert bad.note == "pruned after epoch 1: val loss 2 vs best 1 (#1)"
    assert bad.epoch is not None and bad.epoch < EPOCHS
    assert [cands[Slot.candidate(n)].state for n in (1, 2)] == [CandidateState.COMPLETED] * 2
    assert platform.cancels == Counter({bad.job_id: 1})
    trail = [e for e in await db.audit_trail(run.id) if e.details.get("job_id") == bad.job_id]
    assert [e.action for e in trail[-3:]] == ["candidate_pruned", "job_cancelled", "job_pruned"]
    assert trail[-3].details["reason"] == trail[-2].details["reason"] == bad.note  # the cancel says why


async def test_without_prune_on_nobody_is_stopped(db: Database, tmp_path: Path) -> None:
    platform = EpochPlatform()
    run, requests = await _run(db, tmp_path)
    cands = await _watch(db, platform, run, prune=False).run(requests, max_active=3)
    assert all(c.state is CandidateState.COMPLETED for c in cands) and not platform.cancels


@pytest.mark.parametrize("boundary", ["pruning", "cancel_sent"])
async def test_a_restart_on_either_side_of_the_cancel_cancels_once_and_prunes_once(
    db: Database, tmp_path: Path, boundary: str
) -> None:
    platform = EpochPlatform()
    run, requests = await _run(db, tmp_path)
    bad_job = requests[BAD].job_id
    with pytest.raises(SimulatedCrash):
        await _watch(db, platform, run, crash_at=f"job:{bad_job}:{boundary}").run(requests, max_active=3)
    stored = {c.slot: c for c in await runs.candidates(db, run.id)}
    assert stored[BAD].state is CandidateState.PRUNING  # the decision is on record ...
    assert stored[BAD].note is not None and stored[BAD].note.startswith("pruned after epoch 1")
    assert platform.cancels[bad_job] == (0 if boundary == "pruning" else 1)  # ... before (or with) the cancel

    cands = {c.slot: c for c in await _watch(db, platform, run).run(requests, max_active=3)}  # the restart
    assert cands[BAD].state is CandidateState.PRUNED and cands[BAD].model is None
    assert platform.cancels == Counter({bad_job: 1})
    assert await _audit(db, run, "candidate_pruned") == 1
    assert await _audit(db, run, "job_pruned") == 1
    cancelled = [e for e in await db.audit_trail(run.id) if e.action == "job_cancelled"]
    assert [e.details["reason"] for e in cancelled] == [cands[BAD].note]
    assert [cands[Slot.candidate(n)].state for n in (1, 2)] == [CandidateState.COMPLETED] * 2


async def test_a_job_that_finishes_as_the_cancel_arrives_keeps_its_model(db: Database, tmp_path: Path) -> None:
    platform = EpochPlatform()
    run, requests = await _run(db, tmp_path)
    platform.finish_on_cancel.add(requests[BAD].job_id)
    cands = {c.slot: c for c in await _watch(db, platform, run).run(requests, max_active=3)}
    assert cands[BAD].state is CandidateState.COMPLETED and cands[BAD].model is not None
    assert cands[BAD].note == "finished before it could be pruned"


async def test_a_run_stopped_mid_prune_keeps_the_candidate_pruned_and_does_not_cancel_it_again(
    db: Database, tmp_path: Path
) -> None:
    platform = EpochPlatform()
    run, requests = await _run(db, tmp_path)
    bad_job = requests[BAD].job_id
    with pytest.raises(SimulatedCrash):
        await _watch(db, platform, run, crash_at=f"job:{bad_job}:cancel_sent").run(requests, max_active=3)

    async def emit(event: object) -> None:
        return None

    ctx = RunContext(db=db, platform=platform, config=RunnerConfig(runs_dir=tmp_path), emit=emit)
    await cancel_jobs(ctx, run)  # the run is cancelled before the watch resumed
    stored = {c.slot: c for c in await runs.candidates(db, run.id)}
    assert stored[BAD].state is CandidateState.PRUNED
    assert stored[BAD].note is not None and stored[BAD].note.startswith("pruned after epoch 1")
    assert platform.cancels[bad_job] == 1
    assert all(stored[Slot.candidate(n)].state is CandidateState.CANCELLED for n in (1, 2))


async def test_the_slot_a_prune_frees_starts_a_waiting_candidate_at_once(db: Database, tmp_path: Path) -> None:
    platform = EpochPlatform()
    run, requests = await _run(db, tmp_path, candidates=4)
    cands = {c.slot: c for c in await _watch(db, platform, run).run(requests, max_active=3)}
    bad, fourth, first = requests[BAD].job_id, requests[Slot.candidate(4)].job_id, requests[Slot.candidate(1)].job_id
    log = platform.log
    # The fourth candidate is created right after the cancel, while #1 is still training.
    assert log.index(("cancel", bad)) + 1 == log.index(("create", fourth)) < log.index(("complete", first))
    assert platform.max_active <= 3
    assert cands[BAD].state is CandidateState.PRUNED
    assert [cands[Slot.candidate(n)].state for n in (1, 2, 4)] == [CandidateState.COMPLETED] * 3


class RefusingTraining(EpochTraining):
    async def cancel(self, job_id: str) -> JobStatus:
        self.p.cancels[job_id] += 1
        raise PlatformError(f"job {job_id} cannot be cancelled in its state")


class RefusingPlatform(EpochPlatform):
    def __init__(self) -> None:
        super().__init__()
        self.training = RefusingTraining(self)


async def test_a_cancel_the_platform_refuses_is_tried_once_and_the_candidate_trains_on(db: Database, tmp_path: Path) -> None:
    platform = RefusingPlatform()
    run, requests = await _run(db, tmp_path)
    cands = {c.slot: c for c in await _watch(db, platform, run).run(requests, max_active=3)}
    assert cands[BAD].state is CandidateState.COMPLETED
    assert platform.cancels == Counter({requests[BAD].job_id: 1})
    assert await _audit(db, run, "candidate_pruned") == 1 and await _audit(db, run, "cancel_job_failed") == 1
