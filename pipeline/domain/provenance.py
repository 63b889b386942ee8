"""Provenance as a type: which platform resource a run made, in which state, and what it costs.

Every resource a run creates is a row keyed by (kind, id). Its state moves only through
``check_move``, against one lifecycle table per kind, the way optuna's
``set_trial_state_values`` refuses to move a finished trial: an illegal move raises instead
of silently overwriting what the run knew (a deleted deployment that "becomes ready" again
would bill in the ledger forever). The same state again is always allowed: a resumed step
records what it already recorded.

Costs are typed fields, never entries of a free-form dict: a deployment's rate (what it bills
per hour while up, from its shape and the dated price table) and a job's estimate as the
platform reported it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class IllegalMove(RuntimeError):
    """A state change the lifecycle does not allow (a bug in the caller, never bad input)."""


class ResourceKind(str, Enum):
    """What a provenance row is about."""

    DATASET = "dataset"
    JOB = "job"  # a training job (a sweep candidate or the final run)
    MODEL = "model"  # a job's output model: made by the platform, not by a create call of ours
    DEPLOYMENT = "deployment"
    ADAPTER = "adapter"  # a fine-tuned adapter loaded onto a shared (multi-LoRA) deployment
    EVALUATION_JOB = "evaluation_job"  # a hosted evaluator scoring a dataset of answers
    EXPORT = "export"  # a model written to this machine's disk (`sftbot export`)

    @property
    def created_by_us(self) -> bool:
        """Made by a create call of this bot: recorded before the call, through ``create_once``."""
        return self in _CREATED


class ResourceState(str, Enum):
    """Every state a provenance row can be in, across kinds (the lifecycle says which apply)."""

    RECORDED = "recorded"  # the id is written; the create call has not answered (or never went out)
    QUEUED = "queued"  # a job the platform would not start yet (quota, capacity): created again later
    CREATED = "created"  # the platform answered the create call
    CREATING = "creating"  # a deployment read back while it still starts
    LOADING = "loading"  # an adapter load the platform accepted, not serving yet
    READY = "ready"
    PENDING = "pending"  # an evaluation job waiting to run
    RUNNING = "running"
    PRUNING = "pruning"  # the decision to stop a hopeless job is recorded; its cancel may not be sent
    CANCEL_SENT = "cancel_sent"  # the pruning cancel reached the platform
    PRUNE_REFUSED = "prune_refused"  # the platform refused to cancel it: it trains on, never pruned again
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PRUNED = "pruned"
    DELETING = "deleting"
    DELETE_FAILED = "delete_failed"  # a delete this bot asked for failed (the error column says why): still up
    DELETED = "deleted"
    WRITTEN = "written"  # an export on disk

    @property
    def gone(self) -> bool:
        """Exists no more on the platform (or is on its way out): nothing of it bills."""
        return self in (ResourceState.DELETING, ResourceState.DELETED)

    @property
    def ends(self) -> bool:
        """Takes the resource out of service: whatever it billed stops at this move."""
        return self.gone or self in (ResourceState.FAILED, ResourceState.CANCELLED, ResourceState.PRUNED, ResourceState.COMPLETED)

    @staticmethod
    def of(state: Enum) -> ResourceState:
        """The provenance state of a platform or candidate state of the same name."""
        return ResourceState(state.value)


_CREATED = frozenset(
    {ResourceKind.DATASET, ResourceKind.JOB, ResourceKind.DEPLOYMENT, ResourceKind.ADAPTER, ResourceKind.EVALUATION_JOB}
)

S = ResourceState
_JOB_END = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})
_LIVE_DEPLOYMENT = frozenset({S.CREATING, S.READY, S.FAILED, S.DELETING, S.DELETE_FAILED, S.DELETED})
_EVAL_JOB = frozenset({S.PENDING, S.RUNNING, *_JOB_END})

# kind -> state -> where it may go next; the ``None`` entry lists the states a row may start in.
# A job is created again after the platform refused it (QUEUED -> RECORDED); a job recorded but
# never marked created (a crash between the two) is read back and may land in any state.
_LIFECYCLE: dict[ResourceKind, Mapping[ResourceState | None, frozenset[ResourceState]]] = {
    ResourceKind.JOB: {
        None: frozenset({S.RECORDED, S.QUEUED}),
        S.QUEUED: frozenset({S.RECORDED}),
        S.RECORDED: frozenset({S.QUEUED, S.CREATED, S.PRUNING, S.PRUNED, *_JOB_END}),
        S.CREATED: frozenset({S.PRUNING, S.PRUNED, *_JOB_END}),
        S.PRUNING: frozenset({S.CANCEL_SENT, S.PRUNE_REFUSED, S.PRUNED, S.COMPLETED}),
        S.CANCEL_SENT: frozenset({S.PRUNED, S.COMPLETED}),
        S.PRUNE_REFUSED: _JOB_END,
    },
    ResourceKind.DATASET: {
        None: frozenset({S.RECORDED}),
        S.RECORDED: frozenset({S.CREATED, S.READY}),
        S.CREATED: frozenset({S.READY}),
    },
    ResourceKind.DEPLOYMENT: {
        None: frozenset({S.RECORDED}),
        # A deployment whose create never answered can still be deleted (or found gone).
        S.RECORDED: frozenset({S.CREATED, S.DELETE_FAILED, S.DELETED}),
        S.CREATED: _LIVE_DEPLOYMENT,
        S.CREATING: _LIVE_DEPLOYMENT,
        S.READY: _LIVE_DEPLOYMENT,
        S.FAILED: _LIVE_DEPLOYMENT,
        S.DELETE_FAILED: _LIVE_DEPLOYMENT,
        S.DELETING: frozenset({S.DELETED, S.DELETE_FAILED}),
    },
    ResourceKind.ADAPTER: {
        None: frozenset({S.RECORDED}),
        S.RECORDED: frozenset({S.LOADING, S.READY}),
        S.LOADING: frozenset({S.READY}),
    },
    ResourceKind.EVALUATION_JOB: {
        None: frozenset({S.RECORDED}),
        S.RECORDED: frozenset({S.CREATED, *_EVAL_JOB}),
        S.CREATED: _EVAL_JOB,
        S.PENDING: _EVAL_JOB,
        S.RUNNING: _EVAL_JOB,
    },
    ResourceKind.MODEL: {None: frozenset({S.READY})},
    ResourceKind.EXPORT: {None: frozenset({S.WRITTEN})},
}


def check_move(kind: ResourceKind, current: ResourceState | None, to: ResourceState) -> None:
    """Raise IllegalMove unless a ``kind`` row in ``current`` (None: no row yet) may move to ``to``."""
    if current is to:
        return
    allowed = _LIFECYCLE[kind].get(current, frozenset())
    if to not in allowed:
        where = "a new row" if current is None else current.value
        raise IllegalMove(f"a {kind.value} cannot move from {where} to {to.value}")


class Ref(BaseModel, frozen=True):
    """Which resource: its kind and the id this bot derived for it (or the platform's name)."""

    kind: ResourceKind
    id: str

    def checkpoint(self, state: ResourceState) -> str:
        """The name a crash test stops the process at once this resource reached ``state``."""
        return f"{self.kind.value}:{self.id}:{state.value}"


class DeploymentRate(BaseModel):
    """What a deployment bills per hour while a replica is up, and what that figure stands on."""

    usd_per_hour: float | None = None  # None: not known (a GPU type without a dated price)
    gpu_count: int | None = None  # accelerators per replica
    accelerator: str | None = None  # e.g. NVIDIA_H100_80GB
    priced_at: str | None = None  # the date of the price table the rate comes from


class Change(BaseModel):
    """What a move records beside the state; a field left None keeps what the row has."""

    name: str | None = None  # the platform's full name for it
    error: str | None = None  # why the move is to a failure state (the next move clears it)
    rate: DeploymentRate | None = None
    estimated_usd: float | None = None  # a job's cost as the platform estimates it
    kept_at: float | None = None  # a person chose to keep the deployment up (a new idle period)
    idle_asked_at: float | None = None  # the idle guard asked about it
    scaled_to_zero_at: float | None = None  # scaled to zero: no replica bills since then
    # What it is for, for people and the report (model, shape, evaluator, the endpoint it answers
    # on): merged into what the row has. Never money: that is in the typed fields above.
    details: dict[str, Any] = Field(default_factory=dict)
