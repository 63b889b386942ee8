"""Planning: turn a run spec and an inspection report into a versioned plan (pure).

The defaults are the Fireworks Agent SFT workflow's (reference/fireworks.md §9); the user's
instruction always wins, and the plan records which values came from where.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from pipeline.dataset.inspection import InspectionReport
from pipeline.dataset.split import split_sizes
from pipeline.domain.catalog import BaseModelInfo, find_model
from pipeline.domain.platform import Throughput
from pipeline.domain.slots import FINAL, Slot
from pipeline.domain.spec import EvalKind, Evaluation, RunSpec
from pipeline.planning.cost import Shapes, estimate_cost
from pipeline.planning.duration import run_duration, table_duration, with_durations
from pipeline.planning.plan_types import Plan, PlannedJob, Source

DEFAULT_GRID: tuple[tuple[int, float], ...] = ((8, 1.5e-4), (16, 1.0e-4), (32, 5.0e-5))
DEFAULT_HP_SAMPLES = 1000
DEFAULT_MAX_PARALLEL = 6
DEFAULT_EVAL_EXAMPLES = 200
# Fireworks SFT trains with a context of "≥32768 for most models; examples are truncated at
# that length" unless `maxContextLength` asks for more (reference/fireworks.md §4, REF:168).
FIREWORKS_TRAINING_CONTEXT = 32768
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


def make_plan(
    spec: RunSpec,
    report: InspectionReport,
    *,
    platform: str = "fireworks",
    version: int = 1,
    model_info: Callable[[str], BaseModelInfo | None] = find_model,
    default_parallel: int = DEFAULT_MAX_PARALLEL,
    shapes: Shapes | None = None,
    addon_shapes: Shapes | None = None,
    throughput: Mapping[str, Throughput] | None = None,
    answer_tokens: int = 512,
    live_validation: bool | None = None,
) -> Plan:
    """Resolve every knob from the spec or the defaults and cost the result.

    ``shapes`` / ``addon_shapes``: what the platform would deploy each base on (Fireworks'
    shape match), for pricing; None when not looked up (those lines say "unknown").
    ``throughput`` (per base model, measured by the platform) gives every job and the whole
    run a duration; without it a billing platform's duration comes from the dated table.
    ``answer_tokens`` is the evaluator's answer budget per held-out example.
    ``live_validation``: the platform reports epoch validation loss while a job runs, so
    pruning can act (None: only the local platform is known to).
    """
    missing = missing_inputs(spec)
    if missing:
        raise missing[0]
    assert spec.dataset is not None
    sources: dict[str, Source] = {}

    def src(name: str, given: object) -> Source:
        s = Source.USER if given is not None else Source.DEFAULT
        sources[name] = s
        return s

    n = report.samples
    hp_limit = spec.hp_samples if spec.hp_samples is not None else DEFAULT_HP_SAMPLES
    src("hp_samples", spec.hp_samples)
    # A named eval dataset replaces the held-out carve-out (as the platform does).
    carve = {} if spec.eval_dataset is None else {"test_fraction": 0.0, "min_test": 0}
    train_n, test_n, hp_split = split_sizes(n, hp_samples=hp_limit, **carve)  # type: ignore[arg-type]
    hp_n = hp_split if hp_split < train_n else None
    epochs = spec.epochs if spec.epochs is not None else default_epochs(n)
    src("epochs", spec.epochs)
    pairs, grid_source = grid(spec)
    sources["grid"] = grid_source
    sources["base_models"] = Source.USER
    tokens_per_sample = report.tokens / n if n else 0.0
    cand_samples = hp_n if hp_n is not None else train_n
    contexts = {m: context_length(report, model_info(m), platform) for m in spec.base_models}
    candidates = [
        PlannedJob(
            slot=Slot.candidate(i + 1),
            base_model=model,
            lora_rank=rank,
            learning_rate=lr,
            epochs=epochs,
            train_samples=cand_samples,
            train_tokens=round(tokens_per_sample * cand_samples),
            max_context_length=contexts[model],
        )
        for i, (model, (rank, lr)) in enumerate((m, p) for m in spec.base_models for p in pairs)
    ]
    do_final = spec.final_run if spec.final_run is not None else True
    src("final_run", spec.final_run)
    # The final run's config is the winner's; until the gate it is shown as the first candidate's
    # shape on the full train split, which is what the estimate needs (all candidates cost alike
    # per token within one base model, so the estimate uses the most expensive base model).
    final = None
    if do_final:
        priciest = max(candidates, key=lambda c: _price_key(model_info(c.base_model)))
        final = priciest.model_copy(
            update={"slot": FINAL, "train_samples": train_n, "train_tokens": round(tokens_per_sample * train_n)}
        )
    max_parallel = spec.max_parallel if spec.max_parallel is not None else default_parallel
    src("max_parallel", spec.max_parallel)
    evaluation = spec.evaluation or Evaluation(kind=EvalKind.LOSS)
    src("evaluation", spec.evaluation)
    eval_examples = min(spec.eval_examples or DEFAULT_EVAL_EXAMPLES, max(test_n, 1))
    src("eval_examples", spec.eval_examples)
    deploy = spec.deploy if spec.deploy is not None else True
    src("deploy", spec.deploy)
    prune = bool(spec.prune)
    src("prune", spec.prune)
    warnings = _warnings(spec, report, candidates, model_info, max_parallel, platform=platform)
    live = live_validation if live_validation is not None else platform == "local"
    if prune and not live:
        warnings.append(
            f"Pruning may save nothing here: {platform} reports no validation loss while a job runs, so a "
            "candidate is stopped only if its metrics file already holds epoch validation losses mid-job."
        )
    elif prune and len(candidates) <= 2:
        warnings.append("Pruning will not stop anything: the top 2 candidates always finish.")
    duration = None
    time_unknown: list[str] = []
    if throughput is not None:
        held_out_tokens = round(tokens_per_sample * test_n)  # each epoch ends with a validation pass over it
        candidates, time_unknown = with_durations(candidates, throughput, eval_tokens=held_out_tokens)
        if final is not None:
            (final,), unknown_final = with_durations([final], throughput, eval_tokens=held_out_tokens)
            time_unknown += unknown_final
        evaluated = eval_examples if evaluation.kind is not EvalKind.LOSS else 0
        duration = run_duration(
            candidates, final, throughput, max_parallel=max_parallel, evaluated_examples=evaluated, answer_tokens=answer_tokens
        )
    elif platform != "local":
        duration = table_duration(
            candidates=candidates,
            final=final,
            max_parallel=max_parallel,
            evaluation=evaluation,
            deploy=deploy,
            model_info=model_info,
        )
    cost = estimate_cost(
        candidates=candidates,
        final=final,
        evaluation=evaluation,
        eval_examples=eval_examples,
        deploy=deploy,
        platform=platform,
        model_info=model_info,
        shapes=shapes,
        addon_shapes=addon_shapes,
        hosted_evaluator=evaluation.hosted,
        duration=duration,
        time_unknown=time_unknown if throughput is not None else None,
    )
    return Plan(
        version=version,
        platform=platform,
        spec=spec,
        dataset=spec.dataset,
        eval_dataset=spec.eval_dataset,
        samples=n,
        tokens=report.tokens,
        train_samples=train_n,
        test_samples=test_n,
        hp_samples=hp_n,
        candidates=candidates,
        final=final,
        max_parallel=max_parallel,
        evaluation=evaluation,
        eval_examples=eval_examples if evaluation.kind is not EvalKind.LOSS else 0,
        deploy=deploy,
        prune=prune,
        sources=sources,
        cost=cost,
        duration=duration,
        warnings=warnings,
        shapes={b: sh for b, sh in (shapes or {}).items() if sh is not None},
        baseline=baseline_sentence(evaluation, eval_examples, platform),
    )


def baseline_sentence(evaluation: Evaluation, eval_examples: int, platform: str) -> str:
    """What the plan does to set the base model against the tuned ones (said, and costed, up front)."""
    if evaluation.kind is EvalKind.LOSS:
        if platform == "local":  # one forward pass over the held-out rows, as for a candidate's validation loss
            return (
                "The untrained base model's validation loss on the same held-out rows is computed on this machine and "
                "shown beside the leader's (no answers to compare: choose an evaluator for side-by-side examples)."
            )
        # An SFT job reports loss only for what it trains; inventing a base loss is worse than none.
        return (
            f"The base model is not scored: with validation loss only there are no answers to compare and {platform} "
            "reports no loss for an untrained base; choose an evaluator to see base vs tuned."
        )
    where = "on this machine" if platform == "local" else "on the evaluation deployment"
    return (
        f"The base model answers the same {eval_examples} held-out prompts {where} and is scored by the same "
        "evaluator; the promotion gate shows it beside the leader."
    )


def context_length(report: InspectionReport, info: BaseModelInfo | None, platform: str) -> int | None:
    """``maxContextLength`` for a job: None when the default fits the longest example; else
    that example's length with headroom, a multiple of 16 ("must be divisible by 16"),
    at most the model's own maximum rounded down to 16."""
    if platform != "fireworks" or report.max_sample_tokens <= FIREWORKS_TRAINING_CONTEXT:
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
    platform: str,
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
                f"The longest example ({longest}) is longer than the {FIREWORKS_TRAINING_CONTEXT:,}-token default training "
                f"context, which would cut it off: the jobs on {model} ask for maxContextLength={context:,}."
            )
    if max_parallel < len(candidates):
        out.append(f"{len(candidates)} candidates with at most {max_parallel} active at once: the sweep runs in waves.")
    if report.conversions and spec.convert is not False:
        out.append("The data will be converted before training: " + "; ".join(c.description for c in report.conversions) + ".")
    return out
