"""Where held-out answers and their scores are kept, and the held-out rows themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.domain.records import RunRecord
from pipeline.domain.slots import Slot
from pipeline.evaluation.strategy import held_out_rows
from pipeline.planning.plan_types import Plan
from pipeline.run.context import RunContext, workspace
from pipeline.run.steps import data


def eval_dir(run: RunRecord) -> Path:
    path = workspace(run) / "eval"
    path.mkdir(parents=True, exist_ok=True)
    return path


def detail_path(run: RunRecord, slot: Slot) -> Path:
    """Where a slot's outputs and per-example scores are kept (``eval/c2.json``, ``eval/final.json``)."""
    return eval_dir(run) / f"{slot}.json"


async def held_out(ctx: RunContext, run: RunRecord, plan: Plan) -> list[dict[str, Any]]:
    ws = workspace(run)
    if plan.eval_dataset:
        local = ws / data.EVAL_SOURCE
        await data.stage_file(ctx, plan.eval_dataset, local)
        return held_out_rows(local, plan.eval_examples)
    return held_out_rows(ws / "split" / "test.jsonl", plan.eval_examples)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
