"""Waiting on deployments the steps create (the production one and the evaluation ones)."""

from __future__ import annotations

from pipeline.platforms.base import DeploymentState, DeploymentStatus, PlatformError
from pipeline.poll import PollTimeout, poll_until
from pipeline.run.context import RunContext


async def until_ready(ctx: RunContext, status: DeploymentStatus, *, what: str) -> DeploymentStatus:
    """Wait for a deployment to settle; anything but READY is an error naming its state."""
    try:
        status = await poll_until(
            lambda: ctx.platform.get_deployment(status.deployment_id),
            lambda s: s.state is not DeploymentState.CREATING,
            first=status,
            timeout=ctx.config.deploy_timeout_seconds,
            interval=ctx.config.poll_seconds,
            what=what,
        )
    except PollTimeout as exc:
        raise PlatformError(f"{exc}; it is still up") from None
    if status.state is not DeploymentState.READY:
        raise PlatformError(f"{what} {status.state.value}: {status.message or 'no message'}")
    return status
