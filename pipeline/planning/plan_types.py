"""The values a plan is made of: jobs, cost lines, the estimate, where each value came from.

A leaf module: planning and costing both use these types, neither imports the other's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field, model_validator

from pipeline.domain.catalog import BaseModelInfo, find_model
from pipeline.domain.platform import ShapeInfo, Throughput
from pipeline.domain.slots import FINAL, Slot, SlotField
from pipeline.domain.spec import Evaluation, RunSpec
from pipeline.evaluation.eval_types import EvaluatorInfo


class Source(str, Enum):
    """Where a plan value came from."""

    DEFAULT = "default"
    USER = "user"


class Duration(BaseModel):
    """How long something is expected to take: a range in seconds and how it was estimated.

    Filled per job and in total: the local platform from a throughput measured on this
    machine, Fireworks from a dated table of assumptions (pipeline/planning/duration.py).
    """

    low_seconds: float
    high_seconds: float
    basis: str  # one sentence: what the range rests on

    @property
    def middle_seconds(self) -> float:
        return (self.low_seconds + self.high_seconds) / 2

    def __add__(self, other: Duration) -> Duration:
        return Duration(
            low_seconds=self.low_seconds + other.low_seconds,
            high_seconds=self.high_seconds + other.high_seconds,
            basis=self.basis,
        )


class PlannedJob(BaseModel):
    """One training job in the plan: a sweep candidate or the final run."""

    slot: SlotField
    base_model: str
    lora_rank: int
    learning_rate: float
    epochs: int
    train_samples: int
    train_tokens: int  # estimated tokens in its training data (one epoch)
    max_context_length: int | None = None  # sent only when the data needs more than the job's default
    duration: Duration | None = None  # expected wall time of the job, when the platform can estimate it

    @model_validator(mode="before")
    @classmethod
    def _legacy_index(cls, data: Any) -> Any:
        # Plans stored before slots numbered candidates from 1 and the final run 0.
        if isinstance(data, dict) and "slot" not in data and "index" in data:
            index = int(data["index"])
            data = {k: v for k, v in data.items() if k != "index"}
            data["slot"] = FINAL if index == 0 else Slot.candidate(index)
        return data

    @property
    def label(self) -> str:
        return f"{self.base_model} r{self.lora_rank} lr{self.learning_rate:g}"


class CostLine(BaseModel):
    """One line of the breakdown; ``usd`` is None when it cannot be known."""

    phase: str  # "training" | "inference"
    label: str
    usd: float | None
    detail: str


class CostEstimate(BaseModel):
    """The plan's cost: three headline numbers, a range and the dated source."""

    training_usd: float | None
    inference_usd: float | None
    total_usd: float | None
    low_usd: float | None
    high_usd: float | None
    prices_as_of: str
    price_source: str
    billed_tokens: int
    compute_minutes: float | None = None  # local platform: estimated training minutes
    # What the deployment bills per hour while a replica is up (None: no deployment, or local).
    deployment_usd_per_hour: float | None = None
    calibration: str | None = None  # how the range was made: the default, or what recent runs showed
    lines: list[CostLine] = Field(default_factory=list)
    unknown: list[str] = Field(default_factory=list)

    # The header's total is exactly training + evaluation + deployment's first period: the plan
    # shows each as its own field, so a reader can add them up (tests/pipeline/planning).
    def _inference(self, *, deployment: bool) -> list[CostLine]:
        return [ln for ln in self.lines if ln.phase == "inference" and ln.label.startswith("deployment") is deployment]

    @property
    def evaluation_usd(self) -> float | None:
        """The short-lived deployments that produce evaluation outputs (0 when there are none)."""
        usds = [ln.usd for ln in self._inference(deployment=False)]
        return None if None in usds else round(sum(u for u in usds if u is not None), 6)

    @property
    def deployment_first_usd(self) -> float | None:
        """The shipped deployment's first period, the part of an open-ended rate in the total."""
        usds = [ln.usd for ln in self._inference(deployment=True)]
        return None if None in usds else round(sum(u for u in usds if u is not None), 6)


class Plan(BaseModel):
    """A resolved, costed plan. A revision yields a new plan with ``version + 1``."""

    version: int = 1
    platform: str  # its name, to say where it runs
    billed: bool = True  # the platform bills money; False: free, the cost is time on this machine
    spec: RunSpec
    dataset: str
    eval_dataset: str | None
    samples: int
    tokens: int
    train_samples: int
    test_samples: int
    hp_samples: int | None  # size of the HP-tuning subsample, None when not subsampled
    candidates: list[PlannedJob]
    final: PlannedJob | None
    max_parallel: int
    evaluation: Evaluation
    eval_examples: int
    deploy: bool
    prune: bool = False  # stop hopeless candidates at epoch boundaries (pipeline/run/prune_rule.py)
    sources: dict[str, Source] = Field(default_factory=dict)
    cost: CostEstimate
    # The whole run, approval to deployed model: sweep (in waves), final run, evaluation,
    # deployment; None when it cannot be told.
    duration: Duration | None = None
    warnings: list[str] = Field(default_factory=list)
    evaluator: EvaluatorInfo | None = None  # set when the evaluation strategy needs one
    fallback_note: str | None = None  # why the evaluation asked for fell back to validation loss
    author: str | None = None  # who this version comes from: the requester, or who revised/answered last
    shapes: dict[str, ShapeInfo] = Field(default_factory=dict)  # base model -> what its deployment runs on
    # How the base model is set against the tuned ones on the held-out prompts (or why not).
    baseline: str | None = None
    serving_note: str | None = None  # what keeps billing once deployed, and how it scales (the platform's words)


Shapes = Mapping[str, ShapeInfo | None]


@dataclass(frozen=True)
class Lookups:
    """What the planner's read-only lookups found (pipeline/planning/planner.py asks them).

    ``shapes`` / ``addon_shapes``: what the platform would deploy each base on (live merge /
    multi-LoRA), for pricing; None when not looked up (those lines say "unknown").
    ``throughput`` (per base model, measured by the platform) gives every job and the whole run a
    duration. ``answer_tokens`` is the evaluator's answer budget per held-out example;
    ``parallel`` the bot's own default for jobs at once (None: the platform's).
    """

    model_info: Callable[[str], BaseModelInfo | None] = find_model
    shapes: Shapes | None = None
    addon_shapes: Shapes | None = None
    throughput: Mapping[str, Throughput] | None = None
    answer_tokens: int = 512
    parallel: int | None = None


@dataclass(frozen=True)
class Work:
    """What a plan will do, as far as its cost and time go."""

    candidates: Sequence[PlannedJob]
    final: PlannedJob | None
    evaluation: Evaluation
    eval_examples: int  # held-out examples each model answers (0 when judged by loss)
    deploy: bool

    @property
    def jobs(self) -> list[PlannedJob]:
        return [*self.candidates, *([self.final] if self.final else [])]

    @property
    def bases(self) -> list[str]:
        return list(dict.fromkeys(c.base_model for c in self.candidates))


__all__ = ["FINAL", "CostEstimate", "CostLine", "Duration", "Lookups", "Plan", "PlannedJob", "Shapes", "Slot", "Source", "Work"]
