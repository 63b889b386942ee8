"""Waiting on deployments the steps create, and the run's one production deployment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pipeline.domain import ids
from pipeline.domain.platform import DeploymentState, DeploymentStatus, NotFound, PlatformError
from pipeline.domain.poll import Pace, PollTimeout, poll_until
from pipeline.domain.provenance import Change, DeploymentRate, Ref, ResourceKind, ResourceState
from pipeline.domain.records import RunRecord
from pipeline.planning.cost import deployment_rate
from pipeline.run.context import RunContext
from pipeline.run.once import Create, create_once
from pipeline.store import runs


async def until_ready(ctx: RunContext, status: DeploymentStatus, *, what: str) -> DeploymentStatus:
    """Wait for a deployment to settle; anything but READY is an error naming its state.

    The model and model string stay those of ``status``: the ones asked for at create time.
    """
    try:
        settled = await poll_until(
            lambda: ctx.platform.serving.get(status.deployment_id),
            lambda s: s.state is not DeploymentState.CREATING,
            Pace(timeout=ctx.config.deploy_timeout_seconds, interval=ctx.config.poll_seconds),
            first=status,
            what=what,
        )
    except PollTimeout as exc:
        raise PlatformError(f"{exc}; it is still up") from None
    if settled.state is not DeploymentState.READY:
        raise PlatformError(f"{what} {settled.state.value}: {settled.message or 'no message'}")
    return settled.model_copy(update={"model": status.model, "model_string": status.model_string})


def deployment_ref(dep_id: str) -> Ref:
    return Ref(kind=ResourceKind.DEPLOYMENT, id=dep_id)


async def create_deployment(
    ctx: RunContext,
    run: RunRecord,
    dep_id: str,
    intent: Change,
    call: Callable[[], Awaitable[DeploymentStatus]],
) -> DeploymentStatus:
    """Every deployment a step creates, through ``create_once``: its id, what it is for and its
    rate recorded before the create call. One created before is asked again with the same id:
    the platform answers with the one it made (and learns which model it serves)."""
    create = Create(run_id=run.id, ref=deployment_ref(dep_id), call=call, intent=intent)
    return await create_once(ctx.db, ctx.checkpoint, create)


async def tear_down(ctx: RunContext, run: RunRecord, dep_id: str) -> ResourceState:
    """Delete a deployment the run created and record the state read back (or why it failed:
    then it is DELETE_FAILED, still up as far as anyone knows, and the error is kept beside it)."""
    error = None
    try:
        state = ResourceState.of((await ctx.platform.serving.delete(dep_id)).state)
    except NotFound:
        state = ResourceState.DELETED  # gone already: a hard delete reads back as 404
    except PlatformError as exc:
        state, error = ResourceState.DELETE_FAILED, str(exc)
    async with ctx.db.write() as tx:
        await ctx.db.move_resource(tx, run.id, deployment_ref(dep_id), state, Change(error=error))
    return state


async def production_rate(ctx: RunContext, run: RunRecord, base: str | None) -> DeploymentRate | None:
    """What the production deployment bills per hour: the shape matched for its base at plan
    time (the plan's dearest shape when the base is not known here)."""
    plan = await runs.get_plan(ctx.db, run.id, run.plan_version) if run.plan_version else None
    if plan is None:
        return None
    shape = plan.shapes.get(base) if base else None
    if shape is not None:
        return deployment_rate(shape)
    return DeploymentRate(usd_per_hour=plan.cost.deployment_usd_per_hour, priced_at=plan.cost.prices_as_of)


async def production(ctx: RunContext, run: RunRecord, model: str, *, base: str | None = None) -> DeploymentStatus:
    """The run's production deployment of ``model``, created once (id recorded first), READY.

    Evaluation scores the final model on it and the deploy step smoke-tests it: whichever
    comes first creates it, the other finds it.
    """
    dep_id = ids.deployment_id(run.id)
    intent = Change(rate=await production_rate(ctx, run, base), details={"model": model, "purpose": "production"})
    status = await create_deployment(ctx, run, dep_id, intent, lambda: ctx.platform.serving.create(dep_id, model))
    return await until_ready(ctx, status, what=f"deployment {dep_id}")
