"""Plain-text rendering for the terminal surface (CLI, `sftbot run`, `sftbot demo`).

The planning modules are imported where a plan is rendered, not at the top: `sftbot inspect`
renders only the inspection and must start in a blink.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.domain.money import money

if TYPE_CHECKING:
    from pipeline.dataset.inspection import InspectionReport
    from pipeline.evaluation.compare import Comparison
    from pipeline.planning.plan_types import Plan, PlannedJob


def inspection_text(report: InspectionReport) -> str:
    """The inspection report as a person reads it: counts, conversions, problems by line."""
    out = [
        f"Dataset {report.path}",
        f"  shape: {report.shape.value}; {report.samples:,} trainable samples in {report.lines:,} lines ({report.bytes:,} bytes)",
        f"  tokens: ~{report.tokens:,} ({report.token_method}); longest sample ~{report.max_sample_tokens:,}",
    ]
    if report.role_counts:
        roles = ", ".join(f"{k} {v:,}" for k, v in sorted(report.role_counts.items()))
        out.append(f"  messages by role: {roles}; assistant turns per sample {report.avg_turns:.2f}")
    for conv in report.conversions:
        out.append(f"  conversion offered: {conv.description} ({conv.rows:,} rows)")
    for group in report.problems:
        mark = "BLOCKING" if group.blocking else "warning"
        out.append(f"  {mark}: {group.title}: {group.count:,}")
        for p in group.examples:
            out.append(f"    line {p.line}: {p.message}")
        if group.count > len(group.examples):
            out.append(f"    ... and {group.count - len(group.examples):,} more")
    out.append("  => " + ("can be trained on" if report.trainable else "cannot be trained on as it is"))
    return "\n".join(out)


def _mark(plan: Plan, key: str) -> str:
    from pipeline.planning.plan_types import Source

    return " (default)" if plan.sources.get(key) is Source.DEFAULT else " (you set)"


def _job_row(job: PlannedJob) -> str:
    from pipeline.planning.duration import minutes

    took = f"  {minutes(job.duration)}" if job.duration else ""
    return (
        f"  {job.slot.name:>5}  {job.base_model:<28} rank {job.lora_rank:<3} "
        f"lr {job.learning_rate:<8g} epochs {job.epochs:<2} samples {job.train_samples:,}{took}"
    )


def _time_lines(plan: Plan) -> list[str]:
    """The local platform's cost: time on this machine, in total and how it was estimated."""
    from pipeline.planning.duration import minutes

    c = plan.cost
    if plan.duration is None:
        return ["Time estimate: unknown", *(f"    {u}" for u in c.unknown), "  nothing is billed on this machine"]
    return [
        f"Time estimate: {minutes(plan.duration)} in all (sweep, final run, evaluation, deployment); nothing is billed",
        f"  from {plan.duration.basis}",
    ]


def plan_text(plan: Plan) -> str:
    """The plan with every value marked default / set by you, and the cost breakdown."""
    c = plan.cost
    out = [
        f"Plan v{plan.version} on {plan.platform}: {len(plan.candidates)} candidate(s)"
        f"{', then a final run on the full data' if plan.final else ', no final run'}",
        f"  dataset {plan.dataset}: {plan.samples:,} samples, ~{plan.tokens:,} tokens; "
        f"train {plan.train_samples:,} / held-out {plan.test_samples:,}"
        + (f"; eval dataset {plan.eval_dataset}" if plan.eval_dataset else ""),
        f"  HP tuning on {plan.hp_samples:,} sampled rows (seed 42){_mark(plan, 'hp_samples')}"
        if plan.hp_samples
        else "  HP tuning on the whole train split (no subsample needed)",
        f"  grid{_mark(plan, 'grid')}, epochs{_mark(plan, 'epochs')}:",
        *(_job_row(j) for j in plan.candidates),
        *([_job_row(plan.final) + "  (winner's config)"] if plan.final else []),
        f"  parallel jobs: at most {plan.max_parallel}{_mark(plan, 'max_parallel')}",
        f"  evaluation: {plan.evaluation.describe()}{_mark(plan, 'evaluation')}",
        f"  final run: {'on' if plan.final else 'skipped'}{_mark(plan, 'final_run')}; "
        f"deploy: {'yes' if plan.deploy else 'no'}{_mark(plan, 'deploy')}",
    ]
    if not plan.billed:
        out += _time_lines(plan)
    else:
        out += [
            "Cost estimate:",
            f"  Training   {money(c.training_usd):>10}",
            f"  Inference  {money(c.inference_usd):>10}",
            f"  Total      {money(c.total_usd):>10}   range {money(c.low_usd)} - {money(c.high_usd)}",
        ]
        for line in c.lines:
            out.append(f"    {line.label}: {money(line.usd)} ({line.detail})")
        for u in c.unknown:
            out.append(f"    unknown: {u}")
        out.append(f"  prices as of {c.prices_as_of}; source: {c.price_source}")
        if c.calibration:
            out.append(f"  range: {c.calibration}")
    if plan.baseline:
        out.append(f"  base model: {plan.baseline}")
    if plan.fallback_note:
        out.append(f"  note: {plan.fallback_note}")
    for w in plan.warnings:
        out.append(f"  note: {w}")
    if plan.serving_note:
        out.append(f"  serving: {plan.serving_note}")
    return "\n".join(out)


def comparison_lines(comp: Comparison, *, who: str = "leader") -> list[str]:
    """Base vs tuned for the terminal: the scores, the verdict, the side-by-side examples."""

    def score(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    def one(text: str | None, limit: int = 160) -> str:
        if text is None:
            return "(no answer: the request failed)"
        flat = " ".join(text.split())
        return flat if len(flat) <= limit else flat[: limit - 1] + "…"

    if comp.base.score is None and comp.base.val_loss is not None:  # judged by validation loss
        tuned = "n/a" if comp.tuned_val_loss is None else f"{comp.tuned_val_loss:.4f}"
        head = f"Base vs {who} (validation loss): base {comp.base.base_model} {comp.base.val_loss:.4f}, {comp.tuned} {tuned}"
    else:
        head = f"Base vs {who} on {len(comp.rows)} held-out prompts: base {comp.base.base_model} score {score(comp.base.score)}, "
        head += f"{comp.tuned} score {score(comp.tuned_score)}" + (f" ({comp.base.note})" if comp.base.note else "")
    out = [head]
    if comp.identical:
        out.append(f"  ⚠️ the {who} answers exactly like the base model on every prompt: its adapter was probably not loaded")
    elif comp.beats_base is False:
        out.append(f"  ⚠️ the {who} does not beat the base model: fine-tuning may not have helped")
    elif comp.beats_base:
        out.append(f"  the {who} beats the base model")
    for n, ex in enumerate(comp.examples, 1):
        scores = f" (base {score(ex.base_score)} -> {who} {score(ex.tuned_score)})" if ex.tuned_score is not None else ""
        out += [
            f"  Example {n}, row {ex.index}{scores}",
            f"    prompt:   {one(ex.prompt)}",
            f"    base:     {one(ex.base)}",
            f"    {who + ':':<9} {one(ex.tuned)}",
            f"    expected: {one(ex.expected)}",
        ]
    return out


def plan_json(plan: Plan) -> dict[str, Any]:
    """The documented `sftbot plan --json` object (README: "Plan JSON")."""

    def job(j: PlannedJob | None) -> dict[str, Any] | None:
        if j is None:
            return None
        return {
            "base_model": j.base_model,
            "lora_rank": j.lora_rank,
            "learning_rate": j.learning_rate,
            "epochs": j.epochs,
            "train_samples": j.train_samples,
            "train_tokens": j.train_tokens,
            "max_context_length": j.max_context_length,
            "duration": j.duration.model_dump() if j.duration else None,
        }

    c = plan.cost
    return {
        "version": plan.version,
        "platform": plan.platform,
        "dataset": plan.dataset,
        "eval_dataset": plan.eval_dataset,
        "samples": plan.samples,
        "tokens": plan.tokens,
        "train_samples": plan.train_samples,
        "test_samples": plan.test_samples,
        "hp_samples": plan.hp_samples,
        "candidates": [job(j) for j in plan.candidates],
        "final": job(plan.final),
        "max_parallel": plan.max_parallel,
        "evaluation": plan.evaluation.kind.value,
        "evaluator": plan.evaluation.ref,
        "eval_examples": plan.eval_examples,
        "deploy": plan.deploy,
        "sources": {k: v.value for k, v in plan.sources.items()},
        "cost": {
            "training_usd": c.training_usd,
            "inference_usd": c.inference_usd,
            "total_usd": c.total_usd,
            "low_usd": c.low_usd,
            "high_usd": c.high_usd,
            "prices_as_of": c.prices_as_of,
            "price_source": c.price_source,
            "billed_tokens": c.billed_tokens,
            "compute_minutes": c.compute_minutes,
            "lines": [ln.model_dump() for ln in c.lines],
            "unknown": c.unknown,
        },
        "duration": plan.duration.model_dump() if plan.duration else None,
        "warnings": [*([plan.fallback_note] if plan.fallback_note else []), *plan.warnings],
        "baseline": plan.baseline,
    }
