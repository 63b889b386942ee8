"""Turns run events into Slack: one root per run edited in place, everything else in its thread.

The bus calls the notifier inline in the runner's task, so it only queues: one worker per
run sends that run's messages in order, and a slow or rate-limited Slack never slows
training. Scoreboard edits are coalesced per run: the latest state waits in ``_pending``
and a timer flushes it at most once per ``live_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers import blocks as b
from handlers import evaluation, stamps
from handlers.mrkdwn import Message
from handlers.thread import CHANNEL, RunMessages
from pipeline.events import EventKind, RunEvent
from pipeline.machine import Phase
from pipeline.runner import Runner
from pipeline.scoreboard import rank
from pipeline.store import runs as q
from pipeline.store.records import RunRecord

log = logging.getLogger("sftbot.slack.notifier")


@dataclass(frozen=True)
class Origin:
    """Where a run was asked for; set around ``Runner.start`` so RUN_CREATED knows its channel."""

    channel: str


# Runner.start publishes RUN_CREATED before it returns the run id, inside the listener's
# own task: a context variable is how the listener tells the notifier where to post.
ORIGIN: ContextVar[Origin | None] = ContextVar("sftbot_slack_origin", default=None)

_LIVE = {EventKind.SCOREBOARD_CHANGED: ("scoreboard", "Sweep scoreboard"), EventKind.FINAL_PROGRESS: ("final_board", "Final run")}
Item = tuple[str, Any]  # ("event", RunEvent) | ("flush", key) | ("post", Message)


class Notifier:
    """The EventBus subscriber that keeps every Slack-started run's messages current."""

    def __init__(self, runner: Runner, out: RunMessages, *, live_interval: float = 3.0) -> None:
        self.runner = runner
        self.out = out
        self.live_interval = live_interval
        self._queues: dict[str, deque[Item]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[tuple[str, str], RunEvent] = {}
        self._last: dict[tuple[str, str], float] = {}
        self._timers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._origins: dict[str, str] = {}

    async def __call__(self, event: RunEvent) -> None:
        if event.kind is EventKind.RUN_CREATED and (origin := ORIGIN.get()) is not None:
            self._origins[event.run.id] = origin.channel
        self._enqueue(event.run.id, ("event", event))

    def post(self, run_id: str, msg: Message) -> None:
        """A thread reply from a listener, sent in order with the run's event messages."""
        self._enqueue(run_id, ("post", msg))

    def _enqueue(self, run_id: str, item: Item) -> None:
        self._queues.setdefault(run_id, deque()).append(item)
        worker = self._workers.get(run_id)
        if worker is None or worker.done():
            self._workers[run_id] = asyncio.create_task(self._work(run_id), name=f"slack-{run_id}")

    async def _work(self, run_id: str) -> None:
        queue = self._queues[run_id]
        while queue:  # no await between this check and returning: nothing queued is lost
            kind, payload = queue.popleft()
            try:
                if kind == "flush":
                    await self._flush(run_id, payload)
                elif kind == "post":
                    await self.out.reply(run_id, payload)
                else:
                    await self._handle(payload)
            except Exception:  # one failed Slack call must not silence the rest of the run
                log.exception("slack update failed for run %s (%s)", run_id, getattr(payload, "kind", payload))

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued message and due scoreboard edit has been sent (tests, shutdown)."""

        async def idle() -> None:
            while True:
                busy = [t for t in [*self._workers.values(), *self._timers.values()] if not t.done()]
                if not busy:
                    return
                await asyncio.gather(*busy, return_exceptions=True)

        await asyncio.wait_for(idle(), timeout)

    async def close(self) -> None:
        for t in self._timers.values():
            t.cancel()
        await asyncio.gather(*self._workers.values(), *self._timers.values(), return_exceptions=True)

    # --- one event -------------------------------------------------------------------

    async def _handle(self, e: RunEvent) -> None:
        run = e.run
        if e.kind is EventKind.RUN_CREATED and run.id in self._origins:
            await self.out.set_ref(run.id, CHANNEL, self._origins.pop(run.id))
        if await self.out.channel(run.id) is None:
            return  # a run started elsewhere (terminal): not ours to show
        if e.kind in _LIVE:
            await self._live(run.id, e)
            return
        if e.kind in (EventKind.PROMOTION_REQUESTED, EventKind.REPORT_READY, EventKind.FAILED, EventKind.CANCELLED):
            await self._flush_all(run.id)
        handler = getattr(self, f"_on_{e.kind.value}", None)
        if handler is not None:
            await handler(e)

    async def _on_run_created(self, e: RunEvent) -> None:
        await self.out.root(e.run.id, b.root(e.run))

    async def _on_phase_changed(self, e: RunEvent) -> None:
        await self._root(e.run, actor=e.actor.id if e.actor else None)
        if e.text.startswith("answer"):
            await stamps.stamp_decided(self.runner, self.out, e.run)

    async def _root(self, run: RunRecord, *, actor: str | None = None) -> None:
        plan = await q.get_plan(self.runner.db, run.id, run.plan_version) if run.plan_version else None
        model = await stamps.shipped_model(self.runner, run) if run.phase is Phase.SUCCEEDED else None
        await self.out.root(run.id, b.root(run, candidates=len(plan.candidates) if plan else 0, model=model, actor=actor))

    async def _on_question_asked(self, e: RunEvent) -> None:
        if e.question is None:
            return
        key = f"input:{e.question.number}"
        await self.out.set_ref(e.run.id, f"question_text:{e.question.number}", e.question.text)
        if await self.out.put(e.run.id, key, b.question(e.run, e.question)):
            await stamps.track(self.out, e.run.id, key)

    async def _on_plan_proposed(self, e: RunEvent) -> None:
        version = e.plan_version or e.run.plan_version
        plan = await q.get_plan(self.runner.db, e.run.id, version)
        if plan is None:
            return
        key = f"plan:v{version}"
        if await self.out.put(e.run.id, key, b.plan_message(e.run, plan, spec_excerpt=evaluation.spec_excerpt(plan))):
            await stamps.track(self.out, e.run.id, key)
        await evaluation.upload_review_files(self.out, e.run, plan)
        await stamps.stamp_decided(self.runner, self.out, e.run)
        await self._root(e.run)

    async def _on_plan_decided(self, e: RunEvent) -> None:
        await stamps.stamp_decided(self.runner, self.out, e.run)

    async def _on_promotion_requested(self, e: RunEvent) -> None:
        await self.out.set_ref(e.run.id, "gate_summary", e.text)
        if await self.out.put(e.run.id, "promotion", b.promotion_gate(e.run, e.candidates, summary=e.text)):
            await stamps.track(self.out, e.run.id, "promotion")
        png = e.files.get("loss_curves.png")
        if png:
            await self.out.upload(e.run.id, "sweep_curves", Path(png), title=f"Run #{e.run.number} sweep loss curves")

    async def _on_promotion_decided(self, e: RunEvent) -> None:
        await stamps.stamp_decided(self.runner, self.out, e.run)

    async def _on_stall_warning(self, e: RunEvent) -> None:
        await self.out.reply(e.run.id, b.notice(e.text, icon="⚠️"))

    async def _on_evaluation_done(self, e: RunEvent) -> None:
        await self.out.set_ref(e.run.id, "slack:evaluation", e.text)
        await self.out.reply(e.run.id, b.notice(e.text, icon="📏"))

    async def _on_notice(self, e: RunEvent) -> None:
        # e.g. "The evaluator failed on <candidate>: …" — worth a warning sign in the thread.
        await self.out.reply(e.run.id, b.notice(e.text, icon="⚠️" if "failed" in e.text.lower() else "ℹ️"))

    async def _on_deployed(self, e: RunEvent) -> None:
        await self.out.reply(e.run.id, b.notice(e.text, icon="🚀"))

    async def _on_report_ready(self, e: RunEvent) -> None:
        await self.out.put(e.run.id, "final", await stamps.final(self.runner, e.run))
        report = e.files.get("final_report.md")
        if report:
            await self.out.upload(e.run.id, "final_report", Path(report), title=f"Run #{e.run.number} final report")
        curves = e.files.get("loss_curves.png")
        if curves:
            await self.out.upload(e.run.id, "final_curves", Path(curves), title=f"Run #{e.run.number} loss curves")

    async def _on_failed(self, e: RunEvent) -> None:
        await stamps.stamp_decided(self.runner, self.out, e.run)
        left = await stamps.left_running(self.runner, e.run)
        await self.out.reply(e.run.id, b.failure(e.run, reason=e.text or e.run.error or "unknown error", left_running=left))

    async def _on_cancelled(self, e: RunEvent) -> None:
        await stamps.stamp_decided(self.runner, self.out, e.run)
        left = await stamps.left_running(self.runner, e.run)
        await self.out.reply(e.run.id, b.cancelled(e.run, actor=e.actor.id if e.actor else None, left_running=left))

    # --- coalesced live messages -----------------------------------------------------

    async def _live(self, run_id: str, e: RunEvent) -> None:
        key, _ = _LIVE[e.kind]
        slot = (run_id, key)
        self._pending[slot] = e
        if slot in self._timers and not self._timers[slot].done():
            return  # a flush is already scheduled; it will send this newer state
        wait = self._last.get(slot, float("-inf")) + self.live_interval - time.monotonic()
        if wait <= 0:
            await self._flush(run_id, key)
        else:
            self._timers[slot] = asyncio.create_task(self._later(run_id, key, wait))

    async def _later(self, run_id: str, key: str, wait: float) -> None:
        await asyncio.sleep(wait)
        self._enqueue(run_id, ("flush", key))  # through the run's queue: edits stay in order

    async def _flush(self, run_id: str, key: str) -> None:
        e = self._pending.pop((run_id, key), None)
        if e is None:
            return
        self._last[(run_id, key)] = time.monotonic()
        await self.out.put(run_id, key, live_message(e))

    async def _flush_all(self, run_id: str) -> None:
        for slot in [s for s in self._pending if s[0] == run_id]:
            timer = self._timers.pop(slot, None)
            if timer is not None:
                timer.cancel()
            await self._flush(*slot)


def live_message(e: RunEvent) -> Message:
    """The message a live event would render now (tests compare it with the thread)."""
    key, title = _LIVE[e.kind]
    cands = [c for c in e.candidates if c.idx == 0] if key == "final_board" else rank(e.candidates)
    return b.scoreboard(e.run, cands, title=title)
