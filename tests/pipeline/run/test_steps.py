"""Each step on its own: a small RunContext (a database, a platform, settings, an event list)
is all it needs — no runner, no surface."""

from __future__ import annotations

from pathlib import Path

from bot.testing.memory_platform import MemoryPlatform
from pipeline.domain.gates import Question, QuestionKind
from pipeline.domain.machine import Event
from pipeline.domain.records import Actor, NewRun, RunRecord
from pipeline.domain.spec import RunSpec
from pipeline.run.context import RunContext, RunnerConfig
from pipeline.run.events import QuestionAsked, RunEvent
from pipeline.run.steps.announce import ask
from pipeline.run.steps.inspect import inspect
from pipeline.store import runs
from pipeline.store.db import Database
from tests.paths import DATASETS


async def context(db: Database, tmp_path: Path) -> tuple[RunContext, list[RunEvent]]:
    seen: list[RunEvent] = []

    async def emit(event: RunEvent) -> None:
        seen.append(event)

    return RunContext(db=db, platform=MemoryPlatform(), config=RunnerConfig(runs_dir=tmp_path), emit=emit), seen


async def new_run(db: Database, tmp_path: Path, spec: RunSpec) -> RunRecord:
    async with db.write() as tx:
        return await runs.insert_run(
            tx, NewRun(requester=Actor(id="U1"), instruction="", spec=spec, platform="memory", workspace_root=str(tmp_path))
        )


async def test_inspect_plans_without_spending(db: Database, tmp_path: Path) -> None:
    ctx, _ = await context(db, tmp_path)
    run = await new_run(db, tmp_path, RunSpec(dataset=str(DATASETS / "text2sql_dataset.jsonl"), base_models=("qwen3-8b",)))
    outcome = await inspect(ctx, run)
    assert outcome.event is Event.PLANNED and outcome.changes["plan_version"] == 1
    plan = await runs.get_plan(db, run.id, 1)
    assert plan is not None and len(plan.candidates) == 3 and plan.samples == 100
    platform = ctx.platform
    assert isinstance(platform, MemoryPlatform) and not platform.uploaded and not platform.jobs  # nothing spent


async def test_inspect_asks_for_what_is_missing(db: Database, tmp_path: Path) -> None:
    ctx, _ = await context(db, tmp_path)
    run = await new_run(db, tmp_path, RunSpec(dataset=str(DATASETS / "text2sql_dataset.jsonl")))
    outcome = await inspect(ctx, run)
    question = outcome.changes["question"]
    assert outcome.event is Event.NEEDS_INPUT and question is not None and question.kind is QuestionKind.BASE_MODEL


async def test_ask_announces_the_open_question(db: Database, tmp_path: Path) -> None:
    ctx, seen = await context(db, tmp_path)
    run = await new_run(db, tmp_path, RunSpec())
    asking = run.model_copy(update={"question": Question(kind=QuestionKind.DATASET, text="Which dataset?")})
    await ask(ctx, asking)
    assert [type(e) for e in seen] == [QuestionAsked]
