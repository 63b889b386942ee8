"""The run's data on the platform: split once and uploaded under run-derived ids (staging and
inspecting it is pipeline/dataset/staging.py, shared with the planner)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

from pipeline.dataset.access import check_origins, dataset_file
from pipeline.dataset.split import SplitResult, SplitRule, split_dataset
from pipeline.dataset.staging import EVAL_SOURCE, Admit, inspection, stage_file, training_data
from pipeline.domain import ids
from pipeline.domain.fsio import write_atomic
from pipeline.domain.platform import DatasetInfo
from pipeline.domain.provenance import Change, Ref, ResourceKind, ResourceState
from pipeline.domain.records import Resource, RunRecord
from pipeline.planning.plan_types import Plan
from pipeline.run.context import RunContext, workspace
from pipeline.run.once import Create, create_once
from pipeline.store import uploads


async def split(run: RunRecord, plan: Plan) -> SplitResult:
    """Train, held-out and HP-tuning splits of the run's data (computed once)."""
    ws = workspace(run)
    data = await training_data(ws, await inspection(ws), run.spec.convert)
    marker = ws / "split" / "split.json"
    if not marker.exists():
        rule = SplitRule(hp_samples=plan.hp_samples)
        if plan.eval_dataset is not None:  # a named eval dataset replaces the held-out carve-out
            rule = replace(rule, test_fraction=0.0, min_test=0)
        result = await asyncio.to_thread(split_dataset, data, out_dir=ws / "split", rule=rule)
        write_atomic(marker, result.model_dump_json())
    return SplitResult.model_validate(json.loads(marker.read_text(encoding="utf-8")))


def admit(ctx: RunContext, run: RunRecord) -> Admit:
    """Whether the run may read a dataset a person named: it must have been given where the run
    is (its channel), checked where the data is read; a named upload's retention starts again."""

    async def check(ref: str) -> None:
        await check_origins([ref], channel=run.channel, files=ctx.config.files, origin=lambda r: uploads.origin(ctx.db, r))
        await uploads.used(ctx.db, [ref])

    return check


async def upload_once(ctx: RunContext, run: RunRecord, dataset_id: str, path: Path, *, examples: int) -> DatasetInfo:
    """A dataset of the run on the platform, uploaded once (its id recorded before the upload)."""

    async def found(known: Resource) -> DatasetInfo:
        return DatasetInfo(id=dataset_id, name=known.name, ready=True)

    create = Create(
        run_id=run.id,
        ref=Ref(kind=ResourceKind.DATASET, id=dataset_id),
        call=lambda: ctx.platform.datasets.upload(dataset_id, path, examples=examples),
        then=ResourceState.READY,  # the upload returns once the platform says READY
        answer=lambda info: Change(name=info.name),
        found=found,
    )
    return await create_once(ctx.db, ctx.checkpoint, create)


async def upload(ctx: RunContext, run: RunRecord, plan: Plan) -> dict[str, str]:
    """The run's datasets on the platform by role (train, hp, test, eval), uploaded once each.

    Each id is derived from the run and recorded before its create call; the final run
    reuses the sweep's uploads.
    """
    parts = await split(run, plan)
    files = {"train": parts.train_path, "hp": parts.hp_train_path if parts.hp_subsampled else None, "test": parts.test_path}
    counts = {"train": parts.train, "hp": parts.hp_train if parts.hp_subsampled else 0, "test": parts.test}
    names: dict[str, str] = {}
    for role, path in files.items():
        if path and counts[role]:
            names[role] = (await upload_once(ctx, run, ids.dataset_id(run.id, role), Path(path), examples=counts[role])).name
    if plan.eval_dataset:
        if dataset_file(plan.eval_dataset, ctx.config.files) is None:
            names["eval"] = (await ctx.platform.datasets.check(plan.eval_dataset)).name
        else:  # the staged, inspected copy (inspect.py), not the file as it may be now
            dest = workspace(run) / EVAL_SOURCE
            staged = await stage_file(ctx.platform.datasets, ctx.config.files, plan.eval_dataset, dest, admit=admit(ctx, run))
            names["eval"] = (await upload_once(ctx, run, ids.dataset_id(run.id, "eval"), staged, examples=0)).name
    else:
        names["eval"] = names.get("test", "")
    return names
