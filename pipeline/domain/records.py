"""Typed rows of the store (what crosses the store's boundary)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from pipeline.domain.gates import BudgetRequest, GateKeyField, Question
from pipeline.domain.machine import Phase
from pipeline.domain.provenance import DeploymentRate, Ref, ResourceKind, ResourceState
from pipeline.domain.slots import CandidateState, SlotField
from pipeline.domain.spec import RunSpec


class Actor(BaseModel):
    """Who did something: a Slack user, a terminal user, or the bot itself."""

    id: str
    name: str = ""
    groups: tuple[str, ...] = ()
    local: bool = False  # the operator at the terminal (not reachable from Slack)

    @property
    def label(self) -> str:
        return self.name or self.id


BOT = Actor(id="sftbot", name="sftbot")


class NewRun(BaseModel):
    """What a run starts from: who asked for what, on which platform, where its files go."""

    requester: Actor
    instruction: str
    spec: RunSpec
    platform: str
    billed: bool = True  # the platform bills money (the local one: time on this machine)
    workspace_root: str
    channel: str | None = None


class RunRecord(BaseModel):
    id: str
    number: int
    requester: str
    requester_name: str = ""
    instruction: str
    spec: RunSpec
    platform: str  # its name, to say where it ran (what it offers and costs is asked of the platform)
    billed: bool = True  # the platform bills money: the run has a spend, a cap and budget gates
    phase: Phase
    channel: str | None = None  # where it was asked for (a Slack channel id); None: the terminal
    plan_version: int = 0
    question: Question | None = None
    promoted: SlotField | None = None
    error: str | None = None
    evaluator_error: str | None = None  # the evaluator failed after approval: ranked by validation loss
    workspace: str
    estimated_usd: float | None = None
    actual_usd: float | None = None
    approved_usd: float | None = None  # approved at the plan gate, raised at budget gates
    budget: BudgetRequest | None = None  # the open budget gate's request
    created_at: float
    updated_at: float


class CandidateRecord(BaseModel):
    """One training job of a run (a sweep candidate or the final run) as last seen."""

    run_id: str
    slot: SlotField
    job_id: str
    base_model: str
    lora_rank: int
    learning_rate: float
    epochs: int
    train_samples: int
    state: CandidateState = CandidateState.WAITING
    raw_state: str = ""
    progress: float = 0.0
    epoch: float | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    score: float | None = None
    cost_usd: float | None = None
    message: str | None = None
    model: str | None = None
    note: str | None = None  # for people: waiting for quota, no validation loss found, ...
    eval_failures: int = 0  # held-out answers that failed (scored 0)
    stalled: bool = False
    last_progress_at: float | None = None
    updated_at: float = 0.0
    started_at: float | None = None  # first seen running (epoch seconds): training time starts here, not at submit
    finished_at: float | None = None  # first seen finished

    @property
    def label(self) -> str:
        return f"{self.slot.name} {self.base_model} r{self.lora_rank} lr{self.learning_rate:g}"


class GateDecision(BaseModel):
    run_id: str
    gate: GateKeyField
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
    """A platform resource of a run (or an export) as provenance has it: pipeline/domain/provenance.py."""

    kind: ResourceKind
    resource_id: str
    run_id: str
    name: str = ""
    state: ResourceState = ResourceState.RECORDED
    error: str | None = None  # why the last move went wrong (a failed delete), never in the state
    rate: DeploymentRate | None = None  # deployments: what they bill per hour while up
    estimated_usd: float | None = None  # jobs: the platform's own estimate
    kept_at: float | None = None
    idle_asked_at: float | None = None
    scaled_to_zero_at: float | None = None
    details: dict[str, Any] = Field(default_factory=dict)  # what it is for, for people and the report
    created_at: float
    updated_at: float
    ended_at: float | None = None  # when it first went out of service (deleted, failed, ended): billing stops

    @property
    def ref(self) -> Ref:
        return Ref(kind=self.kind, id=self.resource_id)

    @property
    def usd_per_hour(self) -> float | None:
        return self.rate.usd_per_hour if self.rate is not None else None
