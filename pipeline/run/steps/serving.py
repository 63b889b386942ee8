"""Waiting on deployments the steps create, and the run's one production deployment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pipeline.domain import ids
from pipeline.domain.platform import DeploymentState, DeploymentStatus, PlatformError
from pipeline.domain.poll import PollTimeout, poll_until
from pipeline.domain.records import RunRecord
from pipeline.planning.cost import usd_per_hour
from pipeline.run.context import RunContext
from pipeline.store import runs


async def until_ready(ctx: RunContext, status: DeploymentStatus, *, what: str) -> DeploymentStatus:
    """Wait for a deployment to settle; anything but READY is an error naming its state.

    The model and model string stay those of ``status``: the ones asked for at create time.
    """
    try:
        settled = await poll_until(
            lambda: ctx.platform.get_deployment(status.deployment_id),
            lambda s: s.state is not DeploymentState.CREATING,
            first=status,
            timeout=ctx.config.deploy_timeout_seconds,
            interval=ctx.config.poll_seconds,
            what=what,
        )
    except PollTimeout as exc:
        raise PlatformError(f"{exc}; it is still up") from None
    if settled.state is not DeploymentState.READY:
        raise PlatformError(f"{what} {settled.state.value}: {settled.message or 'no message'}")
    return settled.model_copy(update={"model": status.model, "model_string": status.model_string})


async def create_recorded(
    ctx: RunContext,
    run: RunRecord,
    dep_id: str,
    details: dict[str, Any],
    create: Callable[[], Awaitable[DeploymentStatus]],
) -> DeploymentStatus:
    """Every deployment a step creates: its id (and what it is for) recorded before the create
    call, "created" after it, with the checkpoints a crash test stops the process at. A resumed
    step asks again with the same id and the platform answers with the one it made."""
    async with ctx.db.write() as tx:
        await ctx.db.record_resource(tx, kind="deployment", resource_id=dep_id, run_id=run.id, state="recorded", details=details)
    await ctx.checkpoint(f"deployment:{dep_id}:recorded")
    status = await create()
    async with ctx.db.write() as tx:
        await ctx.db.record_resource(tx, kind="deployment", resource_id=dep_id, run_id=run.id, state="created")
    await ctx.checkpoint(f"deployment:{dep_id}:created")
    return status


async def tear_down(ctx: RunContext, run: RunRecord, dep_id: str) -> str:
    """Delete a deployment the run created and record the state read back (or why it failed)."""
    try:
        state = (await ctx.platform.delete_deployment(dep_id)).state.value
    except PlatformError as exc:
        state = f"teardown failed: {exc}"
    async with ctx.db.write() as tx:
        await ctx.db.record_resource(tx, kind="deployment", resource_id=dep_id, run_id=run.id, state=state)
    return state


async def production_rate(ctx: RunContext, run: RunRecord, base: str | None) -> float | None:
    """What the production deployment bills per hour: the shape matched for its base at plan
    time (the plan's dearest shape when the base is not known here)."""
    plan = await runs.get_plan(ctx.db, run.id, run.plan_version) if run.plan_version else None
    if plan is None:
        return None
    shape = plan.shapes.get(base) if base else None
    return usd_per_hour(shape) if shape is not None else plan.cost.deployment_usd_per_hour


async def production(ctx: RunContext, run: RunRecord, model: str, *, base: str | None = None) -> DeploymentStatus:
    """The run's production deployment of ``model``, created once (id recorded first), READY.

    Evaluation scores the final model on it and the deploy step smoke-tests it: whichever
    comes first creates it, the other finds it.
    """
    dep_id = ids.deployment_id(run.id)
    known = {r.resource_id: r for r in await ctx.db.resources(run.id) if r.kind == "deployment"}
    if dep_id not in known or known[dep_id].state == "recorded":
        details = {"model": model, "usd_per_hour": await production_rate(ctx, run, base)}
        status = await create_recorded(ctx, run, dep_id, details, lambda: ctx.platform.create_deployment(dep_id, model))
    else:
        # Created before (by evaluation, or before a restart): asking again reads it back, and
        # tells the platform which model it serves (its model string is built from that).
        status = await ctx.platform.create_deployment(dep_id, model)
    return await until_ready(ctx, status, what=f"deployment {dep_id}")
