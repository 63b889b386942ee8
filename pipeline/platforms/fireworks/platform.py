"""The Fireworks platform: datasets, SFT jobs, models, deployments and chat through the official SDK.

Two SDK clients, because of the base-URL gotcha (reference/fireworks.md §1): with a
``base_url`` override the SDK posts control-plane calls to ``{base}/v1/accounts/...`` but chat
to ``{base}/v1/chat/completions``, while the real inference API lives under ``/inference``.
So the control client gets ``base_url`` and the inference client gets the inference root.
Signed URLs (dataset upload/download, metrics) go through a plain httpx client that never
carries the API key.

Every create passes the caller's id; ``ALREADY_EXISTS`` is read back, never created twice.
Only resources whose id starts with ``sftbot-`` are ever cancelled or deleted.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import certifi
import httpx
from fireworks import AsyncFireworks, DefaultAsyncHttpxClient
from fireworks.types import Model

from pipeline.domain.catalog import BaseModelInfo, find_model
from pipeline.domain.platform import (
    AdapterStatus,
    Capabilities,
    ChatMessage,
    DatasetInfo,
    DeploymentStatus,
    EvaluationJobStatus,
    HostedEvaluator,
    JobRequest,
    JobStatus,
    LossPoint,
    NotFound,
    PlatformError,
    ShapeInfo,
    Snippet,
    Throughput,
)
from pipeline.platforms.fireworks import wire
from pipeline.platforms.fireworks.calls import Caller, RetryPolicy
from pipeline.platforms.fireworks.chat import complete
from pipeline.platforms.fireworks.datasets import DIRECT_UPLOAD_LIMIT, FireworksDatasets
from pipeline.platforms.fireworks.evals import FireworksEvaluations
from pipeline.platforms.fireworks.jobs import FireworksJobs, WandbSettings
from pipeline.platforms.fireworks.serving import FireworksServing
from templates import render

DEFAULT_BASE_URL = "https://api.fireworks.ai"
DEFAULT_INFERENCE_ROOT = "https://api.fireworks.ai/inference"


class FireworksPlatform:
    """The Platform protocol on Fireworks AI (``fireworks-ai`` SDK, async client)."""

    name = "fireworks"

    def __init__(
        self,
        api_key: str,
        account_id: str,
        *,
        base_url: str | None = None,
        inference_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        models_ttl: float = 600.0,
        poll_seconds: float = 2.0,
        dataset_ready_timeout: float = 900.0,
        warmup_seconds: float = 1200.0,
        large_warmup_seconds: float = 2700.0,
        direct_upload_limit: int = DIRECT_UPLOAD_LIMIT,
        min_replicas: int = 0,
        retry_base_delay: float = 0.5,
        quota_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wandb: WandbSettings | None = None,
    ) -> None:
        """``base_url``: control plane root (default https://api.fireworks.ai).

        ``inference_url``: root the SDK appends ``/v1/chat/completions`` to (a trailing
        ``/v1`` is accepted); defaults to ``base_url`` when that is overridden (a proxy or
        the test fake serves both planes), else https://api.fireworks.ai/inference.
        ``max_retries`` applies to every call (creates are safe to retry: they carry our id).
        ``warmup_seconds``: how long a chat waits for a deployment that is scaling up (bases of
        70B and more: ``large_warmup_seconds``).
        ``clock`` and ``sleep`` drive every wait (the model-list cache, retries, warm-up), so a
        test can let a 20-minute cold start pass in a moment.
        The remaining knobs exist so tests can shrink waits; the defaults suit production.
        """
        if not api_key:
            raise PlatformError("Fireworks needs an API key: set FIREWORKS_API_KEY.")
        if not account_id:
            raise PlatformError("Fireworks needs an account id: set FIREWORKS_ACCOUNT_ID.")
        self._account = account_id
        base = wire.url_root(base_url or DEFAULT_BASE_URL)
        if inference_url:
            self._inference_root = wire.url_root(inference_url)
        elif base_url and base != DEFAULT_BASE_URL:
            self._inference_root = base
        else:
            self._inference_root = DEFAULT_INFERENCE_ROOT
        self._timeout = timeout
        limits = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        tls = _tls_context()
        # Retries are ours (see calls): the SDK's own loop retries 409s and quota 429s.
        self._control = AsyncFireworks(
            api_key=api_key,
            account_id=account_id,
            base_url=base,
            timeout=limits,
            max_retries=0,
            http_client=DefaultAsyncHttpxClient(verify=tls, timeout=limits),
        )
        # Same connection pool and key, another root (the base-URL gotcha above).
        self._inference = self._control.with_options(base_url=self._inference_root)
        self._storage = httpx.AsyncClient(verify=tls, timeout=limits, follow_redirects=True)  # signed URLs: no API key, ever
        self._calls = Caller(
            RetryPolicy(max_retries=max_retries, base_delay=retry_base_delay, quota_delay=quota_delay),
            secrets=(api_key, wandb.api_key if wandb else ""),
            clock=clock,
            sleep=sleep,
        )
        self._clock = clock
        self._models_ttl = models_ttl
        self._models: list[BaseModelInfo] | None = None
        self._models_at = 0.0
        self._models_lock = asyncio.Lock()
        self._poll_seconds = poll_seconds
        self._dataset_ready_timeout = dataset_ready_timeout
        self._direct_upload_limit = direct_upload_limit
        self._serving = FireworksServing(
            self._control,
            self._calls,
            account=account_id,
            endpoint=self.endpoint,
            min_replicas=min_replicas,
            warmup_seconds=warmup_seconds,
            large_warmup_seconds=large_warmup_seconds,
            model_info=self.model_info,
        )
        self._evals = FireworksEvaluations(self._control, self._calls, account=account_id)
        self.capabilities = Capabilities(
            deployment_shapes=True, addon_deployments=True, hosted_evaluators=True, replicas=(min_replicas, max(1, min_replicas))
        )
        self._datasets = FireworksDatasets(
            self._control,
            self._storage,
            self._calls,
            account=account_id,
            timeout=timeout,
            poll_seconds=poll_seconds,
            ready_timeout=dataset_ready_timeout,
            direct_upload_limit=direct_upload_limit,
        )
        self._jobs = FireworksJobs(self._control, self._storage, self._calls, self._datasets, account=account_id, wandb=wandb)

    @property
    def endpoint(self) -> str:
        """Base URL of the OpenAI-compatible inference API."""
        return f"{self._inference_root}/v1"

    # -- models ----------------------------------------------------------------------------------

    async def list_models(self) -> list[BaseModelInfo]:
        async with self._models_lock:
            if self._models is not None and self._clock() - self._models_at < self._models_ttl:
                return list(self._models)

            async def fetch() -> list[Model]:
                return [m async for m in self._control.models.list(account_id="fireworks", page_size=200)]

            # `filter="tunable=true"` is unverified on the server (reference §5): filter here.
            models = await self._calls.run("list base models", fetch)
            self._models = [wire.model_info(m) for m in models if wire.tunable(m)]
            self._models_at = self._clock()
            return list(self._models)

    async def model_info(self, model: str) -> BaseModelInfo | None:
        account, short = wire.model_ref(model)
        if account == "fireworks":
            try:
                known = await self.list_models()
            except PlatformError:
                # Fireworks unreachable: the bundled catalogue still knows the common sizes.
                return find_model(short)
            for info in known:
                if info.id == short:
                    return info
        try:
            found = await self._calls.run(
                f"read model accounts/{account}/models/{short}",
                lambda: self._control.models.get(short, account_id=account),
                missing=f"model accounts/{account}/models/{short}",
            )
        except NotFound:
            return None
        return wire.model_info(found) if wire.tunable(found) else None

    # -- datasets (datasets.py) ---------------------------------------------------

    async def check_dataset(self, ref: str) -> DatasetInfo:
        return await self._datasets.check(ref)

    async def stage_dataset(self, ref: str, dest: Path) -> Path:
        return await self._datasets.stage(ref, dest)

    async def upload_dataset(self, dataset_id: str, path: Path, *, examples: int) -> DatasetInfo:
        return await self._datasets.upload(dataset_id, path, examples=examples)

    # -- jobs (jobs.py) -------------------------------------------------------------

    async def create_job(self, request: JobRequest) -> JobStatus:
        return await self._jobs.create(request)

    async def get_job(self, job_id: str) -> JobStatus:
        return await self._jobs.get(job_id)

    async def cancel_job(self, job_id: str) -> JobStatus:
        return await self._jobs.cancel(job_id)

    async def job_metrics(self, job_id: str, dest: Path) -> list[LossPoint]:
        return await self._jobs.metrics(job_id, dest)

    # -- deployments, shapes and adapters (serving.py) ----------------------------

    async def deployment_shape(self, model: str, *, addons: bool = False) -> ShapeInfo | None:
        return await self._serving.shape(model, addons=addons)

    async def create_deployment(self, deployment_id: str, model: str) -> DeploymentStatus:
        return await self._serving.create(deployment_id, model)

    async def create_addon_deployment(self, deployment_id: str, base_model: str, *, shape: str) -> DeploymentStatus:
        return await self._serving.create_addons(deployment_id, base_model, shape=shape)

    async def get_deployment(self, deployment_id: str) -> DeploymentStatus:
        return await self._serving.get(deployment_id)

    async def delete_deployment(self, deployment_id: str) -> DeploymentStatus:
        return await self._serving.delete(deployment_id)

    async def scale_to_zero(self, deployment_id: str) -> DeploymentStatus:
        return await self._serving.scale_to_zero(deployment_id)

    async def base_loss(self, model: str, eval_path: Path) -> float | None:
        return None  # an SFT job reports loss only for what it trains; an untrained base has no job

    async def load_adapter(self, model: str, deployment_id: str, *, label: str) -> AdapterStatus:
        return await self._serving.load(model, deployment_id, label=label)

    async def find_adapter(self, model: str, deployment_id: str) -> AdapterStatus | None:
        return await self._serving.find(model, deployment_id)

    # -- inference (chat.py) ----------------------------------------------------------

    async def chat(
        self,
        model_string: str,
        messages: list[ChatMessage],
        *,
        max_tokens: int = 256,
        tools: list[dict[str, Any]] | None = None,
        reasoning_effort: str | None = None,
    ) -> str:
        return await complete(
            self._inference,
            self._calls,
            self._serving,
            model_string,
            messages,
            max_tokens=max_tokens,
            tools=tools,
            reasoning_effort=reasoning_effort,
        )

    async def generate(self, model: str, prompts: list[list[ChatMessage]], *, max_tokens: int) -> list[str]:
        raise PlatformError("Fireworks serves fine-tuned models only from a deployment; sftbot deploys them to get outputs.")

    # -- hosted evaluators (evals.py) ------------------------------------------------

    async def check_evaluator(self, ref: str) -> HostedEvaluator:
        return await self._evals.check(ref)

    async def create_evaluation_job(
        self, job_id: str, *, evaluator: str, input_dataset: str, output_dataset: str
    ) -> EvaluationJobStatus:
        return await self._evals.create_job(
            job_id,
            evaluator=evaluator,
            input_dataset=self._datasets.name(input_dataset),
            output_dataset=self._datasets.name(output_dataset),
        )

    async def get_evaluation_job(self, job_id: str) -> EvaluationJobStatus:
        return await self._evals.get_job(job_id)

    async def throughput(self, model: str, *, sample: Path) -> Throughput | None:
        return None  # billed per token: the estimate is in dollars; queue and GPU speed are not known here

    def snippet(self, deployment: DeploymentStatus, *, system_prompt: str | None = None) -> Snippet:
        code = render(
            "fireworks_snippet.py.j2",
            model=deployment.model,
            deployment_id=deployment.deployment_id,
            model_string=deployment.model_string,
            base_url=None if self._inference_root == DEFAULT_INFERENCE_ROOT else self._inference_root,
            system_prompt=system_prompt,
            # Up to the warm-up window: a scaled-to-zero deployment answers 503 until a replica is up.
            retry_minutes=max(1, round(self._serving.warmup_seconds / 60)),
        )
        return Snippet(language="python", code=code, env=["FIREWORKS_API_KEY"])

    async def close(self) -> None:
        await self._control.close()  # also closes the inference client: they share one pool
        await self._storage.aclose()


# -- pure helpers ---------------------------------------------------------------------------------


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process, as httpx would build it: loading the CA bundle costs ~0.1 s."""
    if path := os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=path)
    if folder := os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=folder)
    return ssl.create_default_context(cafile=certifi.where())
