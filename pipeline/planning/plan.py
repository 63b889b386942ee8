"""Planning: turn a run spec and an inspection report into a versioned plan (pure).

The defaults are the Fireworks Agent SFT workflow's (reference/fireworks.md §9); the user's
instruction always wins, and the plan records which values came from where.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from pipeline.dataset.inspection import InspectionReport
from pipeline.dataset.split import split_sizes
from pipeline.domain.catalog import BaseModelInfo
from pipeline.domain.platform import PlatformFacts
from pipeline.domain.slots import FINAL, Slot
from pipeline.domain.spec import EvalKind, Evaluation, RunSpec
from pipeline.planning.cost import estimate_cost
from pipeline.planning.duration import run_duration, table_duration, with_durations
from pipeline.planning.plan_types import Duration, Lookups, Plan, PlannedJob, Source, Work

DEFAULT_GRID: tuple[tuple[int, float], ...] = ((8, 1.5e-4), (16, 1.0e-4), (32, 5.0e-5))
DEFAULT_HP_SAMPLES = 1000
DEFAULT_MAX_PARALLEL = 6
DEFAULT_EVAL_EXAMPLES = 200
CONTEXT_HEADROOM = 1.1  # token counts are estimates: ask for a little more than the longest example


class MissingInput(ValueError):
    """The spec lacks something only the user can answer (e.g. which base model)."""

    def __init__(self, what: str, question: str) -> None:
        super().__init__(question)
        self.what = what
        self.question = question


def default_epochs(total_samples: int) -> int:
    """The workflow's rule: ``min(5, ceil(2500 / total_samples))``."""
    return min(5, math.ceil(2500 / max(total_samples, 1)))


def missing_inputs(spec: RunSpec) -> list[MissingInput]:
    """What the bot must ask before it can plan."""
    out = []
    if not spec.dataset:
        out.append(MissingInput("dataset", "Which dataset should I train on? Give a dataset id or a path to a JSONL file."))
    if not spec.base_models:
        out.append(MissingInput("base_model", "Which base model should I fine-tune?"))
    return out


def grid(spec: RunSpec) -> tuple[list[tuple[int, float]], Source]:
    """The (rank, lr) pairs per base model: explicit, a cross product, or the default grid."""
    if spec.candidates is not None:
        return [(c.lora_rank, c.learning_rate) for c in spec.candidates], Source.USER
    if spec.lora_ranks is None and spec.learning_rates is None:
        return list(DEFAULT_GRID), Source.DEFAULT
    # Only one axis given: cross it with the default values of the other axis, deduplicated,
    # so "use rank 16" keeps the default learning rates rather than inventing a new one.
    ranks = list(spec.lora_ranks) if spec.lora_ranks is not None else sorted({r for r, _ in DEFAULT_GRID})
    lrs = list(spec.learning_rates) if spec.learning_rates is not None else [lr for _, lr in DEFAULT_GRID]
    if spec.lora_ranks is not None and spec.learning_rates is None:
        # One rank with the default lr that pairs with it in the default grid, when it is there.
        pairs = dict(DEFAULT_GRID)
        return [(r, pairs.get(r, 1.0e-4)) for r in ranks], Source.USER
    if spec.learning_rates is not None and spec.lora_ranks is None:
        return [(16, lr) for lr in lrs], Source.USER
    return [(r, lr) for r in ranks for lr in lrs], Source.USER


@dataclass(frozen=True)
class _Sizes:
    """How the data splits, per the spec: rows and tokens of each part."""

    samples: int
    train: int
    test: int
    hp: int | None  # the HP-tuning subsample; None when the candidates train on the whole train split
    tokens_per_sample: float

    @property
    def candidate_samples(self) -> int:
        return self.hp if self.hp is not None else self.train

    def tokens(self, samples: int) -> int:
        return round(self.tokens_per_sample * samples)


def make_plan(
    spec: RunSpec, report: InspectionReport, platform: PlatformFacts, *, found: Lookups | None = None, version: int = 1
) -> Plan:
    """Resolve every knob from the spec or the defaults (recording which came from where), and
    cost and time the result with what the planner's lookups ``found`` on ``platform``."""
    missing = missing_inputs(spec)
    if missing:
        raise missing[0]
    assert spec.dataset is not None
    found = found or Lookups()
    sources: dict[str, Source] = {}
    sizes = _sizes(spec, report, sources)
    candidates = _candidates(spec, report, platform, found, sizes, sources)
    final = _final(spec, candidates, found, sizes, sources)
    knobs = _knobs(spec, platform, found, sizes, sources)
    max_parallel, prune = knobs.max_parallel, knobs.prune
    warnings = _warnings(spec, report, candidates, found.model_info, max_parallel, platform=platform)
    warnings += _prune_warnings(prune, platform, len(candidates))
    work = Work(candidates, final, knobs.evaluation, eval_examples=knobs.eval_examples, deploy=knobs.deploy)
    work, duration, time_unknown = _timed(work, platform, found, sizes, max_parallel)
    cost = estimate_cost(work, platform.prices, found, duration=duration, time_unknown=time_unknown)
    evaluation = work.evaluation
    return Plan(
        version=version,
        platform=platform.name,
        billed=platform.billed,
        spec=spec,
        dataset=spec.dataset,
        eval_dataset=spec.eval_dataset,
        samples=sizes.samples,
        tokens=report.tokens,
        train_samples=sizes.train,
        test_samples=sizes.test,
        hp_samples=sizes.hp,
        candidates=list(work.candidates),
        final=work.final,
        max_parallel=max_parallel,
        evaluation=evaluation,
        eval_examples=work.eval_examples if evaluation.kind is not EvalKind.LOSS else 0,
        deploy=work.deploy,
        prune=prune,
        sources=sources,
        cost=cost,
        duration=duration,
        warnings=warnings,
        shapes={b: sh for b, sh in (found.shapes or {}).items() if sh is not None},
        baseline=baseline_sentence(evaluation, work.eval_examples, platform),
    )


def _given(sources: dict[str, Source], name: str, value: object) -> None:
    sources[name] = Source.USER if value is not None else Source.DEFAULT


def _sizes(spec: RunSpec, report: InspectionReport, sources: dict[str, Source]) -> _Sizes:
    n = report.samples
    hp_limit = spec.hp_samples if spec.hp_samples is not None else DEFAULT_HP_SAMPLES
    _given(sources, "hp_samples", spec.hp_samples)
    # A named eval dataset replaces the held-out carve-out (as the platform does).
    carve = {} if spec.eval_dataset is None else {"test_fraction": 0.0, "min_test": 0}
    train_n, test_n, hp_split = split_sizes(n, hp_samples=hp_limit, **carve)  # type: ignore[arg-type]
    hp_n = hp_split if hp_split < train_n else None
    return _Sizes(samples=n, train=train_n, test=test_n, hp=hp_n, tokens_per_sample=report.tokens / n if n else 0.0)


def _candidates(
    spec: RunSpec, report: InspectionReport, platform: PlatformFacts, found: Lookups, sizes: _Sizes, sources: dict[str, Source]
) -> list[PlannedJob]:
    """One job per (base model, rank, learning rate), on the HP-tuning split."""
    epochs = spec.epochs if spec.epochs is not None else default_epochs(sizes.samples)
    _given(sources, "epochs", spec.epochs)
    pairs, sources["grid"] = grid(spec)
    sources["base_models"] = Source.USER
    contexts = {m: context_length(report, found.model_info(m), platform) for m in spec.base_models}
    return [
        PlannedJob(
            slot=Slot.candidate(i + 1),
            base_model=model,
            lora_rank=rank,
            learning_rate=lr,
            epochs=epochs,
            train_samples=sizes.candidate_samples,
            train_tokens=sizes.tokens(sizes.candidate_samples),
            max_context_length=contexts[model],
        )
        for i, (model, (rank, lr)) in enumerate((m, p) for m in spec.base_models for p in pairs)
    ]


def _final(
    spec: RunSpec, candidates: list[PlannedJob], found: Lookups, sizes: _Sizes, sources: dict[str, Source]
) -> PlannedJob | None:
    """The final run's config is the winner's; until the gate it is shown as the first candidate's
    shape on the full train split, which is what the estimate needs (all candidates cost alike
    per token within one base model, so the estimate uses the most expensive base model)."""
    _given(sources, "final_run", spec.final_run)
    if spec.final_run is False:
        return None
    priciest = max(candidates, key=lambda c: _price_key(found.model_info(c.base_model)))
    return priciest.model_copy(update={"slot": FINAL, "train_samples": sizes.train, "train_tokens": sizes.tokens(sizes.train)})


@dataclass(frozen=True)
class _Knobs:
    max_parallel: int
    evaluation: Evaluation
    eval_examples: int
    deploy: bool
    prune: bool


def _knobs(spec: RunSpec, platform: PlatformFacts, found: Lookups, sizes: _Sizes, sources: dict[str, Source]) -> _Knobs:
    """What the run does besides training, and how many jobs at once."""
    for name in ("max_parallel", "evaluation", "eval_examples", "deploy", "prune"):
        _given(sources, name, getattr(spec, name))
    default_parallel = found.parallel or platform.capabilities.default_parallel or DEFAULT_MAX_PARALLEL
    return _Knobs(
        max_parallel=spec.max_parallel if spec.max_parallel is not None else default_parallel,
        evaluation=spec.evaluation or Evaluation(kind=EvalKind.LOSS),
        eval_examples=min(spec.eval_examples or DEFAULT_EVAL_EXAMPLES, max(sizes.test, 1)),
        deploy=spec.deploy if spec.deploy is not None else True,
        prune=bool(spec.prune),
    )


def _prune_warnings(prune: bool, platform: PlatformFacts, candidates: int) -> list[str]:
    if prune and not platform.capabilities.epoch_validation_loss:
        return [
            f"Pruning may save nothing here: {platform.name} reports no validation loss while a job runs, so a "
            "candidate is stopped only if its metrics file already holds epoch validation losses mid-job."
        ]
    if prune and candidates <= 2:
        return ["Pruning will not stop anything: the top 2 candidates always finish."]
    return []


def _timed(
    work: Work, platform: PlatformFacts, found: Lookups, sizes: _Sizes, max_parallel: int
) -> tuple[Work, Duration | None, list[str] | None]:
    """Each job's and the whole run's duration: measured speed when the platform gave one, else
    (a billing platform) the dated table, else unknown. Returns the jobs with their durations,
    the run's, and what made the time unknown (None when no speed was measured)."""
    if found.throughput is None:
        if not platform.billed:
            return work, None, None
        table = table_duration(
            candidates=work.candidates,
            final=work.final,
            max_parallel=max_parallel,
            evaluation=work.evaluation,
            deploy=work.deploy,
            model_info=found.model_info,
        )
        return work, table, None
    held_out_tokens = sizes.tokens(sizes.test)  # each epoch ends with a validation pass over it
    candidates, unknown = with_durations(list(work.candidates), found.throughput, eval_tokens=held_out_tokens)
    final = work.final
    if final is not None:
        (final,), unknown_final = with_durations([final], found.throughput, eval_tokens=held_out_tokens)
        unknown += unknown_final
    evaluated = work.eval_examples if work.evaluation.kind is not EvalKind.LOSS else 0
    duration = run_duration(
        candidates,
        final,
        found.throughput,
        max_parallel=max_parallel,
        evaluated_examples=evaluated,
        answer_tokens=found.answer_tokens,
    )
    return replace(work, candidates=candidates, final=final), duration, unknown


def baseline_sentence(evaluation: Evaluation, eval_examples: int, platform: PlatformFacts) -> str:
    """What the plan does to set the base model against the tuned ones (said, and costed, up front)."""
    offers = platform.capabilities
    if evaluation.kind is EvalKind.LOSS:
        if offers.base_loss:  # one forward pass over the held-out rows, as for a candidate's validation loss
            return (
                "The untrained base model's validation loss on the same held-out rows is computed on this machine and "
                "shown beside the leader's (no answers to compare: choose an evaluator for side-by-side examples)."
            )
        # An SFT job reports loss only for what it trains; inventing a base loss is worse than none.
        return (
            f"The base model is not scored: with validation loss only there are no answers to compare and {platform.name} "
            "reports no loss for an untrained base; choose an evaluator to see base vs tuned."
        )
    where = "on this machine" if offers.generates_in_process else "on the evaluation deployment"
    return (
        f"The base model answers the same {eval_examples} held-out prompts {where} and is scored by the same "
        "evaluator; the promotion gate shows it beside the leader."
    )


def context_length(report: InspectionReport, info: BaseModelInfo | None, platform: PlatformFacts) -> int | None:
    """``maxContextLength`` for a job: None when the platform's default training context fits the
    longest example (or it trains on whole examples); else that example's length with headroom,
    a multiple of 16 ("must be divisible by 16"), at most the model's own maximum rounded down to 16."""
    default = platform.capabilities.training_context
    if default is None or report.max_sample_tokens <= default:
        return None
    wanted = math.ceil(report.max_sample_tokens * CONTEXT_HEADROOM / 16) * 16
    ceiling = (info.max_context // 16) * 16 if info is not None and info.max_context else None
    return min(wanted, ceiling) if ceiling else wanted


def _price_key(info: BaseModelInfo | None) -> float:
    return info.params_b if info is not None and info.params_b is not None else -1.0


def _warnings(
    spec: RunSpec,
    report: InspectionReport,
    candidates: list[PlannedJob],
    model_info: Callable[[str], BaseModelInfo | None],
    max_parallel: int,
    *,
    platform: PlatformFacts,
) -> list[str]:
    out: list[str] = []
    longest = f"~{report.max_sample_tokens:,} tokens" + (f", line {report.longest_line}" if report.longest_line else "")
    for model in spec.base_models:
        info = model_info(model)
        if info is None:
            out.append(f"Base model {model} is not in the list of known tunable models; its size and price are unknown.")
        elif info.max_context and report.max_sample_tokens > info.max_context:
            out.append(
                f"The longest example ({longest}) exceeds {model}'s context of {info.max_context:,}; it will be truncated."
            )
        elif (context := context_length(report, info, platform)) is not None:
            out.append(
                f"The longest example ({longest}) is longer than the {platform.capabilities.training_context:,}-token default training "
                f"context, which would cut it off: the jobs on {model} ask for maxContextLength={context:,}."
            )
    if max_parallel < len(candidates):
        out.append(f"{len(candidates)} candidates with at most {max_parallel} active at once: the sweep runs in waves.")
    if report.conversions and spec.convert is not False:
        out.append("The data will be converted before training: " + "; ".join(c.description for c in report.conversions) + ".")
    return out
