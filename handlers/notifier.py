"""Turns run events into Slack: one root per run edited in place, everything else in its thread.

The bus calls the notifier inline in the runner's task, so it only queues: one worker per
run sends that run's messages in order, and a slow or rate-limited Slack never slows
training. Scoreboard edits are coalesced per run: the latest state waits in ``_pending``
and a timer flushes it at most once per ``live_interval`` seconds; when the sweep or the run
ends, the boards get one last edit from the store (every job's final state) and are closed.
Each decision is a new thread message that asks its deciders once (``asking``); the root
and every edit only name people. What each kind of event becomes is one handler per event
class (``handlers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from handlers import stamps
from handlers.asking import Asker
from handlers.messages import FINAL, FINAL_BOARD, ROOT, SCOREBOARD, MessageKey, RunMessages
from handlers.render import board, budget_gate, final_message, idle_notice, plan_message, questions, replies, root_message
from handlers.render.mrkdwn import Message, clip, escape, user
from pipeline.domain.authz import Action, Policy
from pipeline.domain.gates import PROMOTION, GateKey
from pipeline.domain.machine import Phase
from pipeline.domain.platform import Platform
from pipeline.domain.provenance import ResourceKind, ResourceState
from pipeline.domain.records import Actor, CandidateRecord, RunRecord
from pipeline.planning.ledger import DEFAULT_MARGIN
from pipeline.planning.plan_types import Plan
from pipeline.run import events
from pipeline.run.bill import Bill, run_bill
from pipeline.run.scoreboard import rank
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


def live_message(e: events.RunEvent, *, max_parallel: int = 6, bill: Bill | None = None) -> Message:
    """The message a live event renders now (tests compare it with the thread)."""
    if isinstance(e, events.FinalProgress):
        return board.final_board(e.run, e.candidate)
    assert isinstance(e, events.ScoreboardChanged)
    return board.scoreboard(e.run, rank(e.candidates), max_parallel=max_parallel, bill=bill)


class Notifier:
    """The EventBus subscriber that keeps every Slack-started run's messages current."""

    def __init__(
        self,
        db: Database,
        platform: Platform,
        out: RunMessages,
        *,
        live_interval: float = 3.0,
        asker: Asker | None = None,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        """``asker``: who decides and how they are reached (default: anyone, by mention, ids as names)."""
        self.db = db
        self.margin = margin  # the cap is what was approved x this (SFTBOT_SPEND_MARGIN)
        self.platform = platform
        self.out = out
        self.asker = asker or Asker(db, out, policy=Policy)
        self.live_interval = live_interval
        self._queues: dict[str, deque[Item]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[tuple[str, MessageKey], events.RunEvent] = {}
        self._last: dict[tuple[str, MessageKey], float] = {}
        self._timers: dict[tuple[str, MessageKey], asyncio.Task[None]] = {}
        self._quota: dict[str, int] = {}  # run id -> jobs the platform let run when it last refused one
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
            events.SpendWarning: self._spend_ahead,
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
        if isinstance(event, events.SpendWarning):
            await self._said(event.run.id)

    async def _said(self, run_id: str, patience: float = 10.0) -> None:
        """Hold the run until its queued messages are sent: a warning before a paid step must
        reach the thread before the step starts (bounded: Slack being down does not stop a run)."""
        worker = self._workers.get(run_id)
        if worker is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(worker), patience)

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
        if isinstance(e, events.QuotaWait):
            await self._quota_wait(e)
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

    async def _phase_changed(self, e: events.PhaseChanged) -> None:
        await self._root(e.run, actor=e.actor.id if e.actor else None)
        if e.previous is Phase.AWAITING_INPUT:
            await stamps.stamp_decided(self.db, self.out, e.run)

    def _gate_action(self, run: RunRecord) -> Action:
        """Who decides the run's open gate: deploying anyway and skipping are promotions' people."""
        q = run.question
        if run.phase is Phase.AWAITING_PROMOTION or (
            run.phase is Phase.AWAITING_INPUT and q is not None and q.kind.blocks_deploy
        ):
            return Action.PROMOTE
        return Action.APPROVE

    async def _root(self, run: RunRecord, *, actor: str | None = None) -> None:
        if run.channel is None:
            return
        if run.phase is Phase.INSPECTING and await self.out.get(run.id, ROOT) is None:
            return  # not shown until there is something for the channel to see
        if run.phase.finished and await self.out.get(run.id, ROOT) is None:
            return  # ended before the channel saw it: the requester was told privately
        every = await runs.candidates(self.db, run.id) if run.plan_version else []
        plan = await runs.get_plan(self.db, run.id, run.plan_version) if run.plan_version else None
        cands = [c for c in every if not c.slot.is_final]
        summary = await summarize(self.db, self.platform, run) if run.phase is Phase.SUCCEEDED else None
        ask = await self.asker.ask(run, self._gate_action(run), extra=[actor] if actor else []) if run.phase.gate else None
        facts = root_message.RootFacts(
            ask=ask,
            names=ask.names if ask is not None else await self.asker.names([run.requester, *([actor] if actor else [])]),
            cands=cands,
            bill=await run_bill(self.db, run, margin=self.margin),
            model=summary.model if summary is not None else None,
            torn_down=summary is not None and final_message.torn_down(summary),
            result=board.short_result(summary.shipped, summary.comparison) if summary and summary.shipped else None,
            actor=actor,
            max_parallel=self._parallel(run.id, cands, plan),
            plan_seconds=plan.duration.middle_seconds if plan is not None and plan.duration is not None else None,
        )
        await self.out.root(run.id, run.channel, root_message.root(run, facts))

    def _parallel(self, run_id: str, cands: list[CandidateRecord], plan: Plan | None) -> int:
        """Jobs that can run at once now: the plan's limit, or the platform's quota while it holds jobs back."""
        limit = plan.max_parallel if plan is not None else 6
        quota = self._quota.get(run_id)
        held = any((c.note or "").startswith("waiting for quota") for c in cands)
        return max(1, min(limit, quota)) if quota is not None and held else limit

    async def _quota_wait(self, e: events.QuotaWait) -> None:
        changed = self._quota.get(e.run.id) != e.running
        self._quota[e.run.id] = e.running
        if changed:
            await self._root(e.run)  # the root says how many jobs wait for the quota

    async def _question(self, e: events.QuestionAsked) -> None:
        await self._root(e.run)
        key = MessageKey.gate(e.question.gate)
        # Deploying anyway spends like a promotion: the message asks whoever may decide it.
        ask = await self.asker.ask(e.run, Action.PROMOTE) if e.question.kind.blocks_deploy else None
        msg = questions.question(e.run, e.question, ask=ask)
        new = await self.out.put(e.run.id, key, msg, gate=True)
        await self.out.set_meta(e.run.id, key, text=e.question.text)
        if ask is not None:
            head = f"*Run #{e.run.number}* by {ask.plain_name(e.run.requester)}: deploy blocked. {escape(clip(e.question.text, 300))}"
            await self.asker.dm(e.run, e.question.gate, ask, head, msg)
        if new and e.question.detail and e.question.detail_for:
            await self.out.private(e.run.id, e.question.detail_for, replies.problem_message(e.question.detail))

    async def _plan(self, e: events.PlanProposed) -> None:
        await self._root(e.run)
        gate = GateKey.plan(e.plan.version)
        previous = await runs.get_plan(self.db, e.run.id, e.plan.version - 1) if e.plan.version > 1 else None
        owner = e.plan.evaluator.owner if e.plan.evaluator is not None else None  # named in "Judged by"
        ask = await self.asker.ask(e.run, Action.APPROVE, extra=[i for i in (e.plan.author, owner) if i])
        author = ask.names.get(e.plan.author, e.plan.author) if e.plan.author else None
        msg = plan_message.plan_message(e.run, e.plan, ask=ask, previous=previous, author=author)
        await self.out.put(e.run.id, MessageKey.gate(gate), msg, gate=True)
        head = (
            f"*Plan v{e.plan.version} of run #{e.run.number}* by {ask.plain_name(e.run.requester)} waits for your approval: "
            f"{plan_message.title(e.run, e.plan).split(' · ', 2)[-1]} · {len(e.plan.candidates)} candidates"
        )
        await self.asker.dm(e.run, gate, ask, head, msg)
        await self._upload_review_files(e.run, e.plan)
        await stamps.stamp_decided(self.db, self.out, e.run)

    async def _upload_review_files(self, run: RunRecord, plan: Plan) -> None:
        """A generated ``evaluator.py``, once per distinct content: its code, to read before approving.
        Its ``eval_spec.md`` is the plan's "Evaluation spec" modal (as mrkdwn), not a second file."""
        ev_info = plan.evaluator
        if ev_info is None or ev_info.kind == "user":  # the person's own file: they have it already
            return
        path = Path(ev_info.evaluator_path) if ev_info.evaluator_path else None
        if path is None or not path.is_file():
            return
        digest = hashlib.sha256(await asyncio.to_thread(path.read_bytes)).hexdigest()[:16]
        title = f"evaluator.py · run #{run.number}, plan v{plan.version}"
        await self.out.upload(run.id, f"evaluator:{path.name}:{digest}", path, title=title)

    async def _stamp(self, e: events.RunEvent) -> None:
        await stamps.stamp_decided(self.db, self.out, e.run)

    async def _promotion(self, e: events.PromotionRequested) -> None:
        """The scoreboard's last edit (every job's final state), then the gate as a new message."""
        await self._close_boards(e.run, board.Ended.DONE)
        key = MessageKey.gate(PROMOTION)
        plan = await runs.get_plan(self.db, e.run.id, e.run.plan_version) if e.run.plan_version else None
        ask = await self.asker.ask(e.run, Action.PROMOTE)
        msg = board.promotion_gate(e.run, list(e.ranked), ask=ask, plan=plan, comparison=e.comparison, note=e.run.evaluator_error)
        await self.out.put(e.run.id, key, msg, gate=True)
        head = f"*Run #{e.run.number}* by {ask.plain_name(e.run.requester)}: the sweep is done. " + msg.blocks[0]["text"][
            "text"
        ].split("\n")[0].replace(f"{ask.mentions()}: ", "")
        await self.asker.dm(e.run, PROMOTION, ask, clip(head, 1500), msg)
        if e.curves is not None:
            await self.out.upload(e.run.id, "sweep_curves", e.curves, title=f"Run #{e.run.number} sweep loss curves")

    async def _budget(self, e: events.BudgetRequested) -> None:
        await self._root(e.run)
        gate = e.request.gate
        ask = await self.asker.ask(e.run, Action.APPROVE)
        msg = budget_gate.budget_gate(e.run, e.request, ask=ask)
        await self.out.put(e.run.id, MessageKey.gate(gate), msg, gate=True)
        await self.out.set_meta(e.run.id, MessageKey.gate(gate), request=e.request.model_dump_json())
        head = f"*Run #{e.run.number}* by {ask.plain_name(e.run.requester)}: {budget_gate.headline(e.run, e.request).split(': ', 1)[-1]}"
        await self.asker.dm(e.run, gate, ask, head, msg)

    async def _stall(self, e: events.StallWarning) -> None:
        text = f"{e.label}: no progress for {e.minutes:.0f} minutes (still waiting; not failed)"
        await self.out.reply(e.run.id, root_message.notice(text, icon="⚠️"))

    async def _evaluator_failed(self, e: events.EvaluatorFailed) -> None:
        await self.out.reply(e.run.id, root_message.notice(e.reason, icon="⚠️"))

    async def _quiet(self, e: events.RunEvent) -> None:
        """Evaluated, deployed: the root says where the run is, the final message says the rest."""
        return None

    async def _actor_name(self, actor: Actor | None, fallback: str) -> str:
        if actor is None:
            return fallback
        if actor.id[:1] in ("U", "W"):
            return escape((await self.asker.names([actor.id])).get(actor.id, actor.id))
        return escape(actor.label)

    async def _torn_down(self, e: events.DeploymentTornDown) -> None:
        """A note (naming who, no ping), and the root and final message made true again."""
        who = await self._actor_name(e.actor, "sftbot")
        await self.out.reply(e.run.id, replies.note_message(replies.torn_down_text(e.run, e.deployment_id, e.state, who=who)))
        await self._root(e.run)
        if await self.out.get(e.run.id, FINAL) is not None:
            await self.out.put(e.run.id, FINAL, final_message.final_message(await summarize(self.db, self.platform, e.run)))

    async def _idle(self, e: events.DeploymentIdle) -> None:
        """The requester is asked in a DM (the buttons); the thread says that they were."""
        link = await self.out.permalink(e.run.id)
        dm = idle_notice.idle_dm(e.run, e.deployment_id, hours=e.hours, usd_per_hour=e.usd_per_hour, link=link)
        await self.out.direct(e.run.requester, dm)
        name = (await self.asker.names([e.run.requester])).get(e.run.requester, e.run.requester)
        note = idle_notice.idle_note(e.run, e.deployment_id, hours=e.hours, usd_per_hour=e.usd_per_hour, asked=escape(name))
        await self.out.reply(e.run.id, replies.note_message(note))

    async def _kept(self, e: events.DeploymentKept) -> None:
        who = await self._actor_name(e.actor, "sftbot")
        await self.out.reply(
            e.run.id, replies.note_message(idle_notice.kept_text(e.run, e.deployment_id, scaled=e.scaled, who=who))
        )

    async def _report(self, e: events.ReportReady) -> None:
        await self._close_boards(e.run, board.Ended.DONE)
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
        await self._close_boards(e.run, board.Ended.FAILED)
        left, started = await left_running(self.db, e.run), await started_jobs(self.db, e.run)
        private = await self.out.get(e.run.id, ROOT) is None  # only the requester reads it: the reason whole
        bill = await run_bill(self.db, e.run, margin=self.margin) if e.run.billed else None
        msg = root_message.failure(e.run, reason=e.reason, left_running=left, started_jobs=started, whole=private, bill=bill)
        await self._ending(e.run, msg)

    async def _cancelled(self, e: events.RunCancelled) -> None:
        await self._close_boards(e.run, board.Ended.CANCELLED)
        left, started = await left_running(self.db, e.run), await started_jobs(self.db, e.run)
        actor = e.actor.id if e.actor else None
        names = await self.asker.names([a for a in (actor, e.run.requester) if a])
        bill = await run_bill(self.db, e.run, margin=self.margin) if e.run.billed else None
        msg = root_message.cancelled(e.run, actor=actor, left_running=left, started_jobs=started, names=names, bill=bill)
        await self._ending(e.run, msg)

    # --- live messages: coalesced while the run goes on, closed when it ends ---------------

    async def _close_boards(self, run: RunRecord, ended: board.Ended) -> None:
        """The last edit of the scoreboard and the final run's line: every job's final state, from the store."""
        every = await runs.candidates(self.db, run.id)
        sweep = rank([c for c in every if not c.slot.is_final])
        final = next((c for c in every if c.slot.is_final), None)
        closing: list[tuple[MessageKey, Message]] = []
        if sweep:
            bill = await run_bill(self.db, run, margin=self.margin) if run.billed else None
            closing.append((SCOREBOARD, board.scoreboard(run, sweep, ended=ended, bill=bill)))
        if final is not None:
            closing.append((FINAL_BOARD, board.final_board(run, final, ended=True)))
        for key, msg in closing:
            self._drop_pending(run.id, key)
            posted = await self.out.get(run.id, key)
            if posted is None or posted.meta.get("ended"):
                continue  # never shown, or closed before (a restart announcing again)
            await self.out.put(run.id, key, msg)
            await self.out.set_meta(run.id, key, ended=ended.value)

    def _drop_pending(self, run_id: str, key: MessageKey) -> None:
        self._pending.pop((run_id, key), None)
        timer = self._timers.pop((run_id, key), None)
        if timer is not None:
            timer.cancel()

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
        posted = await self.out.get(run_id, key)
        if posted is not None and posted.meta.get("ended"):
            return  # the board was closed with every job's final state: a late tick must not reopen it
        plan = await runs.get_plan(self.db, run_id, e.run.plan_version) if e.run.plan_version else None
        cands = list(e.candidates) if isinstance(e, events.ScoreboardChanged) else []
        bill = await run_bill(self.db, e.run, margin=self.margin) if e.run.billed else None
        await self.out.put(run_id, key, live_message(e, max_parallel=self._parallel(run_id, cands, plan), bill=bill))
        await self._spend_warning(e.run)

    async def _spend_ahead(self, e: events.SpendWarning) -> None:
        """Before a paid step: a new thread message (edits do not notify), and the after-the-fact
        80% warning is then not said again."""
        await self.out.mark(e.run.id, MessageKey("warn:spend80"))
        if await self.out.mark(e.run.id, MessageKey(f"warn:ahead:{e.step.value}")):
            await self.out.reply(e.run.id, root_message.notice(e.sentence(), icon="⚠️"))

    async def _spend_warning(self, run: RunRecord) -> None:
        """Once per run, in the thread, when what was spent passes 80% of the cap."""
        if run.approved_usd is None or not run.billed or run.channel is None:
            return
        book = await run_bill(self.db, run, margin=self.margin)
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
        if res.kind is ResourceKind.DEPLOYMENT and res.state not in (ResourceState.DELETED, ResourceState.RECORDED):
            out.append(f"deployment `{res.resource_id}` is still up (billed while up; delete it when done)")
    for c in await runs.candidates(db, run.id):
        if c.state.is_active():
            out.append(f"job `{c.job_id}` is {c.state.value}")
    return out
