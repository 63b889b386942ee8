"""How FireworksPlatform calls the API: one retry policy, error translation, secret redaction.

The SDK clients are built with ``max_retries=0`` and every call goes through ``Caller.run``
instead, because the SDK's own loop does three things wrong for this bot:

- it retries ``409`` (as a lock timeout), so a duplicate create would burn ~15 s of backoff
  before we could reconcile it with a ``get``; here ``ALREADY_EXISTS`` means "read it back";
- it retries a quota ``429`` (``quota_exceeded``) or a capacity one (``no available
  capacity``) like any rate limit; here it waits much longer (or not at all, for a create the
  caller queues) and then raises ``Busy``, because retry storms make quota worse and the
  caller can do better than wait: a sweep starts the job later, when one of its own finishes;
- each concurrent caller backs off alone; here a rate-limit 429 pauses every call of the
  platform until its ``retry-after`` has passed.

Creates are safe to retry because every create carries a caller-chosen id: a create that
succeeded but whose response was lost comes back as 409 on the retry and is read back.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

import httpx
from fireworks import APIConnectionError, APIStatusError, AuthenticationError, PermissionDeniedError

from pipeline.domain.platform import Busy, NotFound, PlatformError

T = TypeVar("T")
Kind = Literal["exists", "quota", "capacity", "throttle", "transient", "fatal"]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_ABORTED = 10  # google.rpc ABORTED: a 409 that is a concurrency conflict, not "already exists"
_MAX_MESSAGE = 300


class FireworksError(PlatformError):
    """A failed Fireworks call; ``status`` is the HTTP status when there was a response."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status


class StorageError(Exception):
    """A signed-URL (cloud storage) request failed; carries status and body, never the URL."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"storage answered HTTP {status}: {text.strip()[:200]}")
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5  # for transient errors (connection, timeout, 408, 5xx) and rate limits
    base_delay: float = 0.5  # first backoff; doubles per attempt, with jitter
    max_delay: float = 8.0
    quota_delay: float = 30.0  # first wait after a quota or capacity 429; doubles per further one
    quota_retries: int = 1  # quota/capacity 429s absorbed before raising Busy (the runner can retry later)


@dataclass(frozen=True)
class Inference:
    """A call to a deployment rather than the control plane. Errors ``warming_up`` is true of
    are retried until ``patience`` seconds have passed (a fresh deployment answering 404/503
    while it warms up); a 429 is the deployment's own saturation, not the account's request
    limit (DOC guides/inference-error-codes), so it slows this call only, not every call."""

    warming_up: Callable[[BaseException], bool] = lambda _: False
    patience: float = 0.0


class Caller:
    """Runs API operations with the retry policy and turns failures into PlatformError."""

    def __init__(
        self, policy: RetryPolicy, *, secrets: tuple[str, ...], clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.policy = policy
        self._secrets = tuple(s for s in secrets if s)
        # Injected so a test can let 20 minutes of cold start pass in a fraction of a second:
        # every wait of this caller goes through ``sleep`` and is measured with ``clock``.
        self.clock = clock
        self.sleep = sleep
        self._paused_until = 0.0  # clock() before which no call is sent (a rate limit)

    async def run(
        self,
        action: str,
        op: Callable[[], Awaitable[T]],
        *,
        on_conflict: Callable[[], Awaitable[T]] | None = None,
        missing: str | None = None,
        busy_retries: int | None = None,
        inference: Inference | None = None,
    ) -> T:
        """Run ``op``; ``action`` completes "Fireworks could not ..." in error messages.

        ``on_conflict`` reads the resource back when a create answers ALREADY_EXISTS.
        ``missing`` names the resource for a NotFound on 404 ("dataset accounts/a/datasets/b").
        ``busy_retries`` overrides how many quota/capacity refusals are waited out before
        ``Busy`` is raised (0: at once, for a caller that queues the work itself).
        ``inference``: the call goes to a deployment, not the control plane (see Inference).
        """
        started = self.clock()
        attempts = quota_hits = patient_tries = 0
        busy_limit = self.policy.quota_retries if busy_retries is None else busy_retries
        while True:
            await self._wait_if_paused()
            try:
                return await op()
            except (APIStatusError, APIConnectionError, StorageError, httpx.TransportError) as exc:
                kind = classify(exc)
                if kind == "exists" and on_conflict is not None:
                    try:
                        return await self.run(action, on_conflict, missing=missing)
                    except NotFound:
                        kind = "transient"  # "exists" yet unreadable: let the create try again
                if inference is not None and inference.warming_up(exc) and self.clock() - started < inference.patience:
                    patient_tries += 1
                    await self.sleep(self._backoff(patient_tries))
                    continue
                if kind in ("quota", "capacity"):
                    quota_hits += 1
                    await self._wait_busy(exc, action, quota_hits, busy_limit)
                    continue
                if kind in ("throttle", "transient"):
                    attempts += 1
                    await self._wait_retry(exc, action, attempts, pause_all=kind == "throttle" and inference is None)
                    continue
                raise self.error(exc, action, missing=missing) from None

    async def _wait_busy(self, exc: BaseException, action: str, hits: int, limit: int) -> None:
        """Wait out the ``hits``-th quota/capacity refusal, or raise Busy past ``limit``."""
        if hits > limit:
            raise self.error(exc, action, retryable=True) from None
        wait = self.policy.quota_delay * 2.0 ** (hits - 1)
        await self.sleep(max(wait, retry_after(exc) or 0.0))

    async def _wait_retry(self, exc: BaseException, action: str, attempt: int, *, pause_all: bool) -> None:
        """Back off before retry ``attempt`` of a transient failure or rate limit, or raise past max_retries."""
        if attempt > self.policy.max_retries:
            raise self.error(exc, action, retryable=True) from None
        delay = retry_after(exc) or self._backoff(attempt)
        if pause_all:
            # The request limit is account-wide: pause every call, not just this one.
            self._paused_until = max(self._paused_until, self.clock() + delay)
        await self.sleep(delay)

    def error(
        self, exc: BaseException, action: str, *, missing: str | None = None, retryable: bool | None = None
    ) -> PlatformError:
        """One sentence with the platform's own message; the API key is never in it."""
        status = status_of(exc)
        detail = self.redact(message_of(exc))
        kind = classify(exc)
        if retryable is None:
            retryable = kind in ("quota", "capacity", "throttle", "transient")
        if status == 404 and missing is not None:
            return NotFound(self.redact(f"{missing} not found (Fireworks: {detail})."))
        if isinstance(exc, AuthenticationError):
            text = f"Fireworks rejected the API key while trying to {action} (HTTP 401: {detail}); check FIREWORKS_API_KEY."
        elif isinstance(exc, PermissionDeniedError):
            text = f"Fireworks denied permission to {action} (HTTP 403: {detail}); check the API key's account and role."
        elif kind in ("quota", "capacity"):
            return Busy(self.redact(_busy_text(kind, action, detail, error_reason(getattr(exc, "body", None)))))
        elif status is not None:
            text = f"Fireworks could not {action}: {detail} (HTTP {status})."
        else:
            text = f"Fireworks could not {action}: {detail}."
        return FireworksError(self.redact(text), retryable=retryable, status=status)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        text = re.sub(r"(?i)bearer\s+\S+", "Bearer [redacted]", text)
        # Signed URLs carry a credential in their query string.
        return re.sub(r"(https?://[^\s'\"?]+)\?[^\s'\"]*", r"\1?[signature redacted]", text)

    def _backoff(self, attempt: int) -> float:
        delay: float = min(self.policy.base_delay * 2.0 ** (attempt - 1), self.policy.max_delay)
        return delay * (1 - 0.25 * random.random())

    async def _wait_if_paused(self) -> None:
        wait = self._paused_until - self.clock()
        if wait > 0:
            await self.sleep(wait)


def classify(exc: BaseException) -> Kind:
    """What a failure means for a retry: read back, wait for quota, back off, or give up."""
    if isinstance(exc, StorageError):
        return "transient" if exc.status >= 500 or exc.status in (408, 429) else "fatal"
    if isinstance(exc, (APIConnectionError, httpx.TransportError)):
        return "transient"
    if not isinstance(exc, APIStatusError):
        return "fatal"
    hint = exc.response.headers.get("x-should-retry")
    if hint == "false":
        return "fatal"
    status = exc.status_code
    if status == 409:
        return "transient" if _grpc_code(exc.body) == _ABORTED else "exists"
    if status == 429:
        return _busy_kind(exc.body)
    if hint == "true" or status == 408 or status >= 500:
        return "transient"
    return "fatal"


def _busy_text(kind: Kind, action: str, detail: str, reason: str | None) -> str:
    why = f"reason {reason}" if reason is not None else "read from its message: no structured reason given"
    if kind == "quota":
        return f"Fireworks could not {action} because a quota is exhausted: {detail} (HTTP 429, {why}); raise the tier or wait for running jobs."
    return f"Fireworks could not {action} because it has no capacity right now: {detail} (HTTP 429, {why})."


def _busy_kind(body: object) -> Kind:
    """Quota or capacity from the structured ``google.rpc.ErrorInfo`` ``reason`` when the 429 carries
    one: the cookbook says "Use a registered google.rpc.ErrorInfo detail as the only source for an
    error_reason ... Do not parse the message string to infer quota" (fw-ai/cookbook
    error-reference.md:23-26,63-67; the training SDK reads it the same way, training/sdk/errors.py:
    347-415). Its values are undocumented: one naming a quota is quota, any other is a capacity
    refusal (busy, cause unknown: waited out, never failing others). Only without ErrorInfo is the
    text read, as the last resort: a training-quota 429 says `quota_exceeded` (DOC account-quotas),
    a shortage "no (available) capacity"; anything else is a rate limit."""
    reason = error_reason(body)
    if reason is not None:
        return "quota" if "QUOTA" in reason.upper() else "capacity"
    text = f"{body}".lower()
    if "quota" in text:
        return "quota"
    return "capacity" if "capacity" in text else "throttle"


def error_reason(body: object) -> str | None:
    """The ``reason`` of a google.rpc.ErrorInfo detail (the body may be wrapped in ``error``)."""
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        body = body["error"]
    details = body.get("details") if isinstance(body, Mapping) else None
    for d in details if isinstance(details, list) else []:
        if isinstance(d, Mapping) and str(d.get("@type", "")).endswith("google.rpc.ErrorInfo") and d.get("reason"):
            return str(d["reason"])
    return None


def status_of(exc: BaseException) -> int | None:
    if isinstance(exc, APIStatusError):
        return exc.status_code
    if isinstance(exc, StorageError):
        return exc.status
    return None


def retry_after(exc: BaseException) -> float | None:
    """The server's requested wait (``retry-after-ms`` or ``retry-after``), if sane (0-60 s)."""
    if not isinstance(exc, APIStatusError):
        return None
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            continue
        if 0 < seconds <= 60:
            return seconds
    return None


def message_of(exc: BaseException) -> str:
    """The platform's own message from a google.rpc or OpenAI-style error body."""
    if isinstance(exc, APIStatusError):
        text = _body_message(exc.body) or exc.response.reason_phrase or f"HTTP {exc.status_code}"
    elif isinstance(exc, APIConnectionError):
        cause = exc.__cause__
        text = f"{exc.message.rstrip('.')} ({type(cause).__name__})" if cause is not None else exc.message
    else:
        text = str(exc) or type(exc).__name__
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _body_message(body: object) -> str | None:
    if isinstance(body, Mapping):
        msg = body.get("message")
        if isinstance(msg, str) and msg:
            return msg
        err = body.get("error")
        if isinstance(err, str) and err:
            return err
        if isinstance(err, Mapping):
            return _body_message(err)
        return None
    if isinstance(body, str) and body.strip():
        return body
    return None


def _grpc_code(body: object) -> int | None:
    if isinstance(body, Mapping):
        code = body.get("code")
        if isinstance(code, int):
            return code
        if code == "ABORTED":
            return _ABORTED
    return None
