"""Phase 7a: deploy the shipped model (live merge), wait for READY, then one real completion.

A deployment that is READY but cannot answer is torn down at once (it would bill while
idle) and the run fails saying so.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.dataset.system import run_system_prompt
from pipeline.domain import ids
from pipeline.domain.gates import BudgetStep
from pipeline.domain.machine import Event
from pipeline.domain.platform import ChatMessage, PlatformError
from pipeline.domain.provenance import Change, ResourceState
from pipeline.domain.records import RunRecord
from pipeline.evaluation.prompts import reasoning_effort
from pipeline.run.context import Outcome, RunContext
from pipeline.run.events import Deployed
from pipeline.run.steps.budget import hold
from pipeline.run.steps.final import shipped
from pipeline.run.steps.serving import deployment_ref, production, production_rate, tear_down


async def deploy(ctx: RunContext, run: RunRecord) -> Outcome:
    """Create the run's one production deployment (id recorded first), wait, smoke-test it."""
    if (held := await hold(ctx, run, BudgetStep.DEPLOY)) is not None:
        return held
    model = await shipped(ctx, run)
    name = model.model or model.job_id
    dep_id = ids.deployment_id(run.id)
    status = await production(ctx, run, name, base=model.base_model)
    # READY is not proof of serving (reference/fireworks.md §7.3): send one real completion.
    try:
        reply = await ctx.platform.inference.chat(
            status.model_string,
            [ChatMessage(role="user", content="Say OK.")],
            max_tokens=16,
            reasoning_effort=reasoning_effort(model.base_model, []),
        )
    except PlatformError as exc:
        state = await tear_down(ctx, run, dep_id)
        async with ctx.db.write() as tx:
            await tx.audit(
                run_id=run.id, actor="sftbot", action="smoke_test_failed", details={"error": str(exc), "state": state.value}
            )
        raise PlatformError(
            f"deployment {dep_id} was READY but failed its smoke test ({str(exc).rstrip('.')}); "
            f"it was torn down so it does not bill (state read back: {state.value})."
        ) from None
    # The summary, the report and the idle guard read how to call it from here.
    serving = Change(
        name=status.model_string,
        rate=await production_rate(ctx, run, model.base_model),
        details={**status.model_dump(mode="json"), "smoke_test": reply[:200]},
    )
    snippet = ctx.platform.serving.snippet(status, system_prompt=run_system_prompt(Path(run.workspace)))
    async with ctx.db.write() as tx:
        await ctx.db.move_resource(tx, run.id, deployment_ref(dep_id), ResourceState.READY, serving)
    await ctx.emit(Deployed(run=await ctx.reload(run), deployment=status, snippet=snippet.code))
    return Outcome(Event.DEPLOYED)
