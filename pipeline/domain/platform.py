"""What the engine asks of a training platform (Fireworks, local): the roles it plays, what it
offers and what it costs, and the values that cross between them.

The engine only talks to these roles. Which platform plays them is chosen by name in one place,
the composition root (``bot/``); everywhere else a platform is asked what it offers.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from pipeline.domain.catalog import BaseModelInfo, PriceTable


class PlatformError(RuntimeError):
    """A platform call failed; ``str()`` is one sentence that includes the platform's own message.

    ``retryable`` tells the runner whether trying the same call later can help.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class NotFound(PlatformError):
    """The resource does not exist (used by resume to tell "never created" from "gone")."""


class Busy(PlatformError):
    """The platform cannot take this now: a quota is exhausted or it has no capacity.

    Not the request's fault and not the run's: the caller queues the work and tries again
    later (a sweep lowers its parallelism, it never cancels what already runs).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class JobState(str, Enum):
    """Platform-neutral job states (the Fireworks mapping is in platforms/fireworks/wire.py)."""

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
    max_context_length: int | None = None  # tokens per example; None: the platform's default


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
    tracking_url: str | None = None  # the job's experiment-tracking run (W&B) when it logs to one; never its key


class LossPoint(BaseModel):
    """One metrics row: a training step and/or an end-of-epoch validation."""

    step: int | None = None
    epoch: float | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    elapsed_s: float | None = None  # wall seconds of training steps so far (the local trainer writes it)


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
    """One chat turn; tool turns carry their call ids (OpenAI chat format)."""

    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None = None  # an assistant turn that calls tools
    tool_call_id: str | None = None  # a tool turn: the call it answers


class ShapeInfo(BaseModel):
    """What a deployment of a model would run on: the platform's validated shape for it."""

    name: str  # the shape to create the deployment with
    accelerator: str  # e.g. NVIDIA_H100_80GB
    count: int  # accelerators per replica
    precision: str | None = None
    addons: bool = False  # LoRA adapters can be loaded onto it (multi-LoRA)


class AdapterStatus(BaseModel):
    """A fine-tuned adapter loaded onto a shared (multi-LoRA) deployment."""

    name: str  # the platform's name of the load
    model: str
    deployment_id: str
    ready: bool
    model_string: str  # the exact `model=` value that routes to this adapter on that deployment
    message: str | None = None


class HostedEvaluator(BaseModel):
    """An evaluator hosted on the platform, as read back before a plan uses it."""

    name: str
    display_name: str = ""
    description: str = ""
    state: str = ""
    criteria: list[str] = Field(default_factory=list)


class EvaluationJobStatus(BaseModel):
    """A hosted evaluation job: scores a dataset of answers into an output dataset."""

    job_id: str
    state: JobState
    raw_state: str = ""
    output_dataset: str  # full name of the dataset the job writes its rows to
    message: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)  # aggregate metrics (keys undocumented)


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
    """What a platform does beyond its roles' common calls (declared, never probed for).

    Whole sets of calls a platform may lack are roles that are None (``adapters``,
    ``evaluators``); these flags are behaviours within the roles it has.
    """

    generates_in_process: bool = False  # `inference.generate` answers without a deployment (the local platform)
    default_parallel: int | None = None  # jobs the platform can run at once by default (None: the plan's 6)
    deployment_shapes: bool = False  # `serving.shape` says what a deployment runs on and whether it can
    replicas: tuple[int, int] | None = None  # (min, max) replicas of the deployments it creates; None: no replicas
    # `training.metrics` holds each finished epoch's validation loss while the job still runs, so a
    # sweep can prune at epoch boundaries (the local trainer writes it; Fireworks' job status
    # carries no validation loss and its metrics file is not known to be readable mid-job).
    epoch_validation_loss: bool = False
    base_loss: bool = False  # `training.base_loss` computes an untrained base's validation loss (None otherwise)
    # Examples longer than this many tokens are cut off unless a job asks for more
    # (`JobRequest.max_context_length`); None: the platform trains on whole examples.
    training_context: int | None = None
    # A deployment is answered by an sftbot process on this machine: `sftbot endpoint N` serves it again.
    serves_here: bool = False
    exports_models: bool = False  # a fine-tuned model can be written to this machine's disk (`sftbot export`)


class PriceFacts(BaseModel):
    """What work on a platform costs, as the platform declares it."""

    table: PriceTable | None = None  # the dated prices it bills by; None: nothing is billed

    @property
    def billed(self) -> bool:
        """Work costs money (tokens, GPU-hours); False: compute on this machine, paid in time."""
        return self.table is not None


class PlatformFacts(BaseModel):
    """What a plan needs to know about a platform without calling it: its name (to say where),
    what it offers and what it costs."""

    name: str
    capabilities: Capabilities
    prices: PriceFacts
    api_key_env: str | None = None  # the environment variable a client of its deployments reads its key from

    @property
    def billed(self) -> bool:
        return self.prices.billed


# --- the roles a platform plays for the engine ------------------------------------------------
# Every create takes an id the engine derived and recorded first (pipeline/run/once.py); an
# implementation answers "already exists" with the existing resource (a get), never a second one.


class Catalog(Protocol):
    """The base models a platform can fine-tune."""

    async def list_models(self) -> list[BaseModelInfo]:
        """Tunable base models (cached by the implementation)."""
        ...

    async def model_info(self, model: str) -> BaseModelInfo | None:
        """One base model's info, or None when the platform does not know it."""
        ...


class Datasets(Protocol):
    """Datasets a person names, and the ones a run uploads."""

    async def check(self, ref: str) -> DatasetInfo:
        """Confirm a user-named dataset exists and is ready (raise PlatformError naming it)."""
        ...

    async def stage(self, ref: str, dest: Path) -> Path:
        """Bring a user-named dataset to a local file once (cached at ``dest``)."""
        ...

    async def upload(self, dataset_id: str, path: Path, *, examples: int) -> DatasetInfo:
        """Create dataset ``dataset_id`` from a local file and wait until it is ready."""
        ...


class Training(Protocol):
    """SFT jobs: created once, read back, cancelled, their loss history, their speed."""

    async def create(self, request: JobRequest) -> JobStatus:
        """Create the job with ``request.job_id``; an existing job of that id is returned as is."""
        ...

    async def get(self, job_id: str) -> JobStatus: ...

    async def cancel(self, job_id: str) -> JobStatus: ...

    async def metrics(self, job_id: str, dest: Path) -> list[LossPoint]:
        """The job's loss history; the raw file is kept at ``dest``."""
        ...

    async def throughput(self, model: str, *, sample: Path) -> Throughput | None:
        """Training speed of ``model`` for time estimates, measured on first use with a few steps on
        rows of ``sample`` and cached (None: the platform does not estimate time this way)."""
        ...

    async def base_loss(self, model: str, eval_path: Path) -> float | None:
        """The untrained base's validation loss on these rows, computed as a candidate's is;
        None where the platform cannot (``capabilities.base_loss`` says which)."""
        ...


class Serving(Protocol):
    """Deployments of one model each (live merge), and how to call them."""

    async def shape(self, model: str, *, addons: bool = False) -> ShapeInfo | None:
        """The shape a deployment of ``model`` would run on (``addons``: a multi-LoRA one); None
        when no shape fits it on this account. Only with ``capabilities.deployment_shapes``."""
        ...

    async def validate(self, model: str, shape: ShapeInfo) -> str | None:
        """Why a deployment of ``model`` on ``shape`` would be refused now, or None when it would be
        accepted; creates nothing and costs nothing. Only with ``capabilities.deployment_shapes``."""
        ...

    async def create(self, deployment_id: str, model: str) -> DeploymentStatus:
        """Deploy ``model`` as ``deployment_id``; existing -> returned as is."""
        ...

    async def get(self, deployment_id: str) -> DeploymentStatus: ...

    async def delete(self, deployment_id: str) -> DeploymentStatus:
        """Tear down a deployment this bot created; returns the state read back."""
        ...

    async def scale_to_zero(self, deployment_id: str) -> DeploymentStatus:
        """Stop a deployment this bot created from billing but keep it: on Fireworks no replica
        and no GPU quota is held until its maximum is raised again; locally the model loads again
        on the next request."""
        ...

    def snippet(self, deployment: DeploymentStatus, *, system_prompt: str | None = None) -> Snippet:
        """A copy-paste client snippet that calls the deployment (with the task's system prompt)."""
        ...


class Adapters(Protocol):
    """Many fine-tuned adapters on one deployment of their base (multi-LoRA)."""

    async def create_shared(self, deployment_id: str, base_model: str, *, shape: str) -> DeploymentStatus:
        """A deployment of ``base_model`` that adapters can be loaded onto; existing -> returned as is."""
        ...

    async def load(self, model: str, deployment_id: str, *, label: str) -> AdapterStatus:
        """Load a fine-tuned adapter onto a shared deployment; an existing load is returned as is."""
        ...

    async def find(self, model: str, deployment_id: str) -> AdapterStatus | None:
        """The load of ``model`` on ``deployment_id``, or None when it was never made."""
        ...


class Inference(Protocol):
    """Answers from a model."""

    async def chat(
        self,
        model_string: str,
        messages: list[ChatMessage],
        *,
        max_tokens: int = 256,
        tools: list[dict[str, Any]] | None = None,
        reasoning_effort: str | None = None,
    ) -> str:
        """One greedy chat completion (temperature 0); ``tools`` are the row's tool definitions,
        ``reasoning_effort`` ("none" switches thinking off) is sent only when given."""
        ...

    async def generate(self, model: str, prompts: list[list[ChatMessage]], *, max_tokens: int) -> list[str]:
        """Greedy answers without a deployment; only with ``capabilities.generates_in_process``."""
        ...


class Evaluators(Protocol):
    """Evaluators hosted on the platform, and the jobs that score a dataset of answers with one."""

    async def check(self, ref: str) -> HostedEvaluator:
        """A hosted evaluator, checked to exist and be usable (raises PlatformError naming it)."""
        ...

    async def create_job(self, job_id: str, *, evaluator: str, input_dataset: str, output_dataset: str) -> EvaluationJobStatus:
        """Score ``input_dataset`` with a hosted evaluator; an existing job of that id is returned as is."""
        ...

    async def get_job(self, job_id: str) -> EvaluationJobStatus: ...


@runtime_checkable
class Platform(Protocol):
    """A training platform: the roles it plays for the engine, what it offers and what it costs.

    ``adapters`` and ``evaluators`` are None where the platform has none (the local one): a
    step asks "does it serve adapters?" by looking, never by the platform's name.
    """

    @property
    def facts(self) -> PlatformFacts: ...

    @property
    def models(self) -> Catalog: ...

    @property
    def datasets(self) -> Datasets: ...

    @property
    def training(self) -> Training: ...

    @property
    def serving(self) -> Serving: ...

    @property
    def inference(self) -> Inference: ...

    @property
    def adapters(self) -> Adapters | None: ...

    @property
    def evaluators(self) -> Evaluators | None: ...

    async def ready(self, *, deploys: bool) -> None:
        """Raise PlatformError, one line with its fix, when a run could not start here now: the
        credentials and account (one cheap authenticated call), this machine's serving port when
        the run ``deploys``. Spends nothing and creates nothing (the preflight asks it)."""
        ...

    async def close(self) -> None: ...
