"""A run held mid-sweep, shared by the engine's and the store's tests."""

from __future__ import annotations

from bot.testing.runs import EventLog
from pipeline.domain.records import Actor, RunRecord
from pipeline.run.decisions import Approve
from pipeline.run.events import PlanProposed, ScoreboardChanged
from pipeline.run.runner import Runner
from tests.paths import DATASETS


async def mid_sweep(runner: Runner, log: EventLog, *, by: Actor, approver: Actor) -> RunRecord:
    """A text2sql run started by ``by``, approved by ``approver`` and training: the run as started.
    (Give the runner a platform that holds its jobs to keep it there.)"""
    run = await runner.start(f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b", by)
    await log.wait_kind(PlanProposed, run.id)
    await runner.decide(run.id, Approve(plan_version=1), approver)
    await log.wait_kind(ScoreboardChanged, run.id)
    return run
