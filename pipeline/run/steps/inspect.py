"""Phases 1–2: stage and inspect the data (once), ask what is missing, propose plan n+1.

The plan is the one planner's (pipeline/planning/planner.py), as for `sftbot plan`; this step
adds what belongs to the run: the data it may read (given where the run is), who the version
comes from, whose evaluator it runs, what its deployment will keep billing, and the question it
asks when only a person can answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.domain import ids
from pipeline.domain.fsio import write_atomic
from pipeline.domain.gates import Question, QuestionKind
from pipeline.domain.machine import Event
from pipeline.domain.records import RunRecord
from pipeline.planning import history
from pipeline.planning.plan_types import Plan
from pipeline.planning.planner import Needs, Planner
from pipeline.platforms.lifecycle import serving_note
from pipeline.run.authorship import supplier
from pipeline.run.context import Outcome, RunContext, workspace
from pipeline.run.steps.data import admit
from pipeline.store import outcomes, runs
from pipeline.store.runs import RunChanges


def planner(ctx: RunContext, run: RunRecord) -> Planner:
    """The run's planner: its platform and settings, the data it may read, the store's history of estimates."""

    async def recent(platform: str, band: str) -> Sequence[history.Outcome]:
        return await outcomes.recent(ctx.db, platform=platform, band=band, phase="training")

    return Planner.on(ctx.platform, ctx.config.planning(), history=recent, admit=admit(ctx, run))


async def inspect(ctx: RunContext, run: RunRecord) -> Outcome:
    """Stage, inspect, ask what only the user can answer, set the evaluator up, plan."""
    number = (run.question.number + 1) if run.question else len(await ctx.db.gate_decisions(run.id)) + 1
    made = await planner(ctx, run).propose(run.spec, workspace(run), version=run.plan_version + 1)
    if isinstance(made, Needs):
        return await _ask(ctx, run, made, number)
    plan = await _for_the_run(ctx, run, made)
    async with ctx.db.write() as tx:
        await runs.save_plan(tx, run.id, plan)
    write_atomic(workspace(run) / f"plan-v{plan.version}.json", plan.model_dump_json(indent=1))
    return Outcome(Event.PLANNED, RunChanges(plan_version=plan.version, estimated_usd=plan.cost.total_usd, question=None))


async def _ask(ctx: RunContext, run: RunRecord, needs: Needs, number: int) -> Outcome:
    """The planner's question at the input gate; a broken evaluator's error goes to whoever supplied it."""
    to = supplier(run, await ctx.db.gate_decisions(run.id)) if needs.kind is QuestionKind.EVALUATOR_FAILED else None
    question = Question(
        kind=needs.kind, text=needs.text, choices=needs.choices, number=number, detail=needs.detail, detail_for=to
    )
    return Outcome(Event.NEEDS_INPUT, RunChanges(question=question))


async def _for_the_run(ctx: RunContext, run: RunRecord, plan: Plan) -> Plan:
    """Who this version comes from, whose evaluator file it runs, and what its deployment keeps billing."""
    decisions = await ctx.db.gate_decisions(run.id)
    steered = [g for g in decisions if g.decision in ("revise", "answer")]
    evaluator = plan.evaluator
    if evaluator is not None and evaluator.kind == "user":  # the plan says whose it is
        evaluator = evaluator.model_copy(update={"owner": supplier(run, decisions)})
    note = (
        serving_note(
            ctx.platform.facts.name,
            ctx.platform.facts.capabilities,
            deployment_id=ids.deployment_id(run.id),
            run_number=run.number,
            shape=max(plan.shapes.values(), key=lambda sh: sh.count, default=None),
        )
        if plan.deploy
        else None
    )
    author = steered[-1].actor if steered else run.requester
    return plan.model_copy(update={"author": author, "serving_note": note, "evaluator": evaluator})
