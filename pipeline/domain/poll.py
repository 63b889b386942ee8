"""Waiting for a platform resource to settle: one loop with a deadline and a backoff.

Jobs, datasets and deployments all become ready "eventually"; each wait polls, backs off
while nothing changes (no retry storms on a slow platform) and gives up with a sentence at a
deadline. Hand-written rather than a retry library because the condition is a state read
back from the platform, not an exception to retry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class PollTimeout(TimeoutError):
    """The resource did not settle before the deadline; carries the last state seen."""

    def __init__(self, message: str, last: object) -> None:
        super().__init__(message)
        self.last = last


async def poll_until(
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    first: T | None = None,
    timeout: float,
    interval: float,
    backoff: float = 1.5,
    max_interval: float | None = None,
    what: str = "the resource",
) -> T:
    """Call ``fetch`` until ``done`` holds; ``first`` is a state already in hand (no fetch)."""
    deadline = time.monotonic() + timeout
    delay = interval
    ceiling = max_interval if max_interval is not None else interval * 4
    state = first if first is not None else await fetch()
    while not done(state):
        if time.monotonic() >= deadline:
            raise PollTimeout(f"{what} was not ready after {timeout / 60:.0f} minutes", state)
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * backoff, ceiling)
        state = await fetch()
    return state
