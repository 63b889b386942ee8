"""The one planner: ``sftbot plan``, the terminal run and Slack all make their plans here.

Planning is two halves:

- ``survey``: every read-only lookup a plan needs, in the order a person would be asked about
  them — stage the dataset (a platform dataset is brought to a local file) and inspect it, the
  platform's tunable models, the evaluator (checked on the data's own answers, or found on the
  platform), the deployment shapes each base would be served on, and the training speed. It
  creates nothing and spends nothing; the first thing only a person can answer stops it with a
  ``Needs``. **This is the seam a preflight uses**: run ``survey`` on a scratch folder before a
  run exists (no run number spent, nothing posted) and turn its ``Needs`` or errors into checks.
- ``plan``: the pure plan from what the survey found (pipeline/planning/plan.py), its range
  learned from how recent runs of this size landed when a history is given.

Without a platform (``sftbot plan`` for Fireworks with no account configured) the planner makes
no lookups: the bundled catalogue sizes the models and serving is priced "not looked up".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.dataset import staging
from pipeline.dataset.access import LocalFiles, dataset_file
from pipeline.dataset.inspection import InspectionReport
from pipeline.dataset.staging import Admit
from pipeline.domain.catalog import BaseModelInfo, find_model
from pipeline.domain.gates import QuestionKind
from pipeline.domain.platform import Platform, PlatformError, PlatformFacts, ShapeInfo, Throughput
from pipeline.domain.spec import EvalKind, Evaluation, RunSpec, SpecError
from pipeline.evaluation.eval_types import EvaluatorInfo, SandboxLimits
from pipeline.evaluation.strategy import EvaluatorBroken, Fallback, setup_evaluator
from pipeline.planning import history
from pipeline.planning.history import Outcome
from pipeline.planning.plan import make_plan
from pipeline.planning.plan_types import Lookups, Plan

History = Callable[[str, str], Awaitable[Sequence[Outcome]]]  # (platform, size band) -> recent training outcomes
EVALUATION_CHOICES = ["loss", "evaluator", "generate"]


class Unusable(ValueError):
    """The data cannot be trained on; the message names each problem and its first line."""

    def __init__(self, ref: str, report: InspectionReport) -> None:
        super().__init__(blocking_message(ref, report))
        self.ref, self.report = ref, report

    def line(self) -> str:
        """The first problem in one line (for the command line)."""
        first = next((g for g in self.report.problems if g.blocking), None)
        example = first.examples[0] if first is not None and first.examples else None
        where = f" (line {example.line}: {example.message})" if example is not None else ""
        return f"dataset {self.ref} cannot be trained on: {first.title if first else 'problems found'}{where}"


@dataclass(frozen=True)
class PlannerSettings:
    """What the bot's settings say about planning (the runner's config carries the same values)."""

    files: LocalFiles = field(default_factory=LocalFiles)  # which local files a plan may read
    evaluator_dir: Path | None = None  # SFTBOT_EVALUATOR_DIR: where users' evaluator files live
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)  # users' evaluators run in it
    answer_tokens: int = 512  # per held-out answer
    parallel: int | None = None  # jobs at once by default (None: the platform's, else 6)
    ask_evaluation: bool = False  # ask "how should I judge the candidates?" when the instruction did not say
    live_merge_bases: frozenset[str] = frozenset()  # addon deployments refused here (sftbot doctor): live merge


@dataclass(frozen=True)
class Needs:
    """What only a person can answer before there is a plan (a question at the input gate)."""

    kind: QuestionKind
    text: str
    choices: list[str] = field(default_factory=list)
    detail: str | None = None  # said only to whoever supplied the evaluator (its error may quote their file)


@dataclass
class Survey:
    """What the read-only lookups found, ready for the pure plan."""

    spec: RunSpec  # as planned (an evaluation that cannot work on this data falls back to loss)
    report: InspectionReport
    found: Lookups
    evaluator: EvaluatorInfo | None = None
    fallback: str | None = None  # why the evaluation asked for fell back to validation loss
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Serving:
    shapes: dict[str, ShapeInfo | None] | None = None  # base -> live-merge shape (None: not looked up)
    addon_shapes: dict[str, ShapeInfo | None] | None = None  # base -> multi-LoRA shape, for candidate outputs
    undeployable: str | None = None  # the first base with no shape on this account
    warnings: list[str] = field(default_factory=list)


class Planner:
    """Plans for one platform (or, offline, for its declared facts alone)."""

    def __init__(self, facts: PlatformFacts, settings: PlannerSettings, *, platform: Platform | None = None) -> None:
        self.facts, self.settings, self.platform = facts, settings, platform
        self.history: History | None = None  # recent runs of this size: the plan's range is learned from them
        self.admit: Admit | None = None  # may the run read a dataset a person named? (a Slack run: given where it is)

    @classmethod
    def on(
        cls, platform: Platform, settings: PlannerSettings, *, history: History | None = None, admit: Admit | None = None
    ) -> Planner:
        """A planner that asks ``platform`` (the run's, or `sftbot plan`'s with an account)."""
        planner = cls(platform.facts, settings, platform=platform)
        planner.history, planner.admit = history, admit
        return planner

    async def propose(self, spec: RunSpec, workspace: Path, *, version: int = 1) -> Plan | Needs:
        """Survey, then plan: the one entry point."""
        survey = await self.survey(spec, workspace)
        return survey if isinstance(survey, Needs) else await self.plan(survey, version=version)

    async def survey(self, spec: RunSpec, workspace: Path) -> Survey | Needs:
        """Every read-only lookup a plan of ``spec`` needs, staged data kept in ``workspace``."""
        if not spec.dataset:
            return Needs(QuestionKind.DATASET, "Which dataset should I train on?")
        report = await self._inspect(spec, workspace)
        names, lookup = await self._models()
        if not spec.base_models:
            return Needs(QuestionKind.BASE_MODEL, "Which base model should I fine-tune?", names)
        unknown = [m for m in spec.base_models if names and m not in names and lookup(m) is None]
        if unknown:
            text = f"I don't know the base model {unknown[0]} on {self.facts.name}. Which base model should I fine-tune?"
            return Needs(QuestionKind.BASE_MODEL, text, names)
        training = await staging.training_data(workspace, report, spec.convert)
        setup = await self._evaluator(spec, training, workspace)
        if isinstance(setup, Needs):
            return setup
        fallback = None
        if isinstance(setup, Fallback):
            spec = spec.model_copy(update={"evaluation": Evaluation(kind=EvalKind.LOSS)})
            fallback, setup = setup.reason, None
        serving = await self._shapes(spec)
        if serving.undeployable is not None:
            deployable = [n for n in names if n != serving.undeployable]
            return Needs(QuestionKind.BASE_MODEL, undeployable(serving.undeployable, self.facts.name), deployable)
        found = Lookups(
            model_info=lookup,
            shapes=serving.shapes,
            addon_shapes=serving.addon_shapes,
            throughput=await self._throughput(spec, training),
            answer_tokens=self.settings.answer_tokens,
            parallel=self.settings.parallel,
        )
        return Survey(spec=spec, report=report, found=found, evaluator=setup, fallback=fallback, warnings=serving.warnings)

    async def plan(self, survey: Survey, *, version: int = 1) -> Plan:
        """The plan from what the survey found, its range learned from recent runs of this size."""
        plan = make_plan(survey.spec, survey.report, self.facts, found=survey.found, version=version)
        plan = await self._learned(plan, survey.found)
        return plan.model_copy(
            update={
                "evaluator": survey.evaluator,
                "fallback_note": survey.fallback,
                "warnings": [*plan.warnings, *survey.warnings],
            }
        )

    # --- the lookups ---------------------------------------------------------------------

    async def _inspect(self, spec: RunSpec, workspace: Path) -> InspectionReport:
        """Stage and inspect the data (and the named held-out set), once; Unusable when blocked."""
        assert spec.dataset is not None
        report = await self._staged(spec.dataset, workspace, staging.SOURCE)
        if spec.eval_dataset:  # held out from training, but read the same way: checked the same way
            await self._staged(spec.eval_dataset, workspace, staging.EVAL_SOURCE)
        return report

    async def _staged(self, ref: str, workspace: Path, name: str) -> InspectionReport:
        if self.platform is None and dataset_file(ref, self.settings.files) is None:
            raise SpecError(
                f"dataset {ref} is on {self.facts.name}: staging it to inspect needs the account "
                "(set FIREWORKS_API_KEY and FIREWORKS_ACCOUNT_ID), or name a local .jsonl file"
            )
        datasets = self.platform.datasets if self.platform is not None else None
        await staging.stage_file(datasets, self.settings.files, ref, workspace / name, admit=self.admit)
        report = await staging.inspection(workspace, name)
        if report.blocking:
            raise Unusable(ref, report)
        return report

    async def _models(self) -> tuple[list[str], Callable[[str], BaseModelInfo | None]]:
        """The platform's tunable models by id, and a lookup that falls back to the bundled catalogue."""
        listed: list[BaseModelInfo] = []
        if self.platform is not None:
            try:
                listed = await self.platform.models.list_models()
            except PlatformError:
                listed = []
        known = {m.id: m for m in listed}

        def lookup(model: str) -> BaseModelInfo | None:
            return known.get(model) or find_model(model)

        return [m.id for m in listed], lookup

    async def _evaluator(self, spec: RunSpec, training: Path, workspace: Path) -> EvaluatorInfo | Fallback | Needs | None:
        """The plan's evaluator, checked before approval; a question when only a person can say."""
        if spec.evaluation is None and self.settings.ask_evaluation:
            text = (
                "How should I judge the candidates? Validation loss is cheapest; your own evaluator or one I generate "
                "from the data checks the answers."
            )
            return Needs(QuestionKind.EVALUATION, text, EVALUATION_CHOICES)
        evaluation = spec.evaluation or Evaluation(kind=EvalKind.LOSS)
        try:
            if evaluation.hosted:
                assert evaluation.ref is not None
                if self.platform is None:
                    raise SpecError(f"evaluator {evaluation.ref} lives on {self.facts.name}: checking it needs the account")
                return await check_hosted(self.platform, evaluation.ref, account=self.settings.files.account)
            return await setup_evaluator(
                evaluation,
                data=training,
                workspace=workspace,
                evaluator_dir=self.settings.evaluator_dir,
                limits=self.settings.sandbox,
            )
        except EvaluatorBroken as exc:
            text = (
                "The evaluator failed when I tried it on the data's own answers (the error went to whoever supplied it). "
                "Should I continue with validation loss, or cancel? Nothing has been spent."
            )
            detail = f"Your evaluator failed when I tried it on the data's own answers: {exc}"
            return Needs(QuestionKind.EVALUATOR_FAILED, text, ["loss", "cancel"], detail=detail)
        except SpecError as exc:
            return Needs(QuestionKind.EVALUATION, f"{exc}. How should I judge the candidates instead?", EVALUATION_CHOICES)

    async def _shapes(self, spec: RunSpec) -> _Serving:
        """Where each base's fine-tune would be served; nothing is asked when nothing will be deployed.

        The platform answers with the validated shapes this account may use for a model (an empty
        answer: it cannot be deployed here). The plan prices serving from them, and a base that
        cannot be deployed is asked about before anything is spent."""
        outputs = spec.evaluation is not None and spec.evaluation.kind is not EvalKind.LOSS
        platform = self.platform
        if platform is None or not platform.facts.capabilities.deployment_shapes or not (spec.deploy is not False or outputs):
            return _Serving()
        out = _Serving(shapes={})
        assert out.shapes is not None
        try:
            for base in spec.base_models:
                shape = await platform.serving.shape(base)
                if shape is None:
                    return _Serving(undeployable=base)
                out.shapes[base] = shape
            if outputs and platform.adapters is not None:
                out.addon_shapes = {b: await self._addon_shape(b, out.warnings) for b in spec.base_models}
        except PlatformError as exc:
            # Not a refusal: the platform could not say. The plan shows serving as unknown.
            return _Serving(warnings=[f"Could not ask {self.facts.name} which GPUs the models would be served on ({exc})"])
        return out

    async def _addon_shape(self, base: str, warnings: list[str]) -> ShapeInfo | None:
        """The base's multi-LoRA shape; None (priced and run as live merge) where doctor saw addons refused."""
        if base in self.settings.live_merge_bases:
            warnings.append(live_merge_note(base))
            return None
        return await self.platform.serving.shape(base, addons=True) if self.platform is not None else None

    async def _throughput(self, spec: RunSpec, training: Path) -> dict[str, Throughput] | None:
        """Training speed per base: the local platform measures it on these rows the first time
        (cached after); platforms that bill in money answer None."""
        if self.platform is None:
            return None
        measured = {}
        for model in dict.fromkeys(spec.base_models):
            if (tp := await self.platform.training.throughput(model, sample=training)) is not None:
                measured[model] = tp
        return measured or None

    async def _learned(self, plan: Plan, found: Lookups) -> Plan:
        """The plan's range made from how recent runs of this size landed against their estimates."""
        table = self.facts.prices.table
        if table is None or self.history is None or not plan.candidates:
            return plan
        rng = table.range
        past = await self.history(plan.platform, history.band(found.model_info(plan.candidates[0].base_model)))
        cal = history.calibrate(past, default_low=rng.low, default_high=rng.high)
        return plan.model_copy(update={"cost": history.calibrated(plan.cost, cal, default_low=rng.low, default_high=rng.high)})


async def check_hosted(platform: Platform, ref: str, *, account: str | None) -> EvaluatorInfo:
    """The plan's hosted evaluator, checked to exist and be ACTIVE before approval (SpecError
    otherwise); ``account``: the bot's own Fireworks account, to say whose the evaluator is."""
    if platform.evaluators is None:
        raise SpecError(
            f"evaluator {ref} lives on Fireworks, and this bot trains on the {platform.facts.name} platform: put the "
            "evaluator's .py file in SFTBOT_EVALUATOR_DIR and use eval=evaluator:<file>"
        )
    try:
        found = await platform.evaluators.check(ref)
    except PlatformError as exc:
        raise SpecError(str(exc).rstrip(".")) from None
    checks = f" (checks: {', '.join(found.criteria[:5])})" if found.criteria else ""
    about = f": {found.description}" if found.description else ""
    whose = _whose(found.name, account)
    return EvaluatorInfo(
        kind="hosted",
        summary=f"the Fireworks evaluator {found.display_name} ({found.name}){whose}{about}{checks}",
        evaluator_path=found.name,
        hosted=found.name,
    )


def _whose(name: str, own: str | None) -> str:
    """Whose account a hosted evaluator is in (the held-out rows and answers go there)."""
    parts = name.split("/")
    if len(parts) < 2 or parts[0] != "accounts":
        return ""
    if parts[1] == own:
        return f" in this bot's account {parts[1]!r}"
    allowed = " (allowed by SFTBOT_FOREIGN_ACCOUNTS)" if own is not None else ""
    return f" in the account {parts[1]!r}{allowed}"


def live_merge_note(base: str) -> str:
    """The plan's line for a base whose addon deployments the account refuses."""
    return (
        f"sftbot doctor found that this account refuses addon (multi-LoRA) deployments of {base}: each {base} candidate "
        "is evaluated by live merge instead, one short-lived deployment each, priced so in this plan"
    )


def undeployable(base: str, platform: str) -> str:
    """The question text when a base cannot be deployed on this account."""
    return (
        f"{base} cannot be deployed on this {platform} account: {platform} has no deployment shape for it here, so the "
        "model I would train could not be served (nothing has been spent). Which base model should I fine-tune instead? "
        "(With deploy=no and validation loss, nothing is deployed.)"
    )


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
