"""The Fireworks platform: the engine's roles played through the official ``fireworks-ai`` SDK.

Two SDK clients, because of the base-URL gotcha (settings.py): the control client gets the
control root and the inference client the inference root. Signed URLs (dataset upload and
download, metrics) go through a plain httpx client that never carries the API key.

Every create passes the caller's id; ``ALREADY_EXISTS`` is read back, never created twice.
Only resources whose id starts with ``sftbot-`` are ever cancelled or deleted.
"""

from __future__ import annotations

import functools
import os
import ssl

import certifi
import httpx
from fireworks import AsyncFireworks, DefaultAsyncHttpxClient

from pipeline.domain.platform import PlatformError
from pipeline.platforms.fireworks.account import check_account
from pipeline.platforms.fireworks.calls import Caller, RetryPolicy
from pipeline.platforms.fireworks.catalog import FireworksCatalog
from pipeline.platforms.fireworks.chat import FireworksInference
from pipeline.platforms.fireworks.datasets import FireworksDatasets
from pipeline.platforms.fireworks.evals import FireworksEvaluations
from pipeline.platforms.fireworks.facts import declared
from pipeline.platforms.fireworks.jobs import FireworksJobs
from pipeline.platforms.fireworks.probes import FreeProbes
from pipeline.platforms.fireworks.serving import FireworksServing
from pipeline.platforms.fireworks.settings import FireworksSettings


class FireworksPlatform:
    """The Platform roles on Fireworks AI (``fireworks-ai`` SDK, async client)."""

    def __init__(self, settings: FireworksSettings) -> None:
        if not settings.api_key:
            raise PlatformError("Fireworks needs an API key: set FIREWORKS_API_KEY.")
        if not settings.account_id:
            raise PlatformError("Fireworks needs an account id: set FIREWORKS_ACCOUNT_ID.")
        self.settings = settings
        limits = httpx.Timeout(settings.timeout, connect=min(settings.timeout, 5.0))
        # Retries are ours (see calls): the SDK's own loop retries 409s and quota 429s.
        self._control = AsyncFireworks(
            api_key=settings.api_key,
            account_id=settings.account_id,
            base_url=settings.control_root,
            timeout=limits,
            max_retries=0,
            http_client=DefaultAsyncHttpxClient(verify=_tls_context(), timeout=limits),
        )
        # Same connection pool and key, another root (the base-URL gotcha).
        inference = self._control.with_options(base_url=settings.inference_root)
        self._storage = httpx.AsyncClient(verify=_tls_context(), timeout=limits, follow_redirects=True)  # signed URLs: no key
        policy = RetryPolicy(
            max_retries=settings.max_retries, base_delay=settings.retry_base_delay, quota_delay=settings.quota_delay
        )
        secrets = (settings.api_key, settings.wandb.api_key if settings.wandb else "")
        calls = Caller(policy, secrets=secrets, clock=settings.clock, sleep=settings.sleep)
        account = settings.account_id
        self._calls = calls
        self.models = FireworksCatalog(self._control, calls, ttl=settings.models_ttl, clock=settings.clock)
        self.datasets = FireworksDatasets(self._control, self._storage, calls, settings)
        self.training = FireworksJobs(self._control, self._storage, calls, self.datasets, account=account, wandb=settings.wandb)
        self.serving = FireworksServing(self._control, calls, settings, model_info=self.models.model_info)
        self.adapters = self.serving  # multi-LoRA deployments are deployments too: one object, two roles
        self.inference = FireworksInference(inference, calls, self.serving)
        self.evaluators = FireworksEvaluations(self._control, calls, self.datasets, account=account)
        self.facts = declared(min_replicas=settings.min_replicas)

    @property
    def endpoint(self) -> str:
        """Base URL of the OpenAI-compatible inference API."""
        return self.settings.endpoint

    def probes(self) -> FreeProbes:
        """`sftbot doctor`'s free-tier checks on this account (probes.py)."""
        return FreeProbes(self._control, self._calls, self.serving, account=self.settings.account_id)

    async def ready(self, *, deploys: bool) -> None:
        """The key and account checked with one read (account.py); ``deploys`` changes nothing here."""
        await check_account(self._control, self._calls, self.settings.account_id)

    async def close(self) -> None:
        await self._control.close()  # also closes the inference client: they share one pool
        await self._storage.aclose()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process, as httpx would build it: loading the CA bundle costs ~0.1 s."""
    if path := os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=path)
    if folder := os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=folder)
    return ssl.create_default_context(cafile=certifi.where())
