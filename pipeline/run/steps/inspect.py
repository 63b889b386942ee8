"""Phases 1–2: stage and inspect the data (once), ask what is missing, propose plan n+1."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.dataset.inspection import InspectionReport
from pipeline.domain import ids
from pipeline.domain.catalog import BaseModelInfo, find_model, price_table
from pipeline.domain.fsio import write_atomic
from pipeline.domain.gates import Question, QuestionKind
from pipeline.domain.machine import Event
from pipeline.domain.platform import PlatformError
from pipeline.domain.records import RunRecord
from pipeline.domain.spec import EvalKind, Evaluation, SpecError
from pipeline.evaluation.eval_types import EvaluatorInfo
from pipeline.evaluation.strategy import EvaluatorBroken, Fallback, setup_evaluator
from pipeline.planning import history
from pipeline.planning.plan import make_plan
from pipeline.planning.plan_types import Plan
from pipeline.platforms.lifecycle import serving_note
from pipeline.run.authorship import supplier
from pipeline.run.context import Outcome, RunContext, workspace
from pipeline.run.steps import data, shapes
from pipeline.run.steps.hosted import check_hosted
from pipeline.store import outcomes, runs
from pipeline.store.runs import RunChanges

DEFAULT_PARALLEL = 6


def blocking_message(ref: str, report: InspectionReport) -> str:
    """Why the data cannot be used, by kind, with the first offending line pointed at.

    Where the spot is known (invalid JSON) a short excerpt with a caret under it follows, in
    a fence narrow enough for a phone. The person fixes the file and starts again.
    """
    lines = [f"the dataset {ref} cannot be trained on:"]
    for g in report.problems:
        if not g.blocking:
            continue
        first = g.examples[0] if g.examples else None
        where = f" — line {first.line}: {first.message}" if first else ""
        others = g.count - 1
        more = f" (and {others:,} more line{'s' if others != 1 else ''})" if others > 0 else ""
        lines.append(f"• {g.title}{where}{more}")
        if first is not None and first.excerpt is not None and first.caret is not None:
            lines.append(f"```\n{first.excerpt}\n{' ' * first.caret}^\n```")
    lines.append("Fix the file, then start the run again.")
    return "\n".join(lines)


async def _models(ctx: RunContext) -> list[BaseModelInfo]:
    try:
        return await ctx.platform.list_models()
    except PlatformError:
        return []


def _ask(
    kind: QuestionKind,
    text: str,
    number: int,
    choices: list[str] | None = None,
    *,
    detail: str | None = None,
    to: str | None = None,
) -> Outcome:
    question = Question(kind=kind, text=text, choices=choices or [], number=number, detail=detail, detail_for=to)
    return Outcome(Event.NEEDS_INPUT, RunChanges(question=question))


async def inspect(ctx: RunContext, run: RunRecord) -> Outcome:
    """Stage, inspect, ask what only the user can answer, set the evaluator up, plan."""
    spec = run.spec
    number = (run.question.number + 1) if run.question else len(await ctx.db.gate_decisions(run.id)) + 1
    if not spec.dataset:
        return _ask(QuestionKind.DATASET, "Which dataset should I train on?", number)
    ws = workspace(run)
    await data.stage_file(ctx, spec.dataset, ws / data.SOURCE, channel=run.channel)
    report = await data.inspection(ws)
    if report.blocking:
        raise ValueError(blocking_message(spec.dataset, report))
    if spec.eval_dataset:  # held out from training, but read the same way: checked the same way
        await data.stage_file(ctx, spec.eval_dataset, ws / data.EVAL_SOURCE, channel=run.channel)
        held_out = await data.inspection(ws, data.EVAL_SOURCE)
        if held_out.blocking:
            raise ValueError(blocking_message(spec.eval_dataset, held_out))
    listed = await _models(ctx)
    known = {m.id: m for m in listed}
    names = [m.id for m in listed]

    def lookup(model: str) -> BaseModelInfo | None:
        return known.get(model) or find_model(model)

    if not spec.base_models:
        return _ask(QuestionKind.BASE_MODEL, "Which base model should I fine-tune?", number, names)
    unknown = [m for m in spec.base_models if names and m not in names and lookup(m) is None]
    if unknown:
        text = f"I don't know the base model {unknown[0]} on {ctx.platform.name}. Which base model should I fine-tune?"
        return _ask(QuestionKind.BASE_MODEL, text, number, names)
    training = await data.training_data(ws, report, spec.convert)
    if spec.evaluation is None and ctx.config.ask_evaluation:
        text = (
            "How should I judge the candidates? Validation loss is cheapest; your own evaluator or one I generate "
            "from the data checks the answers."
        )
        return _ask(QuestionKind.EVALUATION, text, number, ["loss", "evaluator", "generate"])
    evaluation = spec.evaluation or Evaluation(kind=EvalKind.LOSS)
    try:
        if evaluation.hosted:
            assert evaluation.ref is not None
            setup: EvaluatorInfo | Fallback | None = await check_hosted(ctx, evaluation.ref)
        else:
            setup = await setup_evaluator(
                evaluation, data=training, workspace=ws, evaluator_dir=ctx.config.evaluator_dir, limits=ctx.config.sandbox
            )
    except EvaluatorBroken as exc:
        owner = supplier(run, await ctx.db.gate_decisions(run.id))
        text = (
            "The evaluator failed when I tried it on the data's own answers (the error went to whoever supplied it). "
            "Should I continue with validation loss, or cancel? Nothing has been spent."
        )
        detail = f"Your evaluator failed when I tried it on the data's own answers: {exc}"
        return _ask(QuestionKind.EVALUATOR_FAILED, text, number, ["loss", "cancel"], detail=detail, to=owner)
    except SpecError as exc:
        return _ask(
            QuestionKind.EVALUATION,
            f"{exc}. How should I judge the candidates instead?",
            number,
            ["loss", "evaluator", "generate"],
        )
    if isinstance(setup, EvaluatorInfo) and setup.kind == "user":  # the plan says whose it is
        setup = setup.model_copy(update={"owner": supplier(run, await ctx.db.gate_decisions(run.id))})
    fallback = None
    if isinstance(setup, Fallback):
        spec = spec.model_copy(update={"evaluation": Evaluation(kind=EvalKind.LOSS)})
        fallback, setup = setup.reason, None
    serving = await shapes.look_up(ctx, spec, spec.evaluation or evaluation)
    if serving.undeployable is not None:
        deployable = [n for n in names if n != serving.undeployable]
        return _ask(QuestionKind.BASE_MODEL, shapes.refusal(serving.undeployable, ctx.platform.name), number, deployable)
    caps = ctx.platform.capabilities
    # The local platform measures its speed on these rows the first time (cached after):
    # the plan's time estimate. Platforms that bill in money answer None.
    throughput = {m: tp for m in dict.fromkeys(spec.base_models) if (tp := await ctx.platform.throughput(m, sample=training))}
    plan = make_plan(
        spec,
        report,
        platform=ctx.platform.name,
        version=run.plan_version + 1,
        model_info=lookup,
        default_parallel=int(ctx.config.default_parallel or caps.default_parallel or DEFAULT_PARALLEL),
        shapes=serving.shapes,
        addon_shapes=serving.addon_shapes,
        throughput=throughput or None,
        answer_tokens=ctx.config.eval_max_tokens,
        live_validation=caps.epoch_validation_loss,
    )
    plan = await _learned(ctx, plan, lookup)
    steered = [g for g in await ctx.db.gate_decisions(run.id) if g.decision in ("revise", "answer")]
    author = steered[-1].actor if steered else run.requester
    note = (
        serving_note(
            ctx.platform.name,
            caps,
            deployment_id=ids.deployment_id(run.id),
            run_number=run.number,
            shape=max(plan.shapes.values(), key=lambda sh: sh.count, default=None),
        )
        if plan.deploy
        else None
    )
    plan = plan.model_copy(
        update={
            "evaluator": setup,
            "fallback_note": fallback,
            "author": author,
            "serving_note": note,
            "warnings": [*plan.warnings, *serving.warnings],
        }
    )
    async with ctx.db.write() as tx:
        await runs.save_plan(tx, run.id, plan)
    write_atomic(ws / f"plan-v{plan.version}.json", plan.model_dump_json(indent=1))
    return Outcome(Event.PLANNED, RunChanges(plan_version=plan.version, estimated_usd=plan.cost.total_usd, question=None))


async def _learned(ctx: RunContext, plan: Plan, lookup: Callable[[str], BaseModelInfo | None]) -> Plan:
    """The plan's range made from how recent runs of this size landed against their estimates."""
    if plan.platform == "local" or not plan.candidates:
        return plan
    rng = price_table().range
    kind = history.band(lookup(plan.candidates[0].base_model))
    past = await outcomes.recent(ctx.db, platform=plan.platform, band=kind, phase="training")
    cal = history.calibrate(past, default_low=rng.low, default_high=rng.high)
    return plan.model_copy(update={"cost": history.calibrated(plan.cost, cal, default_low=rng.low, default_high=rng.high)})
