"""How to reach a Fireworks account and how patient to be with it.

The defaults suit production; tests shrink the waits and point ``base_url`` at the fake.
Base URLs follow the SDK's gotcha (reference/fireworks.md §1): with a ``base_url`` override the
SDK posts control-plane calls to ``{base}/v1/accounts/...`` but chat to
``{base}/v1/chat/completions``, while the real inference API lives under ``/inference``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pipeline.platforms.fireworks import wire
from pipeline.platforms.fireworks.datasets import DIRECT_UPLOAD_LIMIT
from pipeline.platforms.fireworks.jobs import WandbSettings

DEFAULT_BASE_URL = "https://api.fireworks.ai"
DEFAULT_INFERENCE_ROOT = "https://api.fireworks.ai/inference"


@dataclass(frozen=True)
class FireworksSettings:
    """``inference_url`` is the root the SDK appends ``/v1/chat/completions`` to (a trailing ``/v1``
    is accepted); it defaults to ``base_url`` when that is overridden (a proxy or the test fake
    serves both planes), else the public inference root.

    ``max_retries`` applies to every call (creates are safe to retry: they carry our id).
    ``warmup_seconds``: how long a chat waits for a deployment that is scaling up (bases of 70B
    and more: ``large_warmup_seconds``). ``clock`` and ``sleep`` drive every wait (the model-list
    cache, retries, warm-up), so a test can let a 20-minute cold start pass in a moment.
    """

    api_key: str
    account_id: str
    base_url: str | None = None
    inference_url: str | None = None
    timeout: float = 60.0
    max_retries: int = 5
    models_ttl: float = 600.0
    poll_seconds: float = 2.0
    dataset_ready_timeout: float = 900.0
    warmup_seconds: float = 1200.0
    large_warmup_seconds: float = 2700.0
    direct_upload_limit: int = DIRECT_UPLOAD_LIMIT
    min_replicas: int = 0
    retry_base_delay: float = 0.5
    quota_delay: float = 30.0
    wandb: WandbSettings | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @property
    def control_root(self) -> str:
        return wire.url_root(self.base_url or DEFAULT_BASE_URL)

    @property
    def inference_root(self) -> str:
        if self.inference_url:
            return wire.url_root(self.inference_url)
        if self.base_url and self.control_root != DEFAULT_BASE_URL:
            return self.control_root
        return DEFAULT_INFERENCE_ROOT

    @property
    def endpoint(self) -> str:
        """Base URL of the OpenAI-compatible inference API."""
        return f"{self.inference_root}/v1"
