"""The run spec: one typed, validated model of what a user asked for.

Every field that is ``None`` means "not said": the planner fills it from the defaults
and marks it as a default. A value the user gave always wins over a default.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.domain.limits import MAX_SAMPLES, MIN_SAMPLES

# Fireworks managed SFT: "LoRA rank must be a power of 2 up to 32" (reference/fireworks.md §4).
# 4 is the smallest rank the platform's PEFT details accept; 64 is refused by managed SFT.
ALLOWED_RANKS: tuple[int, ...] = (4, 8, 16, 32)
# Learning rates above 1e-2 destroy a pretrained model under LoRA; 0 or negative is meaningless.
MAX_LEARNING_RATE = 1e-2
MAX_EPOCHS = 50
MAX_PARALLEL = 64


class SpecError(ValueError):
    """A value the user gave is outside what the platform accepts; the message names it."""


class EvalKind(str, Enum):
    """How candidates and the final model are judged."""

    LOSS = "loss"  # validation loss only (the workflow's default)
    EVALUATOR = "evaluator"  # the user's own evaluator
    GENERATE = "generate"  # an evaluator generated from the data


class Evaluation(BaseModel):
    """The evaluation strategy; ``ref`` names the user's evaluator for ``EVALUATOR``."""

    model_config = ConfigDict(frozen=True)

    kind: EvalKind
    ref: str | None = None

    @property
    def hosted(self) -> bool:
        """The user's evaluator lives on the platform (``accounts/<a>/evaluators/<id>``), not in a file."""
        return self.kind is EvalKind.EVALUATOR and is_hosted_evaluator(self.ref)

    def describe(self) -> str:
        """Plain-English name, as a user would say it (no "Path A" jargon)."""
        if self.kind is EvalKind.LOSS:
            return "validation loss"
        if self.kind is EvalKind.GENERATE:
            return "an evaluator generated from the data"
        if self.hosted:
            return f"the Fireworks evaluator {self.ref}"
        return f"the evaluator file {self.ref}" if self.ref else "an evaluator of your own"


def is_hosted_evaluator(ref: str | None) -> bool:
    parts = (ref or "").strip().split("/")
    return len(parts) == 4 and parts[0] == "accounts" and parts[2] == "evaluators" and all(parts)


class CandidateSpec(BaseModel):
    """One explicit (rank, learning rate) pair the user listed."""

    model_config = ConfigDict(frozen=True)

    lora_rank: int
    learning_rate: float

    @field_validator("lora_rank")
    @classmethod
    def _rank(cls, v: int) -> int:
        return check_rank(v)

    @field_validator("learning_rate")
    @classmethod
    def _lr(cls, v: float) -> float:
        return check_learning_rate(v)


def check_rank(v: int) -> int:
    """Refuse a LoRA rank the platform does not accept, naming the allowed values."""
    if v not in ALLOWED_RANKS:
        allowed = ", ".join(str(r) for r in ALLOWED_RANKS)
        raise SpecError(f"LoRA rank {v} is not allowed: use one of {allowed}")
    return v


def check_learning_rate(v: float) -> float:
    """Refuse a learning rate outside (0, 1e-2]."""
    if not (0 < v <= MAX_LEARNING_RATE):
        raise SpecError(f"learning rate {v:g} is out of range: use a value above 0 and at most {MAX_LEARNING_RATE:g}")
    return v


def _check_range(name: str, v: int | None, lo: int, hi: int) -> int | None:
    if v is not None and not (lo <= v <= hi):
        raise SpecError(f"{name} {v} is out of range: use a whole number from {lo} to {hi:,}")
    return v


class RunSpec(BaseModel):
    """What the user asked for. ``None`` = not stated, the planner's default applies."""

    model_config = ConfigDict(frozen=True)

    dataset: str | None = None
    eval_dataset: str | None = None
    base_models: tuple[str, ...] = ()
    evaluation: Evaluation | None = None
    learning_rates: tuple[float, ...] | None = None
    lora_ranks: tuple[int, ...] | None = None
    candidates: tuple[CandidateSpec, ...] | None = None
    epochs: int | None = None
    hp_samples: int | None = None
    max_parallel: int | None = None
    final_run: bool | None = None
    deploy: bool | None = None
    # Stop hopeless candidates after an epoch (pipeline/run/prune_rule.py); None: off.
    prune: bool | None = None
    # Explicit yes/no for the conversion the inspector offers (None = apply when offered).
    convert: bool | None = None
    eval_examples: int | None = Field(default=None, description="cap on held-out examples an evaluator scores")

    @field_validator("lora_ranks")
    @classmethod
    def _ranks(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None:
            for r in v:
                check_rank(r)
        return v

    @field_validator("learning_rates")
    @classmethod
    def _lrs(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is not None:
            for lr in v:
                check_learning_rate(lr)
        return v

    @model_validator(mode="after")
    def _ranges(self) -> RunSpec:
        _check_range("epochs", self.epochs, 1, MAX_EPOCHS)
        _check_range("HP-tuning samples", self.hp_samples, MIN_SAMPLES, MAX_SAMPLES)
        _check_range("parallel jobs", self.max_parallel, 1, MAX_PARALLEL)
        _check_range("evaluation examples", self.eval_examples, 1, 100_000)
        if self.candidates is not None and (self.learning_rates is not None or self.lora_ranks is not None):
            raise SpecError("give either explicit candidates or learning rates/ranks, not both")
        if self.evaluation is not None and self.evaluation.kind is EvalKind.EVALUATOR and not self.evaluation.ref:
            # "Use my own evaluator" without naming it is allowed: the bot asks which one.
            pass
        return self

    def merged(self, other: RunSpec) -> RunSpec:
        """This spec with every field ``other`` states taken from ``other`` (later words win)."""
        updates = {k: v for k, v in other.model_dump(exclude_unset=True).items() if v not in (None, ())}
        data = self.model_dump()
        data.update(updates)
        return RunSpec.model_validate(data)


def make_spec(**fields: object) -> RunSpec:
    """Build a RunSpec, turning pydantic's error into one ``SpecError`` sentence."""
    from pydantic import ValidationError

    try:
        return RunSpec.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        if err.get("type") not in ("value_error",):
            loc = ".".join(str(p) for p in err.get("loc", ()))
            msg = f"{loc}: {msg}" if loc else msg
        raise SpecError(msg) from None
