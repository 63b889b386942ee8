"""The training-platform interface every platform implements (Fireworks, local).

The runner only talks to this. Every create call takes an id the runner derived and
recorded first; implementations must treat "already exists" as success and return the
existing resource (a get), never create a second one.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from pipeline.catalog import BaseModelInfo


class PlatformError(RuntimeError):
    """A platform call failed; ``str()`` is one sentence that includes the platform's own message.

    ``retryable`` tells the runner whether trying the same call later can help.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class NotFound(PlatformError):
    """The resource does not exist (used by resume to tell "never created" from "gone")."""


class JobState(str, Enum):
    """Platform-neutral job states (the Fireworks mapping is in platforms/fireworks.py)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


class DatasetInfo(BaseModel):
    """A dataset on the platform: its id, full name, state and example count when known."""

    id: str
    name: str
    ready: bool
    examples: int | None = None


class JobRequest(BaseModel):
    """Everything needed to create one SFT job; ``job_id`` is derived from the run."""

    job_id: str
    base_model: str
    dataset: str  # full dataset name as returned by upload_dataset
    eval_dataset: str | None
    epochs: int
    lora_rank: int
    learning_rate: float
    output_model: str  # model id for the result (same as job_id by convention)
    display_name: str = ""


class JobStatus(BaseModel):
    """A job as last seen: state, progress and the latest losses."""

    job_id: str
    state: JobState
    raw_state: str = ""  # the platform's own state name, for the report and debugging
    progress: float = 0.0  # percent 0-100
    epoch: float | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    message: str | None = None  # the platform's error message on failure
    cost_usd: float | None = None  # the platform's own estimate of the job's cost
    model: str | None = None  # full name of the output model once completed


class LossPoint(BaseModel):
    """One metrics row: a training step and/or an end-of-epoch validation."""

    step: int | None = None
    epoch: float | None = None
    train_loss: float | None = None
    val_loss: float | None = None


class DeploymentState(str, Enum):
    CREATING = "creating"
    READY = "ready"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"


class DeploymentStatus(BaseModel):
    """A deployment: its id, state, and how to call it."""

    deployment_id: str
    state: DeploymentState
    model: str  # the deployed model's full name
    endpoint: str  # base URL of the OpenAI-compatible API
    model_string: str  # the exact `model=` value a client sends
    message: str | None = None


class ChatMessage(BaseModel):
    role: str
    content: str


class Snippet(BaseModel):
    """A copy-paste client snippet for the deployed model."""

    language: str = "python"
    code: str
    env: list[str] = Field(default_factory=list)  # environment variables the snippet reads


class Throughput(BaseModel):
    """Training speed of a base model measured on one machine, for time estimates.

    Speeds are in the planner's own token estimate (pipeline/dataset/tokens.py) per second,
    so a plan's estimated tokens divided by them give seconds without a tokenizer. The range
    is the spread of the timed steps; other work on the machine slows every job beyond it.
    """

    model: str
    machine: str  # what it was measured on: CPU model and cores, or the GPU
    device: str
    precision: str
    batch_size: int
    tokens_per_second_low: float
    tokens_per_second_high: float
    startup_seconds: float  # process start to the first step: imports, model load, tokenisation
    decode_seconds: float | None = None  # one greedy decoding step for a batch of prompts
    steps: int  # timed training steps behind the range
    measured_at: str
    measure_seconds: float | None = None  # what measuring took (the first plan pays it once)
    cached: bool = False  # read from the cache rather than measured for this plan


class Capabilities(BaseModel):
    """What a platform can do beyond the common calls (declared, never probed for)."""

    generates_in_process: bool = False  # `generate` answers without a deployment (the local platform)
    default_parallel: int | None = None  # jobs the platform can run at once by default (None: the plan's 6)


@runtime_checkable
class Platform(Protocol):
    """What a training platform offers the runner. All ids are chosen by the caller."""

    name: str
    capabilities: Capabilities

    async def list_models(self) -> list[BaseModelInfo]:
        """Tunable base models (cached by the implementation)."""
        ...

    async def model_info(self, model: str) -> BaseModelInfo | None:
        """One base model's info, or None when the platform does not know it."""
        ...

    async def check_dataset(self, ref: str) -> DatasetInfo:
        """Confirm a user-named dataset exists and is ready (raise PlatformError naming it)."""
        ...

    async def stage_dataset(self, ref: str, dest: Path) -> Path:
        """Bring a user-named dataset to a local file once (cached at ``dest``)."""
        ...

    async def upload_dataset(self, dataset_id: str, path: Path, *, examples: int) -> DatasetInfo:
        """Create dataset ``dataset_id`` from a local file and wait until it is ready."""
        ...

    async def create_job(self, request: JobRequest) -> JobStatus:
        """Create the job with ``request.job_id``; an existing job of that id is returned as is."""
        ...

    async def get_job(self, job_id: str) -> JobStatus: ...

    async def cancel_job(self, job_id: str) -> JobStatus: ...

    async def job_metrics(self, job_id: str, dest: Path) -> list[LossPoint]:
        """The job's loss history; the raw file is kept at ``dest``."""
        ...

    async def create_deployment(self, deployment_id: str, model: str) -> DeploymentStatus:
        """Deploy ``model`` (live merge) as ``deployment_id``; existing -> returned as is."""
        ...

    async def get_deployment(self, deployment_id: str) -> DeploymentStatus: ...

    async def delete_deployment(self, deployment_id: str) -> DeploymentStatus:
        """Tear down a deployment this bot created; returns the state read back."""
        ...

    async def chat(self, model_string: str, messages: list[ChatMessage], *, max_tokens: int = 256) -> str:
        """One greedy chat completion (temperature 0)."""
        ...

    async def generate(self, model: str, prompts: list[list[ChatMessage]], *, max_tokens: int) -> list[str]:
        """Greedy answers without a deployment; only when ``capabilities.generates_in_process``."""
        ...

    async def throughput(self, model: str, *, sample: Path) -> Throughput | None:
        """Training speed of ``model`` on this platform for time estimates, measured on first use
        with a few steps on rows of ``sample`` and cached (None: the platform does not estimate time)."""
        ...

    def snippet(self, deployment: DeploymentStatus) -> Snippet:
        """A copy-paste client snippet that calls the deployment."""
        ...

    async def close(self) -> None: ...
