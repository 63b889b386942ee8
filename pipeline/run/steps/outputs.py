"""Model outputs on the held-out split, for evaluators (greedy, bounded, batched).

Where each model answers from:
- a platform that generates in-process (the local one) is asked directly;
- sweep candidates share one deployment per base model with LoRA addons enabled, each loaded
  onto it (Fireworks recommends multi-LoRA "for experiments / many variants"; up to 100
  adapters per deployment), routed ``<model>#<deployment>``; torn down once every candidate
  of the run is scored (``release_shared``);
- the final model answers from the production deployment it ships on (no throw-away one);
- otherwise (no addon shape for the base, or nothing to deploy) a short-lived live-merge
  deployment, torn down as soon as its outputs are in.
Every id is derived from the run and recorded before its create (or load) call; teardown
states are read back and recorded: nothing is left running by surprise.

One bad example does not fail the model: a refused request is that example's error (scored
0, kept). A deployment that never starts serving does fail it, after the warm-up window.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pipeline.domain import ids
from pipeline.domain.platform import Adapters, ChatMessage, DeploymentStatus, PlatformError
from pipeline.domain.provenance import Change, Ref, ResourceKind, ResourceState
from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.evaluation.prompts import prompt_messages, reasoning_effort, tools_of
from pipeline.evaluation.scores import strip_thinking
from pipeline.planning.cost import deployment_rate
from pipeline.planning.plan_types import Plan
from pipeline.run.context import RunContext
from pipeline.run.once import Create, create_once
from pipeline.run.steps.serving import create_deployment, deployment_ref, production, tear_down, until_ready
from pipeline.store import runs

CONCURRENCY = 4  # completions in flight per dedicated deployment: steady, not a burst
SHARED_CONCURRENCY = 8  # a multi-LoRA deployment serves every candidate: it can take more


@dataclass
class Answers:
    """One answer per held-out row: its text, or None with the error kept in ``errors``."""

    texts: list[str | None]
    errors: dict[int, str] = field(default_factory=dict)


def prompts_of(rows: list[dict[str, Any]]) -> list[list[ChatMessage]]:
    return [prompt_messages(row) for row in rows]


async def generate_outputs(
    ctx: RunContext, run: RunRecord, plan: Plan, cand: CandidateRecord, rows: list[dict[str, Any]]
) -> Answers:
    """The model's answers to the held-out prompts, with thinking blocks stripped."""
    prompts = prompts_of(rows)
    model = cand.model or cand.job_id
    if ctx.platform.facts.capabilities.generates_in_process:
        texts = await ctx.platform.inference.generate(model, prompts, max_tokens=ctx.config.eval_max_tokens)
        return Answers(texts=[strip_thinking(t) for t in texts])
    if cand.slot.is_final and plan.deploy:
        status = await production(ctx, run, model)
        return await _ask_all(ctx, status.model_string, rows, cand.base_model, CONCURRENCY)
    shareable = cand.base_model not in ctx.config.live_merge_bases  # sftbot doctor saw its addons refused
    if not cand.slot.is_final and shareable and (adapters := ctx.platform.adapters) is not None:
        string = await _shared_or_none(ctx, adapters, run, plan, cand, model)
        if string is not None:
            return await _ask_all(ctx, string, rows, cand.base_model, SHARED_CONCURRENCY)
    return await _via_live_merge(ctx, run, cand, model, rows)


async def _shared_or_none(
    ctx: RunContext, adapters: Adapters, run: RunRecord, plan: Plan, cand: CandidateRecord, model: str
) -> str | None:
    """The candidate's model string on the shared addon deployment; None to evaluate it by live merge
    instead, when there is no addon shape, or the addon deployment or the adapter's load failed
    for good (field reports: addon deployments refused or FAILED on some bases). The fallback is
    audited and said on the scoreboard; the plan priced the shared deployment, and the short-lived
    live-merge deployments are counted by the ledger as they run."""
    try:
        return await _on_shared(ctx, adapters, run, plan, cand, model)
    except PlatformError as exc:
        if exc.retryable:
            raise
        note = f"evaluated by live merge: the multi-LoRA evaluation deployment failed ({clip_reason(str(exc))})"
        async with ctx.db.write() as tx:
            await runs.set_note(tx, run.id, cand.slot, note)
            await tx.audit(
                run_id=run.id, actor="sftbot", action="addon_fallback", details={"slot": str(cand.slot), "reason": str(exc)}
            )
        return None


def clip_reason(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def base_number(plan: Plan, base_model: str) -> int:
    """The base's place in the plan (1-based): names its evaluation deployments."""
    return plan.spec.base_models.index(base_model) + 1 if base_model in plan.spec.base_models else 1


async def base_outputs(ctx: RunContext, run: RunRecord, plan: Plan, base_model: str, rows: list[dict[str, Any]]) -> Answers:
    """The base model's own answers to the held-out prompts, from where they cost least: in
    process; on the candidates' shared multi-LoRA deployment (it serves its base under the
    deployment's own model string, no extra hours); else one short-lived deployment of the base."""
    if ctx.platform.facts.capabilities.generates_in_process:
        texts = await ctx.platform.inference.generate(base_model, prompts_of(rows), max_tokens=ctx.config.eval_max_tokens)
        return Answers(texts=[strip_thinking(t) for t in texts])
    number = base_number(plan, base_model)
    shared = ids.shared_eval_deployment_id(run.id, number)
    known = await ctx.db.resource(deployment_ref(shared))
    if known is not None and known.state is ResourceState.CREATED:
        status = await until_ready(ctx, await ctx.platform.serving.get(shared), what=f"evaluation deployment {shared}")
        return await _ask_all(ctx, status.model_string, rows, base_model, SHARED_CONCURRENCY)
    info = await ctx.platform.models.model_info(base_model)  # a deployment needs the platform's own name for it
    name = info.name if info is not None and info.name else base_model
    return await _short_lived(ctx, run, ids.base_eval_deployment_id(run.id, number), name, rows, base_model)


async def _ask_all(ctx: RunContext, model_string: str, rows: list[dict[str, Any]], base: str, concurrency: int) -> Answers:
    """Every prompt once; the first alone, so a cold deployment is waited for by one request."""
    effort = reasoning_effort(base, rows)
    sem = asyncio.Semaphore(concurrency)
    answers = Answers(texts=[None] * len(rows))

    async def one(i: int) -> None:
        async with sem:
            try:
                text = await ctx.platform.inference.chat(
                    model_string,
                    prompt_messages(rows[i]),
                    max_tokens=ctx.config.eval_max_tokens,
                    tools=tools_of(rows[i]),
                    reasoning_effort=effort,
                )
            except PlatformError as exc:
                if i == 0 and exc.retryable:
                    raise  # not this example's fault: the deployment is not serving
                answers.errors[i] = str(exc)
                return
            answers.texts[i] = strip_thinking(text)

    if rows:
        await one(0)
        await asyncio.gather(*(one(i) for i in range(1, len(rows))))
    return answers


async def _on_shared(
    ctx: RunContext, adapters: Adapters, run: RunRecord, plan: Plan, cand: CandidateRecord, model: str
) -> str | None:
    """The model string of ``cand`` loaded onto its base's shared deployment; None: no addon shape."""
    dep_id = ids.shared_eval_deployment_id(run.id, base_number(plan, cand.base_model))
    status = await _shared_deployment(ctx, adapters, run, dep_id, cand.base_model)
    if status is None:
        return None  # no multi-LoRA shape for this base on the account: live merge instead
    await until_ready(ctx, status, what=f"evaluation deployment {dep_id}")
    load = Ref(kind=ResourceKind.ADAPTER, id=ids.adapter_id(run.id, cand.slot))
    create = Create(
        run_id=run.id,
        ref=load,
        # Fireworks names a load itself: the platform looks the (model, deployment) pair up first.
        call=lambda: adapters.load(model, dep_id, label=load.id),
        then=ResourceState.LOADING,
        intent=Change(details={"model": model, "deployment": dep_id}),
        answer=lambda loaded: Change(name=loaded.name),
    )
    loaded = await create_once(ctx.db, ctx.checkpoint, create)
    string = loaded.model_string if loaded.ready else await _until_loaded(ctx, adapters, model, dep_id)
    async with ctx.db.write() as tx:
        await ctx.db.move_resource(tx, run.id, load, ResourceState.READY)
    return string


async def _shared_deployment(
    ctx: RunContext, adapters: Adapters, run: RunRecord, dep_id: str, base: str
) -> DeploymentStatus | None:
    """The base's multi-LoRA evaluation deployment, created once; None when no addon shape fits it."""
    known = await ctx.db.resource(deployment_ref(dep_id))
    if known is not None and known.state is not ResourceState.RECORDED:
        return await ctx.platform.serving.get(dep_id)
    shape = await ctx.platform.serving.shape(base, addons=True)
    if shape is None:
        return None
    create = adapters.create_shared
    # The run's ledger counts it while it is up, at its shape's rate.
    intent = Change(
        rate=deployment_rate(shape), details={"base": base, "purpose": "evaluation", "addons": True, "shape": shape.name}
    )
    return await create_deployment(ctx, run, dep_id, intent, lambda: create(dep_id, base, shape=shape.name))


async def _until_loaded(ctx: RunContext, adapters: Adapters, model: str, dep_id: str) -> str:
    """Poll the load until it is DEPLOYED ("approximately 10-11 minutes", field notes §7)."""
    waited = 0.0
    delay = ctx.config.poll_seconds
    while True:
        found = await adapters.find(model, dep_id)
        if found is None:
            raise PlatformError(f"the load of {model} onto {dep_id} disappeared before it was ready")
        if found.ready:
            return found.model_string
        if waited >= ctx.config.deploy_timeout_seconds:
            raise PlatformError(f"{model} was still loading onto {dep_id} after {waited / 60:.0f} minutes")
        await asyncio.sleep(delay)
        waited += delay
        delay = min(delay * 1.5, ctx.config.poll_seconds * 4)


async def release_shared(ctx: RunContext, run: RunRecord) -> None:
    """Tear the shared evaluation deployments down (their adapters go with them)."""
    for res in await ctx.db.resources(run.id):
        if res.kind is not ResourceKind.DEPLOYMENT or not res.details.get("addons"):
            continue
        if res.state not in (ResourceState.DELETED, ResourceState.RECORDED):
            await tear_down(ctx, run, res.resource_id)


async def _via_live_merge(
    ctx: RunContext, run: RunRecord, cand: CandidateRecord, model: str, rows: list[dict[str, Any]]
) -> Answers:
    return await _short_lived(ctx, run, ids.eval_deployment_id(run.id, cand.slot), model, rows, cand.base_model)


async def _short_lived(
    ctx: RunContext, run: RunRecord, dep_id: str, model: str, rows: list[dict[str, Any]], base: str
) -> Answers:
    """``model`` on its own deployment (id recorded before the create), torn down once its answers are in."""
    intent = Change(details={"model": model, "purpose": "evaluation"})
    status = await create_deployment(ctx, run, dep_id, intent, lambda: ctx.platform.serving.create(dep_id, model))
    try:
        status = await until_ready(ctx, status, what=f"evaluation deployment {dep_id}")
        return await _ask_all(ctx, status.model_string, rows, base, CONCURRENCY)
    finally:
        await tear_down(ctx, run, dep_id)  # whatever happened; the state read back goes into provenance
