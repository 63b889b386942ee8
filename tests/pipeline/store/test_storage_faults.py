"""Storage faults lose nothing: a write lock held by another process, a full disk, a command
asked while the database is busy. The runs' jobs keep running and the runs go on."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import pytest

from bot.testing.memory_platform import MemoryPlatform
from pipeline.domain.machine import Phase
from pipeline.domain.records import Actor
from pipeline.domain.slots import Slot
from pipeline.run.decisions import Promote
from pipeline.run.events import PlanProposed, PromotionRequested, ReportReady, RunFailed, StoragePaused
from pipeline.store.db import Database
from tests.paths import DATASETS
from tests.pipeline.run_support import mid_sweep
from tests.pipeline.store.store_support import hold_write_lock

ALICE = Actor(id="U_ALICE", name="alice")
TEXT2SQL = DATASETS / "text2sql_dataset.jsonl"


async def test_a_13_second_external_write_lock_during_a_sweep_loses_nothing(make_runner, tmp_path: Path) -> None:
    platform = MemoryPlatform()
    platform.hold = True
    runner, log = await make_runner(platform)
    run = await mid_sweep(runner, log, by=ALICE, approver=ALICE)
    held = threading.Event()
    locker = threading.Thread(target=hold_write_lock, args=(tmp_path / "test.sqlite3", 13.0, held))
    locker.start()
    await asyncio.to_thread(held.wait)
    platform.hold = False  # the jobs finish while nothing can be written
    gate = await log.wait_kind(PromotionRequested, run.id, timeout=60)
    await asyncio.to_thread(locker.join)
    assert not platform.cancelled and all(c.state.value == "completed" for c in gate.ranked)
    assert not [e for e in log.events if isinstance(e, RunFailed)]
    await runner.decide(run.id, Promote(Slot.candidate(1)), ALICE)
    await log.wait_kind(ReportReady, run.id)
    await runner.wait(run.id)
    assert (await runner.get(run.id)).phase is Phase.SUCCEEDED


async def test_a_write_that_cannot_wait_says_busy_and_changes_nothing(db: Database, tmp_path: Path) -> None:
    held = threading.Event()
    locker = threading.Thread(target=hold_write_lock, args=(tmp_path / "test.sqlite3", 7.0, held))
    locker.start()
    await asyncio.to_thread(held.wait)
    from pipeline.store.db import StorageBusy

    with pytest.raises(StorageBusy):
        await db.mark_processed("cmd:1")
    await asyncio.to_thread(locker.join)
    assert await db.mark_processed("cmd:1")  # it was not recorded: the retry is not a duplicate


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 16 KB filesystem for the runs' workspaces (a tmpfs; needs root, as CI runs)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(runs)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode().strip()}")
    try:
        yield runs
    finally:
        subprocess.run(["umount", "-l", str(runs)], check=False)


async def test_a_full_disk_pauses_the_run_with_one_message_and_it_goes_on_when_space_returns(
    make_runner, small_disk: Path
) -> None:
    platform = MemoryPlatform()
    runner, log = await make_runner(platform, storage_retry_seconds=0.05, storage_free_bytes=1 << 20)
    run = await runner.start(f"dataset={TEXT2SQL} model=qwen3-8b", ALICE)  # 50 KB of data into a 16 KB disk
    paused = await log.wait_kind(StoragePaused, run.id)
    assert "full" in paused.reason and (await runner.get(run.id)).phase is Phase.INSPECTING
    await asyncio.to_thread(subprocess.run, ["mount", "-o", "remount,size=8m", str(small_disk)], check=True)  # space is freed
    await log.wait_kind(PlanProposed, run.id)
    assert sum(isinstance(e, StoragePaused) for e in log.events) == 1  # one message, not one per retry
    assert not [e for e in log.events if isinstance(e, RunFailed)]
