"""Phase 6: evaluate the model that ships, with the strategy the plan chose."""

from __future__ import annotations

from pipeline.domain import ids
from pipeline.domain.gates import BudgetStep
from pipeline.domain.machine import Event
from pipeline.domain.provenance import Ref, ResourceKind, ResourceState
from pipeline.domain.records import RunRecord
from pipeline.run.answers import comparison
from pipeline.run.context import Outcome, RunContext
from pipeline.run.events import EvaluationDone
from pipeline.run.steps.baseline import deploy_block
from pipeline.run.steps.budget import hold
from pipeline.run.steps.final import shipped
from pipeline.run.steps.scoring import score_final
from pipeline.run.steps.sweep import current_plan
from pipeline.run.summary import evaluation_sentence, evaluator_failure
from pipeline.store.runs import RunChanges


async def evaluate(ctx: RunContext, run: RunRecord) -> Outcome:
    """Validation loss needs nothing more; an evaluator scores the shipped model's held-out answers."""
    plan = await current_plan(ctx, run)
    model = await shipped(ctx, run)
    if plan.evaluator is not None and run.evaluator_error is None:
        # The final model is scored on the production deployment: creating it is the paid step.
        if model.slot.is_final and plan.deploy and (held := await hold(ctx, run, BudgetStep.DEPLOY)) is not None:
            return held
        await score_final(ctx, run, plan, model)
        model = await shipped(ctx, run)  # with its score
    comp = await comparison(ctx.db, run, model)
    if plan.deploy and comp is not None and comp.identical:
        # An adapter that was not loaded answers like the base: shipping it ships the base.
        number = (run.question.number + 1) if run.question else len(await ctx.db.gate_decisions(run.id)) + 1
        production = await ctx.db.resource(Ref(kind=ResourceKind.DEPLOYMENT, id=ids.deployment_id(run.id)))
        question = deploy_block(comp, number, billing=production is not None and production.state is not ResourceState.DELETED)
        async with ctx.db.write() as tx:
            await tx.audit(run_id=run.id, actor="sftbot", action="deploy_blocked", details={"reason": question.text})
        return Outcome(Event.NEEDS_INPUT, RunChanges(question=question))
    summary = evaluation_sentence(plan, model, evaluator_failure=evaluator_failure(run))
    await ctx.emit(EvaluationDone(run=await ctx.reload(run), summary=summary, candidate=model))
    return Outcome(Event.EVALUATED)
