"""Typed rows of the store (what crosses the store's boundary)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from pipeline.machine import Phase
from pipeline.platforms.base import JobState
from pipeline.spec import RunSpec


class Actor(BaseModel):
    """Who did something: a Slack user, a terminal user, or the bot itself."""

    id: str
    name: str = ""
    groups: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.name or self.id


BOT = Actor(id="sftbot", name="sftbot")


class Question(BaseModel):
    """What the run asks at the input gate, with the choices a surface can offer."""

    what: str  # "base_model" | "evaluation" | "evaluator_failed"
    text: str
    choices: list[str] = Field(default_factory=list)
    number: int = 1  # the gate key is "input:<number>" so each question is decided once


class RunRecord(BaseModel):
    id: str
    number: int
    requester: str
    requester_name: str = ""
    instruction: str
    spec: RunSpec
    platform: str
    phase: Phase
    plan_version: int = 0
    question: Question | None = None
    winner: int | None = None
    error: str | None = None
    workspace: str
    estimated_usd: float | None = None
    actual_usd: float | None = None
    created_at: float
    updated_at: float


class CandidateRecord(BaseModel):
    run_id: str
    idx: int
    job_id: str
    base_model: str
    lora_rank: int
    learning_rate: float
    epochs: int
    train_samples: int
    submit_state: str = "planned"
    state: JobState = JobState.PENDING
    raw_state: str = ""
    progress: float = 0.0
    epoch: float | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    score: float | None = None
    cost_usd: float | None = None
    message: str | None = None
    model: str | None = None
    stalled: bool = False
    last_progress_at: float | None = None
    updated_at: float = 0.0

    @property
    def label(self) -> str:
        name = "final" if self.idx == 0 else f"#{self.idx}"
        return f"{name} {self.base_model} r{self.lora_rank} lr{self.learning_rate:g}"


class GateDecision(BaseModel):
    run_id: str
    gate: str
    decision: str
    actor: str
    actor_name: str = ""
    plan_version: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    decided_at: float


class AuditEvent(BaseModel):
    id: int
    run_id: str | None
    at: float
    actor: str
    actor_name: str = ""
    action: str
    plan_version: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class Resource(BaseModel):
    kind: str
    resource_id: str
    run_id: str
    name: str = ""
    state: str = "recorded"
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    updated_at: float
