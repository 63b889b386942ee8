"""Driving a runner from a test or a bench: an event log to await events on (no sleeping),
and a driver that decides every gate of a run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from pipeline.domain.machine import Phase
from pipeline.domain.records import Actor, RunRecord
from pipeline.domain.slots import Slot
from pipeline.run.decisions import Approve, Promote
from pipeline.run.events import RunEvent
from pipeline.run.runner import Runner

E = TypeVar("E", bound=RunEvent)


class EventLog:
    """Collects runner events and lets a test await a specific one (no sleeping)."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []
        self._cond = asyncio.Condition()

    async def __call__(self, event: RunEvent) -> None:
        async with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    async def wait_for(self, pred: Callable[[RunEvent], bool], timeout: float = 30.0, *, since: int = 0) -> RunEvent:
        """The first event from index ``since`` on that matches (each event is checked once)."""

        async def _wait() -> RunEvent:
            i = since
            async with self._cond:
                while True:
                    while i < len(self.events):
                        if pred(self.events[i]):
                            return self.events[i]
                        i += 1
                    await self._cond.wait()

        return await asyncio.wait_for(_wait(), timeout)

    async def wait_kind(self, kind: type[E], run_id: str | None = None, timeout: float = 30.0) -> E:
        """The first event of class ``kind`` (for ``run_id`` when given)."""
        found = await self.wait_for(lambda e: isinstance(e, kind) and (run_id is None or e.run.id == run_id), timeout)
        assert isinstance(found, kind)
        return found

    def kinds(self, run_id: str | None = None) -> list[type[RunEvent]]:
        return [type(e) for e in self.events if run_id is None or e.run.id == run_id]


async def drive_to_end(
    runner: Runner, log: EventLog, run_id: str, *, actor: Actor, promote: int = 1, timeout: float = 30.0
) -> RunRecord:
    """Decide every gate a run reaches (approve, promote ``promote``); the finished run."""
    while True:
        mark = len(log.events)  # before reading the state, so no event slips between the two
        run = await runner.get(run_id)
        if run.phase.finished:
            return run
        if run.phase is Phase.AWAITING_PLAN_APPROVAL:
            await runner.decide(run_id, Approve(plan_version=run.plan_version), actor)
        elif run.phase is Phase.AWAITING_PROMOTION:
            await runner.decide(run_id, Promote(Slot.candidate(promote)), actor)
        else:
            # Work phases move on by themselves. A runner that does not drive the run (it was
            # restarted) resumes it; resuming is idempotent. Not on every wait: a gate announces
            # itself on each resume, and with many runs that was quadratic work no bot does.
            if not runner.working(run_id):
                await runner.resume_all()
            await log.wait_for(lambda e: e.run.id == run_id, timeout=timeout, since=mark)
