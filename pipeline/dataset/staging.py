"""A dataset a person named, as a local file: staged once, inspected once, converted once.

Shared by the planner (which stages and inspects before there is a plan) and the run's steps.
A local file is checked against what this bot may read (``access``) and copied from the
descriptor it checked; anything else is the platform's dataset, brought down through its
``datasets`` role.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

from pipeline.dataset.access import LocalFiles, copy_checked, dataset_file
from pipeline.dataset.convert import convert_dataset
from pipeline.dataset.inspection import InspectionReport, read_report, report_json
from pipeline.dataset.inspector import inspect_dataset
from pipeline.domain.fsio import atomic_output, write_atomic
from pipeline.domain.platform import Datasets, PlatformError

Admit = Callable[[str], Awaitable[None]]  # refuses (FileRefused) a dataset reference this run may not read

SOURCE = "source.jsonl"
EVAL_SOURCE = "eval_source.jsonl"
BOM = b"\xef\xbb\xbf"
INSPECTION = "inspection.json"


async def stage_file(datasets: Datasets | None, files: LocalFiles, ref: str, dest: Path, *, admit: Admit | None = None) -> Path:
    """A user-named dataset as a local file, fetched once (cached at ``dest``); ``datasets`` None:
    only local files can be staged (no platform to ask). ``admit`` checks, before anything is
    read, that the run may use it (a Slack run: only data given where the run is)."""
    if dest.exists():
        return dest
    if admit is not None:
        await admit(ref)
    local = dataset_file(ref, files)
    if local is not None:
        await asyncio.to_thread(copy_checked, local, dest, files)
    elif datasets is None:
        raise PlatformError(f"dataset {ref} is on the platform, and no platform was given to fetch it from")
    else:
        await datasets.check(ref)
        await datasets.stage(ref, dest)
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
