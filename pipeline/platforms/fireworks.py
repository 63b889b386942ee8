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
import re
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import certifi
import httpx
from fireworks import AsyncFireworks, DefaultAsyncHttpxClient, omit
from fireworks.types import Deployment, Model, SupervisedFineTuningJob

from pipeline.catalog import BaseModelInfo, find_model
from pipeline.fsio import write_atomic
from pipeline.ids import PREFIX, owned
from pipeline.platforms import fireworks_wire as wire
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
    PlatformError,
    Snippet,
    Throughput,
)
from pipeline.platforms.fireworks_calls import Caller, FireworksError, RetryPolicy, StorageError, status_of
from pipeline.platforms.fireworks_datasets import DIRECT_UPLOAD_LIMIT, FireworksDatasets
from pipeline.platforms.fireworks_metrics import parse_metrics
from templates import render

DEFAULT_BASE_URL = "https://api.fireworks.ai"
DEFAULT_INFERENCE_ROOT = "https://api.fireworks.ai/inference"

_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


class FireworksPlatform:
    """The Platform protocol on Fireworks AI (``fireworks-ai`` SDK, async client)."""

    name = "fireworks"
    capabilities = Capabilities()

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
        chat_ready_timeout: float = 300.0,
        direct_upload_limit: int = DIRECT_UPLOAD_LIMIT,
        min_replicas: int = 0,
        retry_base_delay: float = 0.5,
        quota_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``base_url``: control plane root (default https://api.fireworks.ai).

        ``inference_url``: root the SDK appends ``/v1/chat/completions`` to (a trailing
        ``/v1`` is accepted); defaults to ``base_url`` when that is overridden (a proxy or
        the test fake serves both planes), else https://api.fireworks.ai/inference.
        ``max_retries`` applies to every call (creates are safe to retry: they carry our id).
        ``clock`` drives the model-list cache and the chat warm-up window (tests pass their own).
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
        # Retries are ours (see fireworks_calls): the SDK's own loop retries 409s and quota 429s.
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
            secrets=(api_key,),
        )
        self._clock = clock
        self._models_ttl = models_ttl
        self._models: list[BaseModelInfo] | None = None
        self._models_at = 0.0
        self._models_lock = asyncio.Lock()
        self._poll_seconds = poll_seconds
        self._dataset_ready_timeout = dataset_ready_timeout
        self._chat_ready_timeout = chat_ready_timeout
        self._direct_upload_limit = direct_upload_limit
        self._min_replicas = min_replicas
        self._ready_since: dict[str, float] = {}  # model string -> when its deployment was first seen READY
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

    # -- datasets (fireworks_datasets.py) ---------------------------------------------------

    async def check_dataset(self, ref: str) -> DatasetInfo:
        return await self._datasets.check(ref)

    async def stage_dataset(self, ref: str, dest: Path) -> Path:
        return await self._datasets.stage(ref, dest)

    async def upload_dataset(self, dataset_id: str, path: Path, *, examples: int) -> DatasetInfo:
        return await self._datasets.upload(dataset_id, path, examples=examples)

    # -- jobs -----------------------------------------------------------------------------------

    async def create_job(self, request: JobRequest) -> JobStatus:
        job_id = request.job_id
        eval_name = self._datasets.name(request.eval_dataset) if request.eval_dataset else None
        job = await self._calls.run(
            f"create job {job_id}",
            lambda: self._control.supervised_fine_tuning_jobs.create(
                supervised_fine_tuning_job_id=job_id,
                dataset=self._datasets.name(request.dataset),
                base_model=wire.base_model_name(request.base_model),
                # A given eval set replaces the default auto carve-out (as Fireworks' agent does).
                evaluation_dataset=eval_name if eval_name else omit,
                eval_auto_carveout=False if eval_name else omit,
                epochs=request.epochs,
                lora_rank=request.lora_rank,
                learning_rate=request.learning_rate,
                output_model=request.output_model,
                display_name=request.display_name or omit,
            ),
            on_conflict=lambda: self._control.supervised_fine_tuning_jobs.get(job_id),
        )
        return wire.job_status(job, job_id, self._account)

    async def get_job(self, job_id: str) -> JobStatus:
        return wire.job_status(await self._get_job(job_id), job_id, self._account)

    async def _get_job(self, job_id: str) -> SupervisedFineTuningJob:
        return await self._calls.run(
            f"read job {job_id}",
            lambda: self._control.supervised_fine_tuning_jobs.get(job_id),
            missing=f"job accounts/{self._account}/supervisedFineTuningJobs/{job_id}",
        )

    async def cancel_job(self, job_id: str) -> JobStatus:
        if not owned(job_id):
            raise PlatformError(
                f"refusing to cancel job {job_id}: sftbot only cancels jobs it created (ids starting with {PREFIX})."
            )
        try:
            await self._calls.run(
                f"cancel job {job_id}",
                lambda: self._control.supervised_fine_tuning_jobs.cancel(job_id, body={}),
                missing=f"job accounts/{self._account}/supervisedFineTuningJobs/{job_id}",
            )
        except NotFound:
            raise
        except PlatformError:
            status = await self.get_job(job_id)
            if status.state.terminal:
                return status  # it finished or failed before the cancel arrived
            raise
        return await self.get_job(job_id)

    async def job_metrics(self, job_id: str, dest: Path) -> list[LossPoint]:
        job = await self._get_job(job_id)
        if not job.metrics_file_signed_url:
            return []  # training has not written metrics yet
        try:
            raw = await self._fetch(job.metrics_file_signed_url, what=f"download the metrics of job {job_id}")
        except FireworksError as exc:
            if exc.status not in (400, 401, 403):
                raise
            # A signed URL expires after a while; the job hands out a fresh one.
            fresh = await self._get_job(job_id)
            raw = await self._fetch(fresh.metrics_file_signed_url or "", what=f"download the metrics of job {job_id}")
        write_atomic(dest, raw)
        return parse_metrics(raw.decode("utf-8", "replace").splitlines())

    async def _fetch(self, url: str, *, what: str) -> bytes:
        async def get() -> bytes:
            response = await self._storage.get(url)
            if response.status_code >= 300:
                raise StorageError(response.status_code, response.text)
            return response.content

        return await self._calls.run(what, get)

    # -- deployments -------------------------------------------------------------------------

    async def create_deployment(self, deployment_id: str, model: str) -> DeploymentStatus:
        model_name = model if model.startswith("accounts/") else f"accounts/{self._account}/models/{model}"
        deployment = await self._calls.run(
            f"create deployment {deployment_id} of {model_name}",
            lambda: self._control.deployments.create(
                base_model=model_name,  # live merge: the fine-tuned LoRA is the deployment's model
                deployment_id=deployment_id,
                deployment_shape="default",  # the server picks a validated shape for the base
                # Scale to zero when idle (the default window is 1 h) so a forgotten deployment stops billing.
                min_replica_count=self._min_replicas,
                max_replica_count=max(1, self._min_replicas),
                display_name=deployment_id,
            ),
            on_conflict=lambda: self._control.deployments.get(deployment_id),
        )
        return self._deployment_status(deployment, deployment_id)

    async def get_deployment(self, deployment_id: str) -> DeploymentStatus:
        deployment = await self._calls.run(
            f"read deployment {deployment_id}",
            lambda: self._control.deployments.get(deployment_id),
            missing=f"deployment accounts/{self._account}/deployments/{deployment_id}",
        )
        return self._deployment_status(deployment, deployment_id)

    async def delete_deployment(self, deployment_id: str) -> DeploymentStatus:
        if not owned(deployment_id):
            raise PlatformError(
                f"refusing to delete deployment {deployment_id}: sftbot only deletes deployments it created (ids starting with {PREFIX})."
            )
        await self._calls.run(
            f"delete deployment {deployment_id}",
            # The smoke test and evaluation just sent traffic; without ignore_checks the API
            # refuses to delete for an hour. The bot created this deployment and owns it.
            lambda: self._control.deployments.delete(deployment_id, ignore_checks=True),
            missing=f"deployment accounts/{self._account}/deployments/{deployment_id}",
        )
        return await self.get_deployment(deployment_id)

    def _deployment_status(self, deployment: Deployment, deployment_id: str) -> DeploymentStatus:
        status = wire.deployment_status(deployment, deployment_id, account=self._account, endpoint=self.endpoint)
        if status.state is DeploymentState.READY:
            self._ready_since.setdefault(status.model_string, self._clock())
        return status

    # -- inference ----------------------------------------------------------------------------

    async def chat(self, model_string: str, messages: list[ChatMessage], *, max_tokens: int = 256) -> str:
        ready_since = self._ready_since.get(model_string)

        def warming_up(exc: BaseException) -> bool:
            # Right after a deployment turns READY, routing answers 404/503 for a while
            # (reference §7.3); a scaled-to-zero deployment answers 503 while it scales up.
            status = status_of(exc)
            return status == 503 or (status == 404 and ready_since is not None)

        patience = self._chat_ready_timeout
        if ready_since is not None:
            patience = max(0.0, ready_since + self._chat_ready_timeout - self._clock())
        response = await self._calls.run(
            f"get a chat completion from {model_string}",
            lambda: self._inference.chat.completions.create(
                model=model_string,
                messages=[{"role": m.role, "content": m.content} for m in messages],
                max_tokens=max_tokens,
                temperature=0.0,
            ),
            patient=warming_up,
            patience=patience,
        )
        if not response.choices:
            raise PlatformError(f"Fireworks returned no choices for {model_string}.")
        content = response.choices[0].message.content
        if isinstance(content, list):
            text = "".join(part.text or "" for part in content if part.type == "text")
        else:
            text = content or ""
        # Reasoning models put their thinking first; callers want the answer.
        return _THINK.sub("", text, count=1)

    async def generate(self, model: str, prompts: list[list[ChatMessage]], *, max_tokens: int) -> list[str]:
        raise PlatformError("Fireworks serves fine-tuned models only from a deployment; sftbot deploys them to get outputs.")

    async def throughput(self, model: str, *, sample: Path) -> Throughput | None:
        return None  # billed per token: the estimate is in dollars; queue and GPU speed are not known here

    def snippet(self, deployment: DeploymentStatus) -> Snippet:
        code = render(
            "fireworks_snippet.py.j2",
            model=deployment.model,
            deployment_id=deployment.deployment_id,
            model_string=deployment.model_string,
            base_url=None if self._inference_root == DEFAULT_INFERENCE_ROOT else self._inference_root,
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
