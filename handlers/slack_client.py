"""The one Slack Web API client factory, and a per-channel posting limiter.

Slack allows about one ``chat.postMessage`` per second per channel (short bursts pass, a
sustained stream gets 429s), so the notifier waits on the limiter before each post; the
retry handlers cover what still comes back as 429, 5xx or a dropped connection.
"""

from __future__ import annotations

import asyncio
import random
import time
from urllib.parse import urlparse

import aiohttp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

DEFAULT_API_URL = "https://slack.com/api/"


class RetryAfterHandler(AsyncRateLimitErrorRetryHandler):
    """Sleeps exactly ``Retry-After`` plus a bounded jitter before the next attempt.

    The built-in handler always adds up to a second of jitter; tests set ``jitter=0`` so an
    injected 429 with ``Retry-After: 0`` costs nothing, production keeps the spread.
    """

    def __init__(self, *, max_retry_count: int = 3, jitter: float = 1.0) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.jitter = jitter

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is None:
            raise error or RuntimeError("rate limited without a response")
        state.next_attempt_requested = True
        header = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
        try:
            seconds = float(header[0] if isinstance(header, list) else header) if header else 1.0
        except ValueError:
            seconds = 1.0
        await asyncio.sleep(max(0.0, seconds) + random.random() * self.jitter)
        state.increment_current_attempt()


def retry_handlers(*, jitter: float = 1.0) -> list[AsyncRetryHandler]:
    """429 (Retry-After), 500/503 and connection resets; passing a list replaces the SDK's default."""
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        RetryAfterHandler(max_retry_count=3, jitter=jitter),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ]


def make_client(
    token: str,
    *,
    base_url: str | None = None,
    jitter: float = 1.0,
    timeout: int = 30,
    session: aiohttp.ClientSession | None = None,
) -> AsyncWebClient:
    """The bot's Web API client; ``base_url`` comes from SLACK_API_URL (a fake in tests).

    Pass a ``session`` for a long-running bot: without one the SDK opens (and tears down) a
    new HTTP session and connection for every single call.
    """
    url = base_url or DEFAULT_API_URL
    if not url.endswith("/"):
        url += "/"
    return AsyncWebClient(
        token=token, base_url=url, timeout=timeout, session=session, retry_handlers=retry_handlers(jitter=jitter)
    )


class ChannelLimiter:
    """Spaces posts to one channel ``interval`` seconds apart; other channels are not held up."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._next: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait(self, channel: str) -> None:
        if self.interval <= 0:
            return
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            now = time.monotonic()
            due = self._next.get(channel, now)
            if due > now:
                await asyncio.sleep(due - now)
            self._next[channel] = max(due, now) + self.interval


def trusted_slack_url(url: str, api_base: str) -> bool:
    """Only Slack gets our requests (and the bot token): the Web API's own host, or https://*.slack.com.

    A response_url or a file link comes inside a payload; a forged one must not make the bot
    post (or send its token) anywhere else.
    """
    target, api = urlparse(url), urlparse(api_base)
    if not target.hostname:
        return False
    if target.hostname == api.hostname and target.port == api.port:
        return target.scheme in ("https", api.scheme)
    return target.scheme == "https" and (target.hostname == "slack.com" or target.hostname.endswith(".slack.com"))
