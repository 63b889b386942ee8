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

from pipeline.domain.catalog import BaseModelInfo, find_model, known_models
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
    PlatformDefaults,
    PlatformError,
    ShapeInfo,
    Snippet,
    Throughput,
)


class MemoryPlatform(PlatformDefaults):
    """Jobs finish after ``polls_to_finish`` gets; loss depends on lr so there is a clear winner."""

    name = "memory"
    # Deployment shapes like Fireworks' (every base on 1 x H100), so plans have a known serving cost.
    capabilities = Capabilities(generates_in_process=True, default_parallel=6, deployment_shapes=True)

    def __init__(self, *, polls_to_finish: int = 2, fail_jobs: set[str] | None = None) -> None:
        self.polls_to_finish = polls_to_finish
        self.fail_jobs = fail_jobs or set()
        self.jobs: dict[str, JobRequest] = {}
        self.polls: Counter[str] = Counter()
        self.cancelled: set[str] = set()
        self.datasets: dict[str, Path] = {}
        self.deployments: dict[str, str] = {}
        self.scaled_to_zero: list[str] = []  # deployments asked to scale to zero, in order
        self.base_val_loss: float | None = None  # what base_loss answers (None: cannot, like Fireworks)
        self.job_cost_usd = 0.05  # what each job reports as its cost (the money guard's tests raise it)
        self.creates: Counter[str] = Counter()  # resource id -> create calls that made something
        self.max_active = 0
        self.hold = False  # while True, jobs never finish (for cancel tests)
        self.finish_on_cancel: set[str] = set()  # these complete just as a cancel arrives
        # For evaluator tests: last user message -> the right answer; `good_lr` models answer it.
        self.answers: dict[str, str] = {}
        self.good_lr: float | None = None
        self.generated: Counter[str] = Counter()  # model -> prompts answered
        # A serving bug: every tuned model answers as its base (the adapter is never applied).
        self.ignores_adapter = False
        # The untrained base already answers right: fine-tuning cannot beat it (the gate's evidence tests).
        self.base_knows = False

    def _active(self) -> int:
        return sum(1 for j in self.jobs if self._state(j) in (JobState.PENDING, JobState.RUNNING))

    def _state(self, job_id: str) -> JobState:
        if job_id in self.cancelled:
            return JobState.CANCELLED
        if self.hold or self.polls[job_id] < self.polls_to_finish:
            return JobState.RUNNING
        return JobState.FAILED if job_id in self.fail_jobs else JobState.COMPLETED

    def _loss(self, job_id: str) -> float:
        req = self.jobs[job_id]
        return round(1.0 + abs(req.learning_rate - 1e-4) * 1000 + req.lora_rank / 1000, 4)

    async def list_models(self) -> list[BaseModelInfo]:
        return list(known_models())

    async def model_info(self, model: str) -> BaseModelInfo | None:
        return find_model(model)

    async def check_dataset(self, ref: str) -> DatasetInfo:
        if ref not in self.datasets:
            raise PlatformError(f"dataset {ref} not found")
        return DatasetInfo(id=ref, name=ref, ready=True)

    async def stage_dataset(self, ref: str, dest: Path) -> Path:
        shutil.copyfile(self.datasets[ref], dest)
        return dest

    async def upload_dataset(self, dataset_id: str, path: Path, *, examples: int) -> DatasetInfo:
        if dataset_id not in self.datasets:
            self.creates[dataset_id] += 1
            self.datasets[dataset_id] = path
        return DatasetInfo(id=dataset_id, name=f"accounts/test/datasets/{dataset_id}", ready=True, examples=examples)

    async def create_job(self, request: JobRequest) -> JobStatus:
        if request.job_id not in self.jobs:
            self.creates[request.job_id] += 1
            self.jobs[request.job_id] = request
        self.max_active = max(self.max_active, self._active())
        return await self.get_job(request.job_id)

    async def get_job(self, job_id: str) -> JobStatus:
        if job_id not in self.jobs:
            raise NotFound(f"job {job_id} not found")
        self.polls[job_id] += 1
        state = self._state(job_id)
        done = state is JobState.COMPLETED
        return JobStatus(
            job_id=job_id,
            state=state,
            raw_state=state.value.upper(),
            progress=100.0 if done else min(99.0, 100.0 * self.polls[job_id] / max(self.polls_to_finish, 1)),
            epoch=float(self.jobs[job_id].epochs) if done else None,
            message="out of memory" if state is JobState.FAILED else None,
            cost_usd=self.job_cost_usd,
            model=f"accounts/test/models/{self.jobs[job_id].output_model}" if done else None,
        )

    async def cancel_job(self, job_id: str) -> JobStatus:
        if job_id in self.finish_on_cancel:
            self.polls[job_id] = max(self.polls[job_id], self.polls_to_finish)
            return await self.get_job(job_id)
        self.cancelled.add(job_id)
        return await self.get_job(job_id)

    async def job_metrics(self, job_id: str, dest: Path) -> list[LossPoint]:
        loss = self._loss(job_id)
        dest.write_text(f'{{"step": 1, "train/loss": {loss + 0.2}}}\n{{"step": 2, "eval/loss": {loss}}}\n', encoding="utf-8")
        return [LossPoint(step=1, train_loss=loss + 0.2), LossPoint(step=2, epoch=1.0, val_loss=loss)]

    async def deployment_shape(self, model: str, *, addons: bool = False) -> ShapeInfo | None:
        return ShapeInfo(name="memory-h100", accelerator="NVIDIA_H100_80GB", count=1, precision="BF16", addons=True)

    async def create_deployment(self, deployment_id: str, model: str) -> DeploymentStatus:
        if deployment_id not in self.deployments:
            self.creates[deployment_id] += 1
            self.deployments[deployment_id] = model
        return await self.get_deployment(deployment_id)

    async def get_deployment(self, deployment_id: str) -> DeploymentStatus:
        if deployment_id not in self.deployments:
            raise NotFound(f"deployment {deployment_id} not found")
        model = self.deployments[deployment_id]
        return DeploymentStatus(
            deployment_id=deployment_id,
            state=DeploymentState.READY,
            model=model,
            endpoint="https://example.invalid/v1",
            model_string=f"{model}#accounts/test/deployments/{deployment_id}",
        )

    async def delete_deployment(self, deployment_id: str) -> DeploymentStatus:
        status = await self.get_deployment(deployment_id)
        del self.deployments[deployment_id]
        return status.model_copy(update={"state": DeploymentState.DELETED})

    async def base_loss(self, model: str, eval_path: Path) -> float | None:
        return self.base_val_loss

    async def scale_to_zero(self, deployment_id: str) -> DeploymentStatus:
        status = await self.get_deployment(deployment_id)
        self.scaled_to_zero.append(deployment_id)
        return status

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
        job = self.jobs.get(model.rsplit("/", 1)[-1])
        good = job is not None and self.good_lr is not None and job.learning_rate == self.good_lr
        base = job is None or self.ignores_adapter
        out = []
        for p in prompts:
            self.generated[model] += 1
            question = next((m.content for m in reversed(p) if m.role == "user"), "")
            answer = self.answers.get(question, "")
            if base and not (self.base_knows and job is None):  # the untrained base talks instead of answering in SQL
                out.append(f"Here is how I would write that: {question[:40]}")
            elif base:
                out.append(answer)
            else:
                out.append(f"<think>let me see</think>{answer}" if good else "SELECT nothing FROM nowhere")
        return out

    async def throughput(self, model: str, *, sample: Path) -> Throughput | None:
        return None

    def snippet(self, deployment: DeploymentStatus, *, system_prompt: str | None = None) -> Snippet:
        return Snippet(code=f'client.chat.completions.create(model="{deployment.model_string}", messages=[...])')

    async def close(self) -> None:
        return None
