"""Model outputs on the held-out split, for evaluators (greedy, bounded, batched).

A platform that can generate in-process (the local platform) is asked directly. Otherwise
(Fireworks) each model gets a short-lived deployment with a run-derived id, recorded before
its create call, torn down as soon as its outputs are in, and the teardown state read back
and recorded: nothing is left running by surprise.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from pipeline import ids
from pipeline.evaluation.scoring import strip_thinking
from pipeline.evaluation.strategy import prompt_of
from pipeline.platforms.base import ChatMessage, DeploymentState, PlatformError
from pipeline.store.records import CandidateRecord, RunRecord

if TYPE_CHECKING:
    from pipeline.runner import Runner

MAX_TOKENS = 512  # default cap; reasoning models think first, the answer is taken after </think>
CONCURRENCY = 4  # completions in flight per deployment: steady, not a burst


def _prompts(rows: list[dict[str, Any]]) -> list[list[ChatMessage]]:
    return [[ChatMessage(role=m["role"], content=m["content"]) for m in prompt_of(row)] for row in rows]


async def generate_outputs(r: Runner, run: RunRecord, cand: CandidateRecord, rows: list[dict[str, Any]]) -> list[str]:
    """The candidate's answers to the held-out prompts, with thinking blocks stripped."""
    prompts = _prompts(rows)
    model = cand.model or cand.job_id
    generate = getattr(r.platform, "generate", None)
    if callable(generate):
        texts: list[str] = await generate(model, prompts, max_tokens=r.config.eval_max_tokens)
    else:
        texts = await _via_deployment(r, run, cand, model, prompts, r.config.eval_max_tokens)
    return [strip_thinking(t) for t in texts]


async def _via_deployment(
    r: Runner, run: RunRecord, cand: CandidateRecord, model: str, prompts: list[list[ChatMessage]], max_tokens: int
) -> list[str]:
    dep_id = ids.eval_deployment_id(run.id, cand.idx)
    async with r.db.write() as tx:
        await r.db.record_resource(
            tx,
            kind="deployment",
            resource_id=dep_id,
            run_id=run.id,
            state="recorded",
            details={"model": model, "purpose": "evaluation"},
        )
    status = await r.platform.create_deployment(dep_id, model)
    try:
        deadline = time.monotonic() + r.config.deploy_timeout_seconds
        while status.state is DeploymentState.CREATING:
            if time.monotonic() > deadline:
                raise PlatformError(f"evaluation deployment {dep_id} was not ready in time")
            await asyncio.sleep(r.config.poll_seconds)
            status = await r.platform.get_deployment(dep_id)
        if status.state is not DeploymentState.READY:
            raise PlatformError(f"evaluation deployment {dep_id} {status.state.value}: {status.message or 'no message'}")
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(p: list[ChatMessage]) -> str:
            async with sem:
                return await r.platform.chat(status.model_string, p, max_tokens=max_tokens)

        return list(await asyncio.gather(*(one(p) for p in prompts)))
    finally:
        # Torn down whatever happened; the state read back goes into provenance and the report.
        try:
            gone = await r.platform.delete_deployment(dep_id)
            state = gone.state.value
        except PlatformError as exc:
            state = f"teardown failed: {exc}"
        async with r.db.write() as tx:
            await r.db.record_resource(tx, kind="deployment", resource_id=dep_id, run_id=run.id, state=state)
