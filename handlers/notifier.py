"""Turns run events into Slack: one root per run edited in place, everything else in its thread.

The bus calls the notifier inline in the runner's task, so it only queues: one worker per
run sends that run's messages in order, and a slow or rate-limited Slack never slows
training. Scoreboard edits are coalesced per run: the latest state waits in ``_pending``
and a timer flushes it at most once per ``live_interval`` seconds. What each kind of event
becomes is one handler per event class (``HANDLERS``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from handlers import stamps
from handlers.messages import FINAL, FINAL_BOARD, SCOREBOARD, MessageKey, RunMessages
from handlers.render import questions, replies
from handlers.render import run as render
from handlers.render.mrkdwn import Message, clip, escape, user
from handlers.render.review import spec_excerpt
from pipeline.planning.models import Plan
from pipeline.platforms.base import Platform
from pipeline.run import events as ev
from pipeline.run.gates import PROMOTION, GateKey
from pipeline.run.machine import Phase
from pipeline.run.summary import summarize
from pipeline.scoreboard import rank
from pipeline.store import runs as q
from pipeline.store.db import Database
from pipeline.store.records import RunRecord

log = logging.getLogger("sftbot.slack.notifier")

LIVE: dict[type[ev.RunEvent], MessageKey] = {
    ev.ScoreboardChanged: SCOREBOARD,
    ev.QuotaWait: SCOREBOARD,  # the queued jobs' "waiting for quota (N running)" line is on the scoreboard
    ev.FinalProgress: FINAL_BOARD,
}
Item = tuple[str, Any]  # ("event", RunEvent) | ("flush", MessageKey) | ("post", Message)


def live_message(e: ev.RunEvent) -> Message:
    """The message a live event renders now (tests compare it with the thread)."""
    if isinstance(e, ev.FinalProgress):
        return render.scoreboard(e.run, [e.candidate], title="Final run")
    assert isinstance(e, ev.ScoreboardChanged)
    return render.scoreboard(e.run, rank(e.candidates), title="Sweep scoreboard")


class Notifier:
    """The EventBus subscriber that keeps every Slack-started run's messages current."""

    def __init__(self, db: Database, platform: Platform, out: RunMessages, *, live_interval: float = 3.0) -> None:
        self.db = db
        self.platform = platform
        self.out = out
        self.live_interval = live_interval
        self._queues: dict[str, deque[Item]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[tuple[str, MessageKey], ev.RunEvent] = {}
        self._last: dict[tuple[str, MessageKey], float] = {}
        self._timers: dict[tuple[str, MessageKey], asyncio.Task[None]] = {}
        self.handlers: dict[type[ev.RunEvent], Callable[[Any], Awaitable[None]]] = {
            ev.RunCreated: self._created,
            ev.PhaseChanged: self._phase_changed,
            ev.QuestionAsked: self._question,
            ev.PlanProposed: self._plan,
            ev.PlanDecided: self._stamp,
            ev.PromotionRequested: self._promotion,
            ev.PromotionDecided: self._stamp,
            ev.StallWarning: self._stall,
            ev.EvaluatorFailed: self._evaluator_failed,
            ev.EvaluationDone: self._evaluated,
            ev.Deployed: self._deployed,
            ev.DeploymentTornDown: self._torn_down,
            ev.ReportReady: self._report,
            ev.RunFailed: self._failed,
            ev.RunCancelled: self._cancelled,
            ev.StoragePaused: self._storage,
        }

    async def __call__(self, event: ev.RunEvent) -> None:
        if event.run.channel is None:
            return  # a run started elsewhere (terminal): not ours to show
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
                log.exception("slack update failed for run %s (%s)", run_id, type(payload).__name__)

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

    async def _handle(self, e: ev.RunEvent) -> None:
        if type(e) in LIVE:
            await self._live(e.run.id, e)
            return
        if isinstance(e, ev.PromotionRequested | ev.ReportReady | ev.RunFailed | ev.RunCancelled):
            await self._flush_all(e.run.id)
        handler = self.handlers.get(type(e))
        if handler is not None:
            await handler(e)

    async def _created(self, e: ev.RunCreated) -> None:
        assert e.run.channel is not None
        await self.out.root(e.run.id, e.run.channel, render.root(e.run))

    async def _phase_changed(self, e: ev.PhaseChanged) -> None:
        await self._root(e.run, actor=e.actor.id if e.actor else None)
        if e.previous is Phase.AWAITING_INPUT:
            await stamps.stamp_decided(self.db, self.out, e.run)

    async def _root(self, run: RunRecord, *, actor: str | None = None) -> None:
        plan = await q.get_plan(self.db, run.id, run.plan_version) if run.plan_version else None
        model = (await summarize(self.db, self.platform, run)).model if run.phase is Phase.SUCCEEDED else None
        msg = render.root(run, candidates=len(plan.candidates) if plan else 0, model=model, actor=actor)
        if run.channel is not None:
            await self.out.root(run.id, run.channel, msg)

    async def _question(self, e: ev.QuestionAsked) -> None:
        key = MessageKey.gate(e.question.gate)
        new = await self.out.put(e.run.id, key, questions.question(e.run, e.question), gate=True)
        await self.out.set_meta(e.run.id, key, text=e.question.text)
        if new and e.question.detail and e.question.detail_for:
            await self.out.private(e.run.id, e.question.detail_for, replies.problem_message(e.question.detail))

    async def _plan(self, e: ev.PlanProposed) -> None:
        key = MessageKey.gate(GateKey.plan(e.plan.version))
        await self.out.put(e.run.id, key, render.plan_message(e.run, e.plan, spec_excerpt=spec_excerpt(e.plan)), gate=True)
        await self._upload_review_files(e.run, e.plan)
        await stamps.stamp_decided(self.db, self.out, e.run)
        await self._root(e.run)

    async def _upload_review_files(self, run: RunRecord, plan: Plan) -> None:
        """A generated evaluator's ``evaluator.py`` and ``eval_spec.md``, once per distinct content."""
        ev_info = plan.evaluator
        if ev_info is None or ev_info.kind == "user":  # the person's own file: they have it already
            return
        for raw in (ev_info.evaluator_path, ev_info.spec_path):
            path = Path(raw) if raw else None
            if path is None or not path.is_file():
                continue
            digest = hashlib.sha256(await asyncio.to_thread(path.read_bytes)).hexdigest()[:16]
            title = f"Run #{run.number} {path.name} (generated evaluator, plan v{plan.version})"
            await self.out.upload(run.id, f"evaluator:{path.name}:{digest}", path, title=title)

    async def _stamp(self, e: ev.RunEvent) -> None:
        await stamps.stamp_decided(self.db, self.out, e.run)

    async def _promotion(self, e: ev.PromotionRequested) -> None:
        key = MessageKey.gate(PROMOTION)
        await self.out.put(e.run.id, key, render.promotion_gate(e.run, list(e.ranked), summary=e.summary), gate=True)
        await self.out.set_meta(e.run.id, key, summary=e.summary)
        if e.curves is not None:
            await self.out.upload(e.run.id, "sweep_curves", e.curves, title=f"Run #{e.run.number} sweep loss curves")

    async def _stall(self, e: ev.StallWarning) -> None:
        text = f"{e.label}: no progress for {e.minutes:.0f} minutes (still waiting; not failed)"
        await self.out.reply(e.run.id, render.notice(text, icon="⚠️"))

    async def _evaluator_failed(self, e: ev.EvaluatorFailed) -> None:
        await self.out.reply(e.run.id, render.notice(e.reason, icon="⚠️"))

    async def _evaluated(self, e: ev.EvaluationDone) -> None:
        await self.out.reply(e.run.id, render.notice(e.summary, icon="📏"))

    async def _deployed(self, e: ev.Deployed) -> None:
        text = f"Deployed {e.deployment.model} as {e.deployment.deployment_id}"
        await self.out.reply(e.run.id, render.notice(text, icon="🚀"))

    async def _torn_down(self, e: ev.DeploymentTornDown) -> None:
        who = user(e.actor.id) if e.actor and e.actor.id[:1] in ("U", "W") else (escape(e.actor.label) if e.actor else None)
        await self.out.reply(e.run.id, replies.note_message(replies.torn_down_text(e.run, e.deployment_id, e.state, who=who)))

    async def _report(self, e: ev.ReportReady) -> None:
        await self.out.put(e.run.id, FINAL, render.final_message(await summarize(self.db, self.platform, e.run)))
        await self.out.upload(e.run.id, "final_report", e.report, title=f"Run #{e.run.number} final report")
        if e.curves is not None:
            await self.out.upload(e.run.id, "final_curves", e.curves, title=f"Run #{e.run.number} loss curves")

    async def _storage(self, e: ev.StoragePaused) -> None:
        text = (
            f"{user(e.run.requester)} run #{e.run.number} is paused: the bot's own storage failed ({escape(clip(e.reason, 300))}). "
            "Its jobs keep running; it goes on by itself when the storage is back, and nothing is lost."
        )
        await self.out.reply(e.run.id, replies.note_message(f"⚠️ {text}"))

    async def _failed(self, e: ev.RunFailed) -> None:
        await stamps.stamp_decided(self.db, self.out, e.run)
        left = await left_running(self.db, e.run)
        await self.out.reply(e.run.id, render.failure(e.run, reason=e.reason, left_running=left))

    async def _cancelled(self, e: ev.RunCancelled) -> None:
        await stamps.stamp_decided(self.db, self.out, e.run)
        left = await left_running(self.db, e.run)
        await self.out.reply(e.run.id, render.cancelled(e.run, actor=e.actor.id if e.actor else None, left_running=left))

    # --- coalesced live messages -----------------------------------------------------

    async def _live(self, run_id: str, e: ev.RunEvent) -> None:
        key = LIVE[type(e)]
        slot = (run_id, key)
        self._pending[slot] = e
        if slot in self._timers and not self._timers[slot].done():
            return  # a flush is already scheduled; it will send this newer state
        wait = self._last.get(slot, float("-inf")) + self.live_interval - time.monotonic()
        if wait <= 0:
            await self._flush(run_id, key)
        else:
            self._timers[slot] = asyncio.create_task(self._later(run_id, key, wait))

    async def _later(self, run_id: str, key: MessageKey, wait: float) -> None:
        await asyncio.sleep(wait)
        self._enqueue(run_id, ("flush", key))  # through the run's queue: edits stay in order

    async def _flush(self, run_id: str, key: MessageKey) -> None:
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


async def left_running(db: Database, run: RunRecord) -> list[str]:
    """What of this run still exists and may cost money (after the runner's own cancels)."""
    out: list[str] = []
    for res in await db.resources(run.id):
        if res.kind == "deployment" and res.state not in ("deleted", "recorded"):
            out.append(f"deployment `{res.resource_id}` is still up (billed while up; delete it when done)")
    for c in await q.candidates(db, run.id):
        if c.state.is_active():
            out.append(f"job `{c.job_id}` is {c.state.value}")
    return out
