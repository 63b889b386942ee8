"""An in-process fake platform for fast engine tests (no HTTP).

The end-to-end and crash tests use the fake Fireworks *server* through the real SDK; this
fake is for tests about the engine's own logic (gates, authorization, events), where an
HTTP round trip adds nothing. Jobs complete after a configurable number of polls.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.domain.catalog import BaseModelInfo, find_model, known_models, price_table
from pipeline.domain.platform import (
    Capabilities,
    ChatMessage,
    DatasetInfo,
    DeploymentState,
    DeploymentStatus,
    JobRequest,
    JobState,
    JobStatus,
    LossPoint,
    NotFound,
    PlatformError,
    PlatformFacts,
    PriceFacts,
    ShapeInfo,
    Snippet,
    Throughput,
)


class MemoryPlatform:
    """Jobs finish after ``polls_to_finish`` gets; loss depends on lr so there is a clear winner.

    One object holds the state the tests look at; each role is a thin view onto it.
    """

    adapters = None
    evaluators = None

    def __init__(self, *, polls_to_finish: int = 2, fail_jobs: set[str] | None = None) -> None:
        self.polls_to_finish = polls_to_finish
        self.fail_jobs = fail_jobs or set()
        self.jobs: dict[str, JobRequest] = {}
        self.polls: Counter[str] = Counter()
        self.cancelled: set[str] = set()
        self.uploaded: dict[str, Path] = {}
        self.deployments: dict[str, str] = {}
        self.scaled_to_zero: list[str] = []  # deployments asked to scale to zero, in order
        self.base_val_loss: float | None = None  # what base_loss answers (None: cannot, like Fireworks)
        self.job_cost_usd = 0.05  # what each job reports as its cost (the money guard's tests raise it)
        self.creates: Counter[str] = Counter()  # resource id -> create calls that made something
        self.max_active = 0
        self.hold = False  # while True, jobs never finish (for cancel tests)
        self.not_ready: str | None = None  # what ready() refuses with (a preflight's platform half)
        self.finish_on_cancel: set[str] = set()  # these complete just as a cancel arrives
        # For evaluator tests: last user message -> the right answer; `good_lr` models answer it.
        self.answers: dict[str, str] = {}
        self.good_lr: float | None = None
        self.generated: Counter[str] = Counter()  # model -> prompts answered
        # A serving bug: every tuned model answers as its base (the adapter is never applied).
        self.ignores_adapter = False
        # The untrained base already answers right: fine-tuning cannot beat it (the gate's evidence tests).
        self.base_knows = False
        # Deployment shapes like Fireworks' (every base on 1 x H100), billed at its prices, so
        # plans have a known serving cost.
        offers = Capabilities(generates_in_process=True, default_parallel=6, deployment_shapes=True)
        prices = PriceFacts(table=price_table())
        self.facts = PlatformFacts(name="memory", capabilities=offers, prices=prices, api_key_env="FIREWORKS_API_KEY")
        self.models = MemoryModels()
        self.datasets = MemoryDatasets(self)
        self.training = MemoryTraining(self)
        self.serving = MemoryServing(self)
        self.inference = MemoryInference(self)

    def active(self) -> int:
        return sum(1 for j in self.jobs if self.state(j) in (JobState.PENDING, JobState.RUNNING))

    def state(self, job_id: str) -> JobState:
        if job_id in self.cancelled:
            return JobState.CANCELLED
        if self.hold or self.polls[job_id] < self.polls_to_finish:
            return JobState.RUNNING
        return JobState.FAILED if job_id in self.fail_jobs else JobState.COMPLETED

    def loss(self, job_id: str) -> float:
        req = self.jobs[job_id]
        return round(1.0 + abs(req.learning_rate - 1e-4) * 1000 + req.lora_rank / 1000, 4)

    async def ready(self, *, deploys: bool) -> None:
        if self.not_ready is not None:
            raise PlatformError(self.not_ready)

    async def close(self) -> None:
        return None


class MemoryModels:
    async def list_models(self) -> list[BaseModelInfo]:
        return list(known_models())

    async def model_info(self, model: str) -> BaseModelInfo | None:
        return find_model(model)


class MemoryDatasets:
    def __init__(self, p: MemoryPlatform) -> None:
        self.p = p

    async def check(self, ref: str) -> DatasetInfo:
        if ref not in self.p.uploaded:
            raise PlatformError(f"dataset {ref} not found")
        return DatasetInfo(id=ref, name=ref, ready=True)

    async def stage(self, ref: str, dest: Path) -> Path:
        shutil.copyfile(self.p.uploaded[ref], dest)
        return dest

    async def upload(self, dataset_id: str, path: Path, *, examples: int) -> DatasetInfo:
        if dataset_id not in self.p.uploaded:
            self.p.creates[dataset_id] += 1
            self.p.uploaded[dataset_id] = path
        return DatasetInfo(id=dataset_id, name=f"accounts/test/datasets/{dataset_id}", ready=True, examples=examples)


class MemoryTraining:
    def __init__(self, p: MemoryPlatform) -> None:
        self.p = p

    async def create(self, request: JobRequest) -> JobStatus:
        if request.job_id not in self.p.jobs:
            self.p.creates[request.job_id] += 1
            self.p.jobs[request.job_id] = request
        self.p.max_active = max(self.p.max_active, self.p.active())
        return await self.get(request.job_id)

    async def get(self, job_id: str) -> JobStatus:
        p = self.p
        if job_id not in p.jobs:
            raise NotFound(f"job {job_id} not found")
        p.polls[job_id] += 1
        state = p.state(job_id)
        done = state is JobState.COMPLETED
        return JobStatus(
            job_id=job_id,
            state=state,
            raw_state=state.value.upper(),
            progress=100.0 if done else min(99.0, 100.0 * p.polls[job_id] / max(p.polls_to_finish, 1)),
            epoch=float(p.jobs[job_id].epochs) if done else None,
            message="out of memory" if state is JobState.FAILED else None,
            cost_usd=p.job_cost_usd,
            model=f"accounts/test/models/{p.jobs[job_id].output_model}" if done else None,
        )

    async def cancel(self, job_id: str) -> JobStatus:
        if job_id in self.p.finish_on_cancel:
            self.p.polls[job_id] = max(self.p.polls[job_id], self.p.polls_to_finish)
            return await self.get(job_id)
        self.p.cancelled.add(job_id)
        return await self.get(job_id)

    async def metrics(self, job_id: str, dest: Path) -> list[LossPoint]:
        loss = self.p.loss(job_id)
        dest.write_text(f'{{"step": 1, "train/loss": {loss + 0.2}}}\n{{"step": 2, "eval/loss": {loss}}}\n', encoding="utf-8")
        return [LossPoint(step=1, train_loss=loss + 0.2), LossPoint(step=2, epoch=1.0, val_loss=loss)]

    async def throughput(self, model: str, *, sample: Path) -> Throughput | None:
        return None

    async def base_loss(self, model: str, eval_path: Path) -> float | None:
        return self.p.base_val_loss


class MemoryServing:
    def __init__(self, p: MemoryPlatform) -> None:
        self.p = p

    async def shape(self, model: str, *, addons: bool = False) -> ShapeInfo | None:
        return ShapeInfo(name="memory-h100", accelerator="NVIDIA_H100_80GB", count=1, precision="BF16", addons=True)

    async def validate(self, model: str, shape: ShapeInfo) -> str | None:
        return None

    async def create(self, deployment_id: str, model: str) -> DeploymentStatus:
        if deployment_id not in self.p.deployments:
            self.p.creates[deployment_id] += 1
            self.p.deployments[deployment_id] = model
        return await self.get(deployment_id)

    async def get(self, deployment_id: str) -> DeploymentStatus:
        if deployment_id not in self.p.deployments:
            raise NotFound(f"deployment {deployment_id} not found")
        model = self.p.deployments[deployment_id]
        return DeploymentStatus(
            deployment_id=deployment_id,
            state=DeploymentState.READY,
            model=model,
            endpoint="https://example.invalid/v1",
            model_string=f"{model}#accounts/test/deployments/{deployment_id}",
        )

    async def delete(self, deployment_id: str) -> DeploymentStatus:
        status = await self.get(deployment_id)
        del self.p.deployments[deployment_id]
        return status.model_copy(update={"state": DeploymentState.DELETED})

    async def scale_to_zero(self, deployment_id: str) -> DeploymentStatus:
        status = await self.get(deployment_id)
        self.p.scaled_to_zero.append(deployment_id)
        return status

    def snippet(self, deployment: DeploymentStatus, *, system_prompt: str | None = None) -> Snippet:
        return Snippet(code=f'client.chat.completions.create(model="{deployment.model_string}", messages=[...])')


class MemoryInference:
    def __init__(self, p: MemoryPlatform) -> None:
        self.p = p

    async def chat(
        self,
        model_string: str,
        messages: list[ChatMessage],
        *,
        max_tokens: int = 256,
        tools: list[dict[str, Any]] | None = None,
        reasoning_effort: str | None = None,
    ) -> str:
        return "OK"

    async def generate(self, model: str, prompts: list[list[ChatMessage]], *, max_tokens: int) -> list[str]:
        """Right answers from the model trained with ``good_lr``, wrong ones from the others."""
        p = self.p
        job = p.jobs.get(model.rsplit("/", 1)[-1])
        good = job is not None and p.good_lr is not None and job.learning_rate == p.good_lr
        base = job is None or p.ignores_adapter
        out = []
        for prompt in prompts:
            p.generated[model] += 1
            question = next((m.content for m in reversed(prompt) if m.role == "user"), "")
            answer = p.answers.get(question, "")
            if base and not (p.base_knows and job is None):  # the untrained base talks instead of answering in SQL
                out.append(f"Here is how I would write that: {question[:40]}")
            elif base:
                out.append(answer)
            else:
                out.append(f"<think>let me see</think>{answer}" if good else "SELECT nothing FROM nowhere")
        return out
