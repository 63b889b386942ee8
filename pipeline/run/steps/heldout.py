"""The held-out rows a run scores on (where their answers are kept: ``pipeline.run.answers``)."""

from __future__ import annotations

from typing import Any

from pipeline.dataset.staging import EVAL_SOURCE, stage_file
from pipeline.domain.records import RunRecord
from pipeline.evaluation.strategy import held_out_rows
from pipeline.planning.plan_types import Plan
from pipeline.run.context import RunContext, workspace
from pipeline.run.steps.data import admit


async def held_out(ctx: RunContext, run: RunRecord, plan: Plan) -> list[dict[str, Any]]:
    ws = workspace(run)
    if plan.eval_dataset:
        local = ws / EVAL_SOURCE
        await stage_file(ctx.platform.datasets, ctx.config.files, plan.eval_dataset, local, admit=admit(ctx, run))
        return held_out_rows(local, plan.eval_examples)
    return held_out_rows(ws / "split" / "test.jsonl", plan.eval_examples)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
