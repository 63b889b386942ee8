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

GateKind = Literal["input", "plan", "promotion"]
_KEY = re.compile(r"input:([1-9][0-9]*)|plan:v([1-9][0-9]*)|promotion")


@dataclass(frozen=True)
class GateKey:
    """``input:<question number>``, ``plan:v<version>`` or ``promotion``."""

    kind: GateKind
    number: int | None = None

    @staticmethod
    def input(number: int) -> GateKey:
        return GateKey("input", number)

    @staticmethod
    def plan(version: int) -> GateKey:
        return GateKey("plan", version)

    @staticmethod
    def parse(text: str) -> GateKey:
        m = _KEY.fullmatch(text)
        if m is None:
            raise ValueError(f"not a gate key: {text[:40]!r}")
        if m.group(1):
            return GateKey.input(int(m.group(1)))
        if m.group(2):
            return GateKey.plan(int(m.group(2)))
        return PROMOTION

    def __str__(self) -> str:
        if self.kind == "input":
            return f"input:{self.number}"
        if self.kind == "plan":
            return f"plan:v{self.number}"
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


def _coerce(value: object) -> GateKey:
    return value if isinstance(value, GateKey) else GateKey.parse(str(value))


# A GateKey inside pydantic models: stored and sent as its text form.
GateKeyField = Annotated[
    GateKey, PlainValidator(_coerce), PlainSerializer(str, return_type=str), WithJsonSchema({"type": "string"})
]
