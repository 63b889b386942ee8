"""The gates of a run and the questions it asks: typed keys, formatted and parsed only here.

A gate is decided once: its key is the primary key of its decision row, so the first
decision wins and a second click finds the first one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainSerializer, PlainValidator, WithJsonSchema, model_validator

from pipeline.domain.spec import EvalKind, Evaluation, RunSpec, SpecError

GateKind = Literal["input", "plan", "promotion", "budget"]
_KEY = re.compile(r"input:([1-9][0-9]*)|plan:v([1-9][0-9]*)|promotion|budget:([1-9][0-9]*)")


@dataclass(frozen=True)
class GateKey:
    """``input:<question number>``, ``plan:v<version>``, ``promotion`` or ``budget:<request number>``."""

    kind: GateKind
    number: int | None = None

    @staticmethod
    def input(number: int) -> GateKey:
        return GateKey("input", number)

    @staticmethod
    def plan(version: int) -> GateKey:
        return GateKey("plan", version)

    @staticmethod
    def budget(number: int) -> GateKey:
        return GateKey("budget", number)

    @staticmethod
    def parse(text: str) -> GateKey:
        m = _KEY.fullmatch(text)
        if m is None:
            raise ValueError(f"not a gate key: {text[:40]!r}")
        if m.group(1):
            return GateKey.input(int(m.group(1)))
        if m.group(2):
            return GateKey.plan(int(m.group(2)))
        if m.group(3):
            return GateKey.budget(int(m.group(3)))
        return PROMOTION

    def __str__(self) -> str:
        if self.kind == "input":
            return f"input:{self.number}"
        if self.kind == "plan":
            return f"plan:v{self.number}"
        if self.kind == "budget":
            return f"budget:{self.number}"
        return "promotion"


PROMOTION = GateKey("promotion")


class QuestionKind(str, Enum):
    """What a run can ask before it has a plan."""

    DATASET = "dataset"
    BASE_MODEL = "base_model"
    EVALUATION = "evaluation"  # how to judge candidates: loss, your evaluator, or a generated one
    EVALUATOR_FAILED = "evaluator_failed"  # your evaluator failed its check: continue with loss, or cancel
    # After evaluation, before deploy: the tuned answers are the base's (adapter not loaded?):
    # deploy anyway, or cancel. Spends money like a promotion, so the same people decide.
    IDENTICAL_OUTPUTS = "identical_outputs"

    @property
    def blocks_deploy(self) -> bool:
        return self is QuestionKind.IDENTICAL_OUTPUTS

    @property
    def about_evaluation(self) -> bool:
        return self in (QuestionKind.EVALUATION, QuestionKind.EVALUATOR_FAILED)


class Question(BaseModel):
    """What the run asks at the input gate, with the choices a surface can offer."""

    kind: QuestionKind
    text: str
    choices: list[str] = Field(default_factory=list)
    number: int = 1  # its gate is input:<number>, so each question is decided once
    # Said only to one person: an evaluator's own error text goes to whoever supplied the
    # evaluator (it may echo what the evaluator saw), never to the whole channel.
    detail: str | None = None
    detail_for: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_what(cls, data: object) -> object:
        # Questions stored before QuestionKind named their kind "what".
        if isinstance(data, dict) and "kind" not in data and "what" in data:
            return {**{k: v for k, v in data.items() if k != "what"}, "kind": data["what"]}
        return data

    @property
    def gate(self) -> GateKey:
        return GateKey.input(self.number)


class BudgetStep(str, Enum):
    """A paid step the cap can hold back (running jobs are never stopped by it)."""

    FINAL = "final"  # the final run's training job
    DEPLOY = "deploy"  # the production deployment

    @property
    def label(self) -> str:
        return {"final": "the final run", "deploy": "the deployment"}[self.value]


class BudgetRequest(BaseModel):
    """The budget gate's question: a paid step would take the run past its cap.

    ``more_usd`` is what approving adds to the approved amount: enough that what was spent
    plus this step is approved (the cap then keeps its margin on top)."""

    number: int = 1  # its gate is budget:<number>, so each request is decided once
    step: BudgetStep
    held: str  # the phase that did not start it (its value): approving more goes back there
    spent_usd: float
    next_usd: float
    approved_usd: float
    cap_usd: float
    margin: float
    more_usd: float
    overrun: float | None = None  # this run's jobs' actual / estimated cost so far
    # The deployment step: its rate. ``next_usd`` is only its first period; it bills on at this
    # rate until deleted or scaled to zero, and approving approves the rate and that period.
    usd_per_hour: float | None = None

    @property
    def gate(self) -> GateKey:
        return GateKey.budget(self.number)


def _coerce(value: object) -> GateKey:
    return value if isinstance(value, GateKey) else GateKey.parse(str(value))


# A GateKey inside pydantic models: stored and sent as its text form.
GateKeyField = Annotated[
    GateKey, PlainValidator(_coerce), PlainSerializer(str, return_type=str), WithJsonSchema({"type": "string"})
]


def apply_answer(spec: RunSpec, kind: QuestionKind, answer: str) -> RunSpec:
    """The spec with a question's answer filled in."""
    text = answer.strip()
    if kind.blocks_deploy:
        if text.lower() != "deploy anyway":
            raise SpecError(f"{text[:40]!r} does not decide a blocked deploy: answer deploy anyway, or cancel the run")
        return spec
    if kind is QuestionKind.BASE_MODEL:
        return spec.model_copy(update={"base_models": (text,)})
    if kind is QuestionKind.DATASET:
        return spec.model_copy(update={"dataset": text})
    if text.lower().startswith("evaluator:"):
        return spec.model_copy(update={"evaluation": Evaluation(kind=EvalKind.EVALUATOR, ref=text.split(":", 1)[1].strip())})
    try:
        return spec.model_copy(update={"evaluation": Evaluation(kind=EvalKind(text.lower()))})
    except ValueError:
        raise SpecError(f"{text[:40]!r} is not a way to judge candidates: answer loss, evaluator or generate") from None
