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
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class PollTimeout(TimeoutError):
    """The resource did not settle before the deadline; carries the last state seen."""

    def __init__(self, message: str, last: object) -> None:
        super().__init__(message)
        self.last = last


@dataclass(frozen=True)
class Pace:
    """How a wait polls: every ``interval`` seconds at first, ``backoff`` times longer after
    each look (up to ``max_interval``, 4 x ``interval`` unless given), for ``timeout`` seconds."""

    timeout: float
    interval: float
    backoff: float = 1.5
    max_interval: float | None = None


async def poll_until(
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    pace: Pace,
    *,
    first: T | None = None,
    what: str = "the resource",
) -> T:
    """Call ``fetch`` until ``done`` holds; ``first`` is a state already in hand (no fetch)."""
    deadline = time.monotonic() + pace.timeout
    delay = pace.interval
    ceiling = pace.max_interval if pace.max_interval is not None else pace.interval * 4
    state = first if first is not None else await fetch()
    while not done(state):
        if time.monotonic() >= deadline:
            raise PollTimeout(f"{what} was not ready after {pace.timeout / 60:.0f} minutes", state)
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * pace.backoff, ceiling)
        state = await fetch()
    return state
