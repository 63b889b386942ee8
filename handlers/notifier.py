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
from handlers.messages import FINAL, FINAL_BOARD, ROOT, SCOREBOARD, MessageKey, RunMessages
from handlers.render import board, budget_gate, final_message, idle_notice, plan_message, questions, replies, root_message
from handlers.render.mrkdwn import Message, clip, escape, user
from handlers.render.review import spec_excerpt
from pipeline.domain.authz import Action, Deciders, Policy, deciders
from pipeline.domain.gates import PROMOTION, GateKey
from pipeline.domain.machine import Phase
from pipeline.domain.platform import Platform
from pipeline.domain.records import RunRecord
from pipeline.planning.plan_types import Plan
from pipeline.run import events
from pipeline.run.authorship import authors_of
from pipeline.run.scoreboard import rank
from pipeline.run.spending import run_ledger
from pipeline.run.summary import summarize
from pipeline.store import runs
from pipeline.store.db import Database

log = logging.getLogger("sftbot.slack.notifier")

LIVE: dict[type[events.RunEvent], MessageKey] = {
    events.ScoreboardChanged: SCOREBOARD,
    events.QuotaWait: SCOREBOARD,  # the queued jobs' "waiting for quota (N running)" line is on the scoreboard
    events.FinalProgress: FINAL_BOARD,
}
Item = tuple[str, Any]  # ("event", RunEvent) | ("flush", MessageKey) | ("post", Message)


def live_message(e: events.RunEvent, *, max_parallel: int = 6) -> Message:
    """The message a live event renders now (tests compare it with the thread)."""
    if isinstance(e, events.FinalProgress):
        return board.final_board(e.run, e.candidate)
    assert isinstance(e, events.ScoreboardChanged)
    return board.scoreboard(e.run, rank(e.candidates), max_parallel=max_parallel)


class Notifier:
    """The EventBus subscriber that keeps every Slack-started run's messages current."""

    def __init__(
        self,
        db: Database,
        platform: Platform,
        out: RunMessages,
        *,
        live_interval: float = 3.0,
        policy: Callable[[], Policy] = Policy,
        dm_approvers: Callable[[str, str | None], Awaitable[bool]] | None = None,
    ) -> None:
        self.db = db
        self.platform = platform
        self.out = out
        self.policy = policy  # read at each message: who can decide is said with the ask
        self.dm_approvers = dm_approvers  # SFTBOT_DM_APPROVERS: is a person in a channel (only they are DMed)
        self.live_interval = live_interval
        self._queues: dict[str, deque[Item]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[tuple[str, MessageKey], events.RunEvent] = {}
        self._last: dict[tuple[str, MessageKey], float] = {}
        self._timers: dict[tuple[str, MessageKey], asyncio.Task[None]] = {}
        self.handlers: dict[type[events.RunEvent], Callable[[Any], Awaitable[None]]] = {
            events.RunCreated: self._created,
            events.PhaseChanged: self._phase_changed,
            events.QuestionAsked: self._question,
            events.PlanProposed: self._plan,
            events.PlanDecided: self._stamp,
            events.PromotionRequested: self._promotion,
            events.PromotionDecided: self._stamp,
            events.BudgetRequested: self._budget,
            events.BudgetDecided: self._stamp,
            events.StallWarning: self._stall,
            events.EvaluatorFailed: self._evaluator_failed,
            events.EvaluationDone: self._quiet,
            events.Deployed: self._quiet,
            events.DeploymentTornDown: self._torn_down,
            events.DeploymentIdle: self._idle,
            events.DeploymentKept: self._kept,
            events.ReportReady: self._report,
            events.RunFailed: self._failed,
            events.RunCancelled: self._cancelled,
            events.StoragePaused: self._storage,
        }

    async def __call__(self, event: events.RunEvent) -> None:
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

    async def _handle(self, e: events.RunEvent) -> None:
        if type(e) in LIVE:
            await self._live(e.run.id, e)
            return
        if isinstance(e, events.PromotionRequested | events.ReportReady | events.RunFailed | events.RunCancelled):
            await self._flush_all(e.run.id)
        handler = self.handlers.get(type(e))
        if handler is not None:
            await handler(e)

    async def _created(self, e: events.RunCreated) -> None:
        # Nothing in the channel yet: a run whose data cannot be used is the requester's
        # business only (told privately); the root appears with the first question or plan.
        return None

    async def _deciders(self, run: RunRecord, action: Action) -> Deciders:
        authors = await authors_of(self.db, run, run.plan_version) if action is Action.APPROVE else frozenset()
        usd = run.estimated_usd
        if run.phase is Phase.AWAITING_BUDGET and run.budget is not None:
            usd = run.budget.approved_usd + run.budget.more_usd  # what would be approved in all
        return deciders(action, policy=self.policy(), requester=run.requester, authors=authors, estimated_usd=usd)

    async def _phase_changed(self, e: events.PhaseChanged) -> None:
        await self._root(e.run, actor=e.actor.id if e.actor else None)
        if e.previous is Phase.AWAITING_INPUT:
            await stamps.stamp_decided(self.db, self.out, e.run)

    async def _root(self, run: RunRecord, *, actor: str | None = None) -> None:
        if run.channel is None:
            return
        if run.phase is Phase.INSPECTING and await self.out.get(run.id, ROOT) is None:
            return  # not shown until there is something for the channel to see
        if run.phase.finished and await self.out.get(run.id, ROOT) is None:
            return  # ended before the channel saw it: the requester was told privately
        model = (await summarize(self.db, self.platform, run)).model if run.phase is Phase.SUCCEEDED else None
        action = Action.PROMOTE if run.phase is Phase.AWAITING_PROMOTION else Action.APPROVE
        every = await runs.candidates(self.db, run.id) if run.plan_version else []
        msg = root_message.root(
            run,
            book=await run_ledger(self.db, run),
            cands=[c for c in every if not c.slot.is_final],
            deciders=await self._deciders(run, action) if run.phase.gate else None,
            model=model,
            actor=actor,
        )
        await self.out.root(run.id, run.channel, msg)

    async def _question(self, e: events.QuestionAsked) -> None:
        await self._root(e.run)
        key = MessageKey.gate(e.question.gate)
        # Deploying anyway spends like a promotion: the message names who may decide it.
        who = await self._deciders(e.run, Action.PROMOTE) if e.question.kind.blocks_deploy else None
        new = await self.out.put(e.run.id, key, questions.question(e.run, e.question, deciders=who), gate=True)
        await self.out.set_meta(e.run.id, key, text=e.question.text)
        if new and e.question.detail and e.question.detail_for:
            await self.out.private(e.run.id, e.question.detail_for, replies.problem_message(e.question.detail))

    async def _plan(self, e: events.PlanProposed) -> None:
        await self._root(e.run)
        key = MessageKey.gate(GateKey.plan(e.plan.version))
        previous = await runs.get_plan(self.db, e.run.id, e.plan.version - 1) if e.plan.version > 1 else None
        msg = plan_message.plan_message(
            e.run,
            e.plan,
            deciders=await self._deciders(e.run, Action.APPROVE),
            previous=previous,
            spec_excerpt=spec_excerpt(e.plan),
        )
        await self.out.put(e.run.id, key, msg, gate=True)
        await self._dm(e.run, key, f"plan v{e.plan.version} of run #{e.run.number} waits for your approval", Action.APPROVE)
        await self._upload_review_files(e.run, e.plan)
        await stamps.stamp_decided(self.db, self.out, e.run)

    async def _dm(self, run: RunRecord, key: MessageKey, what: str, action: Action) -> None:
        """With SFTBOT_DM_APPROVERS, a DM with a link to each person (not group) who can decide; once per gate."""
        in_channel = self.dm_approvers
        if in_channel is None or not await self.out.mark(run.id, MessageKey(f"dm:{key}")):
            return
        link = await self.out.permalink(run.id)
        where = f"<{link}|open the thread>" if link else f"see <#{run.channel}>"
        people = [i for i in (await self._deciders(run, action)).ids if i[:1] in ("U", "W")]
        # A DM names the run: only to those who can see its channel (they are the ones who can act there).
        for person in [p for p in people[:20] if await in_channel(p, run.channel)]:
            await self.out.direct(person, replies.note_message(f"👋 {what[:1].upper()}{what[1:]} ({where})."))

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

    async def _stamp(self, e: events.RunEvent) -> None:
        await stamps.stamp_decided(self.db, self.out, e.run)

    async def _promotion(self, e: events.PromotionRequested) -> None:
        key = MessageKey.gate(PROMOTION)
        # The scoreboard becomes the gate (edited, not repeated just below itself).
        await self.out.adopt(e.run.id, key, SCOREBOARD)
        plan = await runs.get_plan(self.db, e.run.id, e.run.plan_version) if e.run.plan_version else None
        msg = board.promotion_gate(
            e.run,
            list(e.ranked),
            summary=e.summary,
            deciders=await self._deciders(e.run, Action.PROMOTE),
            plan=plan,
            comparison=e.comparison,
        )
        await self.out.put(e.run.id, key, msg, gate=True)
        await self.out.set_meta(e.run.id, key, summary=e.summary)
        await self._dm(e.run, key, f"the sweep of run #{e.run.number} is done: promote a candidate", Action.PROMOTE)
        if e.curves is not None:
            await self.out.upload(e.run.id, "sweep_curves", e.curves, title=f"Run #{e.run.number} sweep loss curves")

    async def _budget(self, e: events.BudgetRequested) -> None:
        await self._root(e.run)
        key = MessageKey.gate(e.request.gate)
        msg = budget_gate.budget_gate(e.run, e.request, deciders=await self._deciders(e.run, Action.APPROVE))
        await self.out.put(e.run.id, key, msg, gate=True)
        await self.out.set_meta(e.run.id, key, request=e.request.model_dump_json())
        await self._dm(e.run, key, f"run #{e.run.number} needs more money approved before {e.request.step.label}", Action.APPROVE)

    async def _stall(self, e: events.StallWarning) -> None:
        text = f"{e.label}: no progress for {e.minutes:.0f} minutes (still waiting; not failed)"
        await self.out.reply(e.run.id, root_message.notice(text, icon="⚠️"))

    async def _evaluator_failed(self, e: events.EvaluatorFailed) -> None:
        await self.out.reply(e.run.id, root_message.notice(e.reason, icon="⚠️"))

    async def _quiet(self, e: events.RunEvent) -> None:
        """Evaluated, deployed: the root says where the run is, the final message says the rest."""
        return None

    async def _torn_down(self, e: events.DeploymentTornDown) -> None:
        who = user(e.actor.id) if e.actor and e.actor.id[:1] in ("U", "W") else (escape(e.actor.label) if e.actor else None)
        await self.out.reply(e.run.id, replies.note_message(replies.torn_down_text(e.run, e.deployment_id, e.state, who=who)))

    async def _idle(self, e: events.DeploymentIdle) -> None:
        """The requester is asked in a DM (the buttons); the thread says that they were."""
        link = await self.out.permalink(e.run.id)
        dm = idle_notice.idle_dm(e.run, e.deployment_id, hours=e.hours, usd_per_hour=e.usd_per_hour, link=link)
        await self.out.direct(e.run.requester, dm)
        note = idle_notice.idle_note(e.run, e.deployment_id, hours=e.hours, usd_per_hour=e.usd_per_hour)
        await self.out.reply(e.run.id, replies.note_message(note))

    async def _kept(self, e: events.DeploymentKept) -> None:
        who = user(e.actor.id) if e.actor and e.actor.id[:1] in ("U", "W") else (escape(e.actor.label) if e.actor else "sftbot")
        await self.out.reply(
            e.run.id, replies.note_message(idle_notice.kept_text(e.run, e.deployment_id, scaled=e.scaled, who=who))
        )

    async def _report(self, e: events.ReportReady) -> None:
        # Uploads first, so the thread ends with the answer, not with a file.
        await self.out.upload(e.run.id, "final_report", e.report, title=f"Run #{e.run.number} final report")
        await self.out.put(e.run.id, FINAL, final_message.final_message(await summarize(self.db, self.platform, e.run)))

    async def _storage(self, e: events.StoragePaused) -> None:
        text = (
            f"{user(e.run.requester)} run #{e.run.number} is paused: the bot's own storage failed ({escape(clip(e.reason, 300))}). "
            "Its jobs keep running; it goes on by itself when the storage is back, and nothing is lost."
        )
        await self.out.reply(e.run.id, replies.note_message(f"⚠️ {text}"))

    async def _ending(self, run: RunRecord, msg: Message) -> None:
        """In the thread when the channel has seen the run; otherwise to the requester only."""
        if await self.out.get(run.id, ROOT) is not None:
            await stamps.stamp_decided(self.db, self.out, run)
            await self.out.reply(run.id, msg)
        elif run.channel is not None:
            await self.out.tell(run.channel, run.requester, msg)

    async def _failed(self, e: events.RunFailed) -> None:
        left, started = await left_running(self.db, e.run), await started_jobs(self.db, e.run)
        await self._ending(e.run, root_message.failure(e.run, reason=e.reason, left_running=left, started_jobs=started))

    async def _cancelled(self, e: events.RunCancelled) -> None:
        left, started = await left_running(self.db, e.run), await started_jobs(self.db, e.run)
        actor = e.actor.id if e.actor else None
        await self._ending(e.run, root_message.cancelled(e.run, actor=actor, left_running=left, started_jobs=started))

    # --- coalesced live messages -----------------------------------------------------

    async def _live(self, run_id: str, e: events.RunEvent) -> None:
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
        if key == SCOREBOARD and await self.out.get(run_id, MessageKey.gate(PROMOTION)) is not None:
            return  # the scoreboard is the gate now: a late tick must not overwrite it
        plan = await runs.get_plan(self.db, run_id, e.run.plan_version) if e.run.plan_version else None
        await self.out.put(run_id, key, live_message(e, max_parallel=plan.max_parallel if plan else 6))
        await self._spend_warning(e.run)

    async def _spend_warning(self, run: RunRecord) -> None:
        """Once per run, in the thread, when what was spent passes 80% of the cap."""
        if run.approved_usd is None or run.platform == "local" or run.channel is None:
            return
        book = await run_ledger(self.db, run)
        if book.warning and await self.out.mark(run.id, MessageKey("warn:spend80")):
            await self.out.reply(run.id, root_message.notice(budget_gate.warning_text(run, book), icon="⚠️"))

    async def _flush_all(self, run_id: str) -> None:
        for slot in [s for s in self._pending if s[0] == run_id]:
            timer = self._timers.pop(slot, None)
            if timer is not None:
                timer.cancel()
            await self._flush(*slot)


async def started_jobs(db: Database, run: RunRecord) -> int:
    """How many of this run's jobs the platform accepted (0: nothing was spent)."""
    row = await db.fetchone("SELECT COUNT(*) FROM audit_events WHERE run_id=? AND action='job_created'", (run.id,))
    return int(row[0]) if row else 0


async def left_running(db: Database, run: RunRecord) -> list[str]:
    """What of this run still exists and may cost money (after the runner's own cancels)."""
    out: list[str] = []
    for res in await db.resources(run.id):
        if res.kind == "deployment" and res.state not in ("deleted", "recorded"):
            out.append(f"deployment `{res.resource_id}` is still up (billed while up; delete it when done)")
    for c in await runs.candidates(db, run.id):
        if c.state.is_active():
            out.append(f"job `{c.job_id}` is {c.state.value}")
    return out
