"""Stopping a long-running command when asked: the first Ctrl-C or SIGTERM asks it to stop
cleanly, a second one forces.

    async with Stop() as stop:
        result = await stop.until(work())   # None when a signal stopped it
        if stop.signum is not None:
            ...clean up, say what was left...
            return stop.code                # 130 after SIGINT, 143 after SIGTERM

The handlers are the event loop's own (``loop.add_signal_handler``), so a signal is seen
between two awaits whatever the command is waiting on (a Slack connection that never
answers, a training job, a prompt). After a stop, ``exit_now`` ends the process as soon as
the command's own clean-up is done: a worker thread still inside uninterruptible work (a
generation in torch) would otherwise hold the interpreter's exit until it finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
_stopped_with: list[int] = []  # the process-wide record exit_now reads


class Stop:
    """The stop request of one command (see the module docstring)."""

    def __init__(self, *, say: Callable[[str], None] | None = None) -> None:
        self.event = asyncio.Event()
        self.signum: int | None = None
        self._say = say or _to_stderr
        self._on_force: list[Callable[[], None]] = []
        self._installed: list[int] = []

    @property
    def code(self) -> int:
        return 128 + self.signum if self.signum is not None else 0

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def on_force(self, action: Callable[[], None]) -> None:
        """Run ``action`` (quick and synchronous: killing processes) before a forced exit."""
        self._on_force.append(action)

    async def __aenter__(self) -> Stop:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._signalled, sig)
                self._installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or not Unix
                pass
        return self

    async def __aexit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Ask for a stop as a signal would (tests, or another part of the program)."""
        self._signalled(signum)

    def _signalled(self, signum: int) -> None:
        if self.event.is_set():
            self._force(signum)
            return
        self.signum = signum
        _stopped_with[:] = [signum]
        self.event.set()
        again = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        self._say(f"sftbot: stopping after {_NAMES.get(signum, 'a signal')} ({again} again to force)")

    def _force(self, signum: int) -> None:
        for action in self._on_force:
            with contextlib.suppress(Exception):  # forcing must not fail on a process already gone
                action()
        self._say("sftbot: forced to stop")
        _flush()
        os._exit(128 + (self.signum or signum))

    async def until(self, work: Awaitable[T]) -> T | None:
        """``work``'s result, or None when a stop came first (``work`` is then cancelled)."""
        return await unless(self.event, work)


async def unless(stop: asyncio.Event, work: Awaitable[T]) -> T | None:
    """``work``'s result, or None when ``stop`` is set first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


def stopped_by_signal() -> int | None:
    """The signal that stopped a command of this process, if one did."""
    return _stopped_with[0] if _stopped_with else None


def exit_now(code: int) -> None:
    """End a stopped process at once, its output flushed (see the module docstring)."""
    _flush()
    os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
