"""Model outputs on the held-out split, for evaluators (greedy, bounded, batched).

A platform that generates in-process (the local one) is asked directly. Otherwise
(Fireworks) each model gets a short-lived deployment with a run-derived id, recorded before
its create call, torn down as soon as its outputs are in, and the teardown state read back
and recorded: nothing is left running by surprise.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline import ids
from pipeline.evaluation.scoring import strip_thinking
from pipeline.evaluation.strategy import prompt_of
from pipeline.platforms.base import ChatMessage, PlatformError
from pipeline.run.context import RunContext
from pipeline.run.steps.serving import until_ready
from pipeline.store.records import CandidateRecord, RunRecord

CONCURRENCY = 4  # completions in flight per deployment: steady, not a burst


def prompts_of(rows: list[dict[str, Any]]) -> list[list[ChatMessage]]:
    return [[ChatMessage(role=m["role"], content=m["content"]) for m in prompt_of(row)] for row in rows]


async def generate_outputs(ctx: RunContext, run: RunRecord, cand: CandidateRecord, rows: list[dict[str, Any]]) -> list[str]:
    """The candidate's answers to the held-out prompts, with thinking blocks stripped."""
    prompts = prompts_of(rows)
    model = cand.model or cand.job_id
    if ctx.platform.capabilities.generates_in_process:
        texts = await ctx.platform.generate(model, prompts, max_tokens=ctx.config.eval_max_tokens)
    else:
        texts = await _via_deployment(ctx, run, cand, model, prompts)
    return [strip_thinking(t) for t in texts]


async def _via_deployment(
    ctx: RunContext, run: RunRecord, cand: CandidateRecord, model: str, prompts: list[list[ChatMessage]]
) -> list[str]:
    dep_id = ids.eval_deployment_id(run.id, cand.slot)
    async with ctx.db.write() as tx:
        await ctx.db.record_resource(
            tx,
            kind="deployment",
            resource_id=dep_id,
            run_id=run.id,
            state="recorded",
            details={"model": model, "purpose": "evaluation"},
        )
    status = await ctx.platform.create_deployment(dep_id, model)
    try:
        status = await until_ready(ctx, status, what=f"evaluation deployment {dep_id}")
        sem = asyncio.Semaphore(CONCURRENCY)
        model_string = status.model_string

        async def one(p: list[ChatMessage]) -> str:
            async with sem:
                return await ctx.platform.chat(model_string, p, max_tokens=ctx.config.eval_max_tokens)

        return list(await asyncio.gather(*(one(p) for p in prompts)))
    finally:
        # Torn down whatever happened; the state read back goes into provenance and the report.
        try:
            state = (await ctx.platform.delete_deployment(dep_id)).state.value
        except PlatformError as exc:
            state = f"teardown failed: {exc}"
        async with ctx.db.write() as tx:
            await ctx.db.record_resource(tx, kind="deployment", resource_id=dep_id, run_id=run.id, state=state)
