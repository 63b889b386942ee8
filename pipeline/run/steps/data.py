"""The run's data on disk and on the platform: staged once, inspected once, converted, split
and uploaded under run-derived ids (every step that needs data goes through here)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from pipeline.dataset.access import check_origins, copy_checked, dataset_file
from pipeline.dataset.convert import convert_dataset
from pipeline.dataset.inspection import InspectionReport, read_report, report_json
from pipeline.dataset.inspector import inspect_dataset
from pipeline.dataset.split import SplitResult, split_dataset
from pipeline.domain import ids
from pipeline.domain.fsio import atomic_output, write_atomic
from pipeline.domain.platform import DatasetInfo
from pipeline.domain.provenance import Change, Ref, ResourceKind, ResourceState
from pipeline.domain.records import Resource, RunRecord
from pipeline.planning.plan_types import Plan
from pipeline.run.context import RunContext, workspace
from pipeline.run.once import Create, create_once
from pipeline.store import uploads

SOURCE = "source.jsonl"
EVAL_SOURCE = "eval_source.jsonl"
BOM = b"\xef\xbb\xbf"
INSPECTION = "inspection.json"


async def stage_file(ctx: RunContext, ref: str, dest: Path, *, channel: str | None) -> Path:
    """A user-named dataset as a local file, fetched once per run (cached in the workspace).

    A local file is checked against what this bot may read (``pipeline.dataset.access``) and copied
    from the descriptor it checked; anything else is the platform's dataset. Either must have
    been given where the run is (``channel``): checked here, where the data is read.
    """
    if dest.exists():
        return dest
    await check_origins([ref], channel=channel, files=ctx.config.files, origin=lambda r: uploads.origin(ctx.db, r))
    await uploads.used(ctx.db, [ref])
    local = dataset_file(ref, ctx.config.files)
    if local is not None:
        await asyncio.to_thread(copy_checked, local, dest, ctx.config.files)
    else:
        await ctx.platform.check_dataset(ref)
        await ctx.platform.stage_dataset(ref, dest)
    await asyncio.to_thread(drop_bom, dest)
    return dest


def drop_bom(path: Path) -> None:
    """A UTF-8 byte-order mark at the start (Windows editors write one) is not data: remove it
    from the staged copy, so conversion, splitting and training never meet it."""
    with path.open("rb") as f:
        if f.read(3) != BOM:
            return
        with atomic_output(path) as tmp, tmp.open("wb") as out:
            shutil.copyfileobj(f, out, length=1 << 20)


async def inspection(ws: Path, source: str = SOURCE) -> InspectionReport:
    """The inspection of a staged file (computed once, cached beside it)."""
    cached = ws / (INSPECTION if source == SOURCE else f"{Path(source).stem}.inspection.json")
    if cached.exists():
        return read_report(cached.read_bytes())
    report = await asyncio.to_thread(inspect_dataset, ws / source)
    write_atomic(cached, report_json(report))
    return report


async def training_data(ws: Path, report: InspectionReport, convert: bool | None) -> Path:
    """The file training uses: the source, or its conversion (written once, never in place)."""
    source = ws / SOURCE
    if not report.conversions or convert is False:
        return source
    data = ws / "converted.jsonl"
    if not data.exists():
        await asyncio.to_thread(convert_dataset, source, data)
    return data


async def split(run: RunRecord, plan: Plan) -> SplitResult:
    """Train, held-out and HP-tuning splits of the run's data (computed once)."""
    ws = workspace(run)
    data = await training_data(ws, await inspection(ws), run.spec.convert)
    marker = ws / "split" / "split.json"
    if not marker.exists():
        carve: dict[str, Any] = {} if plan.eval_dataset is None else {"test_fraction": 0.0, "min_test": 0}
        result = await asyncio.to_thread(split_dataset, data, out_dir=ws / "split", hp_samples=plan.hp_samples, **carve)
        write_atomic(marker, result.model_dump_json())
    return SplitResult.model_validate(json.loads(marker.read_text(encoding="utf-8")))


async def upload_once(ctx: RunContext, run: RunRecord, dataset_id: str, path: Path, *, examples: int) -> DatasetInfo:
    """A dataset of the run on the platform, uploaded once (its id recorded before the upload)."""

    async def found(known: Resource) -> DatasetInfo:
        return DatasetInfo(id=dataset_id, name=known.name, ready=True)

    create = Create(
        run_id=run.id,
        ref=Ref(kind=ResourceKind.DATASET, id=dataset_id),
        call=lambda: ctx.platform.upload_dataset(dataset_id, path, examples=examples),
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
            names["eval"] = (await ctx.platform.check_dataset(plan.eval_dataset)).name
        else:  # the staged, inspected copy (inspect.py), not the file as it may be now
            staged = await stage_file(ctx, plan.eval_dataset, workspace(run) / EVAL_SOURCE, channel=run.channel)
            names["eval"] = (await upload_once(ctx, run, ids.dataset_id(run.id, "eval"), staged, examples=0)).name
    else:
        names["eval"] = names.get("test", "")
    return names
