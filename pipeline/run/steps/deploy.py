"""Phase 7a: deploy the shipped model (live merge), wait for READY, then one real completion."""

from __future__ import annotations

from pipeline import ids
from pipeline.platforms.base import ChatMessage
from pipeline.run.context import Outcome, RunContext
from pipeline.run.events import Deployed
from pipeline.run.machine import Event
from pipeline.run.steps.final import shipped
from pipeline.run.steps.serving import until_ready
from pipeline.store.records import RunRecord


async def deploy(ctx: RunContext, run: RunRecord) -> Outcome:
    """Create the run's one production deployment (id recorded first), wait, smoke-test it."""
    model = await shipped(ctx, run)
    name = model.model or model.job_id
    dep_id = ids.deployment_id(run.id)
    async with ctx.db.write() as tx:
        await ctx.db.record_resource(
            tx, kind="deployment", resource_id=dep_id, run_id=run.id, state="recorded", details={"model": name}
        )
    await ctx.checkpoint(f"deployment:{dep_id}:recorded")
    status = await ctx.platform.create_deployment(dep_id, name)
    await ctx.checkpoint(f"deployment:{dep_id}:created")
    status = await until_ready(ctx, status, what=f"deployment {dep_id}")
    # READY is not proof of serving (reference/fireworks.md §7.3): send one real completion.
    reply = await ctx.platform.chat(status.model_string, [ChatMessage(role="user", content="Say OK.")], max_tokens=16)
    details = {**status.model_dump(mode="json"), "smoke_test": reply[:200]}
    snippet = ctx.platform.snippet(status)
    async with ctx.db.write() as tx:
        await ctx.db.record_resource(
            tx, kind="deployment", resource_id=dep_id, run_id=run.id, name=status.model_string, state="ready", details=details
        )
    await ctx.emit(Deployed(run=await ctx.reload(run), deployment=status, snippet=snippet.code))
    return Outcome(Event.DEPLOYED)
