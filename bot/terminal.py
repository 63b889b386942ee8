"""The terminal surface: progress (a live table in a TTY, plain lines in a pipe or CI) and the
same gates as Slack (prompt, or --yes).

Events are queued by the bus subscriber and handled by ``follow``, so a prompt never runs
inside the runner's own publish call. Decisions go through the same ``Runner.decide`` as
every Slack click.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from bot.console import comparison_lines, plan_text
from bot.errors import EXIT_CANCELLED, EXIT_FAILED, EXIT_NEEDS_PERSON, NeedsPerson
from bot.live import LiveBoard
from pipeline.domain.gates import BudgetRequest, BudgetStep, QuestionKind
from pipeline.domain.instructions import parse_instruction
from pipeline.domain.money import money, open_ended
from pipeline.domain.records import Actor, CandidateRecord
from pipeline.domain.slots import Slot
from pipeline.run import events
from pipeline.run.decisions import Answer, Approve, Cancel, Decision, Promote, RaiseBudget, Refusal, Revise, SkipStep
from pipeline.run.runner import Runner
from pipeline.run.scoreboard import leader, rank

Ask = Callable[[str], str]


def terminal_actor() -> Actor:
    user = getpass.getuser()
    return Actor(id=f"cli:{user}", name=user, local=True)


def budget_lines(number: int, req: BudgetRequest) -> str:
    """The budget gate at the terminal, in the words of the Slack gate."""
    step = (
        f"{req.step.label} {open_ended(req.usd_per_hour)}"
        if req.step is BudgetStep.DEPLOY and req.usd_per_hour is not None
        else f"{req.step.label} ≈ {money(req.next_usd)}"
    )
    why = f"; this run's jobs cost {req.overrun:.1f}x their estimate" if req.overrun and req.overrun > 1.05 else ""
    return (
        f"Budget gate — run #{number}: {req.step.label} needs ≈ {money(req.more_usd)} more than approved "
        f"(committed {money(req.spent_usd)}, approved {money(req.approved_usd)}, cap {money(req.cap_usd)}; "
        f"{step}{why}). It has not started."
    )


def scoreboard_lines(cands: list[CandidateRecord]) -> list[str]:
    top = leader(cands)
    out = []
    for c in rank(cands) + [c for c in cands if c.slot.is_final]:
        mark = " <- leader" if top is not None and c.slot == top.slot else ""
        stall = " (no progress)" if c.stalled else ""
        val = f"{c.val_loss:.4f}" if c.val_loss is not None else "-"
        score = f" score {c.score:.3f}" if c.score is not None else ""
        epoch = f" epoch {c.epoch:g}" if c.epoch is not None else ""
        note = f" ({c.note})" if c.note else ""
        out.append(f"  {c.label:<40} {c.state.value:<10} {c.progress:5.1f}%{epoch} val {val}{score}{stall}{mark}{note}")
    return out


def job_line(c: CandidateRecord) -> str:
    """One job as a log line: what a person reading a pipe or CI log needs, with progress in
    steps of 10% so that a job reporting every few seconds adds a line per tenth, not per tick."""
    parts = [f"{c.label}: {c.state.value}"]
    if not c.state.is_finished() and c.progress:
        parts.append(f"{int(c.progress // 10) * 10}%")
    if c.epoch is not None:
        parts.append(f"epoch {c.epoch:g}")
    if c.val_loss is not None:
        parts.append(f"val {c.val_loss:.4f}")
    if c.score is not None:
        parts.append(f"score {c.score:.3f}")
    if c.stalled:
        parts.append("(no progress)")
    if c.note:
        parts.append(f"({c.note})")
    return " ".join(parts)


class Terminal:
    """Follows one run in the terminal until it finishes.

    Output fits where it goes: with ``live`` (a person at a TTY) the jobs are one table
    redrawn in place; otherwise one line per change — a job's line only when it reads
    differently from the last one printed, the phase only when it changed. ``quiet`` keeps
    only what needs the person and how the run ended.
    """

    def __init__(
        self,
        runner: Runner,
        *,
        yes: bool,
        ask: Ask | None = None,
        out: Callable[[str], None] = print,
        live: LiveBoard | None = None,
        quiet: bool = False,
    ) -> None:
        self.runner = runner
        self.yes = yes
        self.quiet = quiet
        self.ask = ask or (lambda prompt: input(prompt))
        self.live = live  # in a TTY: the scoreboard is one table redrawn in place
        self.out = live.say if live is not None else out
        self.actor = terminal_actor()
        self.queue: asyncio.Queue[events.RunEvent] = asyncio.Queue()
        self._jobs: dict[str, str] = {}  # slot -> the line last printed for it
        self._phase = ""
        runner.bus.subscribe(self._on_event)

    async def _on_event(self, event: events.RunEvent) -> None:
        await self.queue.put(event)

    async def follow(self, run_id: str) -> int:
        """Handle events for ``run_id`` until it succeeds (0), fails (1), is cancelled (3) or waits
        for a person this terminal cannot stand in for (4)."""
        while True:
            event = await self.queue.get()
            if event.run.id != run_id:
                continue
            try:
                done = await self._handle(event)
            except NeedsPerson as exc:
                n = event.run.number
                self.out(f"Run #{n} waits: {exc}; `sftbot resume {n}` at a terminal continues it.")
                return EXIT_NEEDS_PERSON
            if done is not None:
                return done

    def progress(self, line: str) -> None:
        """A line only a watcher wants (left out with --quiet)."""
        if not self.quiet:
            self.out(line)

    def _board(self, n: int, cands: list[CandidateRecord]) -> None:
        if self.quiet:
            return
        if self.live is not None:
            self.live.update(cands)
            return
        for c in cands:
            line = job_line(c)
            if self._jobs.get(str(c.slot)) != line:
                self._jobs[str(c.slot)] = line
                self.out(f"[run #{n}] {line}")

    async def _handle(self, e: events.RunEvent) -> int | None:
        if self.live is not None:
            self.live.title, self.live.phase = f"Run #{e.run.number}", e.run.phase.value
            if isinstance(e, (events.RunSucceeded, events.RunFailed, events.RunCancelled)):
                self.live.stop()
        handler = next((h for kind in type(e).__mro__ if (h := _HANDLERS.get(kind)) is not None), None)
        return None if handler is None else await handler(self, e)

    async def _phase_changed(self, e: events.PhaseChanged) -> None:
        if e.run.phase.value != self._phase:
            self._phase = e.run.phase.value
            self.progress(f"[run #{e.run.number}] {self._phase}")

    async def _plan(self, e: events.PlanProposed) -> int | None:
        if not (self.quiet and self.yes):
            self.out(plan_text(e.plan))
        if self.live is not None:
            jobs = [*e.plan.candidates, *([e.plan.final] if e.plan.final else [])]
            self.live.planned = {str(j.slot): j.duration for j in jobs if j.duration is not None}
        if self.yes and e.plan.billed and e.plan.cost.total_usd is None:
            # A price the table does not know (a GPU type without a dated rate) is not approved
            # by a flag: a person reads the plan and decides.
            n = e.run.number
            self.out(
                f"  --yes does not approve a plan whose total is unknown ({'; '.join(e.plan.cost.unknown[:2])}); "
                f"run #{n} waits for a person: `sftbot resume {n}` at a terminal, or approve it in Slack."
            )
            return EXIT_NEEDS_PERSON
        await self._approve(e)
        return None

    async def _scoreboard(self, e: events.ScoreboardChanged) -> None:
        self._board(e.run.number, list(e.candidates))

    async def _final_progress(self, e: events.FinalProgress) -> None:
        self._board(e.run.number, [e.candidate])

    async def _stall(self, e: events.StallWarning) -> None:
        self.progress(f"  warning: {e.label}: no progress for {e.minutes:.0f} minutes (still waiting; not failed)")

    async def _spend_ahead(self, e: events.SpendWarning) -> None:
        self.out(f"  warning: {e.sentence()}")  # not --quiet: it is about money

    async def _promotion(self, e: events.PromotionRequested) -> None:
        if not (self.quiet and self.yes):
            self.out("Promotion gate — " + e.summary)
            self.out("\n".join(scoreboard_lines(list(e.ranked))))
            if e.curves is not None:
                self.out(f"  loss curves: {e.curves}")
            if e.comparison is not None:
                self.out("\n".join(comparison_lines(e.comparison)))
        await self._promote(e)

    async def _note(self, e: events.EvaluatorFailed | events.StoragePaused) -> None:
        if isinstance(e, events.StoragePaused):
            self.out(f"  paused: {e.reason} (it goes on by itself when the storage is back)")
        else:
            self.out(f"  {e.reason}")

    async def _evaluated(self, e: events.EvaluationDone) -> None:
        if self.live is not None:
            self.live.update([e.candidate])  # with its score
        self.progress(f"  {e.summary}")

    async def _deployed(self, e: events.Deployed) -> None:
        self.out(f"  Deployed {e.deployment.model} as {e.deployment.deployment_id}")
        self.out("Use it:\n" + e.snippet)

    async def _report(self, e: events.ReportReady) -> None:
        self.progress(f"  Report ready: {e.report}")

    async def _ended(self, e: events.RunSucceeded | events.RunFailed | events.RunCancelled) -> int:
        n = e.run.number
        if isinstance(e, events.RunSucceeded):
            self.out(f"Run #{n} succeeded.")
            return 0
        if isinstance(e, events.RunFailed):
            self.out(f"Run #{n} failed: {e.reason}")
            return EXIT_FAILED
        who = f" by {e.actor.label}" if e.actor else ""
        self.out(f"Run #{n} cancelled{who}.")
        return EXIT_CANCELLED

    def _can_ask(self) -> bool:
        """A person can answer here: a TTY on stdin, or an ``ask`` given by the caller (tests, the demo)."""
        return bool(sys.stdin and sys.stdin.isatty()) or self.ask.__name__ != "<lambda>"

    async def _prompt(self, text: str) -> str:
        if not self._can_ask():
            raise NeedsPerson("a decision is needed but there is no terminal to ask on (--yes decides plans and promotions)")
        if self.live is not None:
            self.live.stop()  # a redrawing table and a prompt cannot share the screen; it comes back with the next update
        return (await asyncio.to_thread(self.ask, text)).strip()

    async def _decide(self, run_id: str, decision: Decision) -> bool:
        try:
            await self.runner.decide(run_id, decision, self.actor)
            return True
        except Refusal as exc:
            self.out(f"  not done: {exc.sentence()}")
            return False

    async def _answer(self, e: events.QuestionAsked) -> int | None:
        q = e.question
        if q.kind.blocks_deploy:
            return await self._blocked(e)
        self.out(q.text + (f" ({', '.join(q.choices[:12])})" if q.choices else ""))
        if q.detail:
            self.out(f"  {q.detail}")
        if self.yes:
            if q.kind is QuestionKind.EVALUATION:
                await self._decide(e.run.id, Answer("loss", question=q.number))
                return None
            await self._decide(e.run.id, Cancel())
            self.out("  --yes cannot answer this; say it in the instruction (e.g. model=...)")
            return None
        answer = await self._prompt("> ")
        if answer.lower() in ("c", "cancel", ""):
            await self._decide(e.run.id, Cancel())
        else:
            await self._decide(e.run.id, Answer(answer, question=q.number))
        return None

    async def _blocked(self, e: events.QuestionAsked) -> int | None:
        """The deploy block: never passed by --yes (that would ship the base); a person types it
        in a TTY (as at the budget gate), else the command says who decides and how, and exits 4."""
        q = e.question
        n = e.run.number
        self.out(f"Run #{n}: {q.text}")
        if not self._can_ask():
            self.out(
                f"  --yes never deploys anyway; run #{n} waits here for {self._who()}: "
                f"`sftbot decide {n} deploy-anyway` deploys it and continues the run, `sftbot cancel {n}` stops it."
            )
            return EXIT_NEEDS_PERSON
        if self.yes:
            self.out("  --yes never deploys anyway: you decide here.")
        while True:
            answer = await self._prompt("Type 'deploy anyway' to deploy it, or [c]ancel: ")
            if answer.lower() in ("c", "cancel"):
                await self._decide(e.run.id, Cancel())
                return None
            if answer.lower() == "deploy anyway":
                await self._decide(e.run.id, Answer("deploy anyway", question=q.number))
                return None

    def _who(self) -> str:
        """Who may decide a money gate: the approvers (or anyone) in Slack, and the operator here."""
        policy = self.runner.policy
        slack = "an approver or admin in Slack" if policy.approvers or policy.admins else "anyone in the run's Slack channel"
        return f"{slack}, or you at this terminal"

    async def _budget(self, e: events.BudgetRequested) -> int | None:
        """The budget gate: prompted in a TTY; elsewhere (``--yes`` may not decide money) the
        command says what the run waits for, who decides and the exact command, and exits 4."""
        req, n = e.request, e.run.number
        self.out(budget_lines(n, req))
        if not self._can_ask():
            self.out(
                f"  Run #{n} waits at the budget gate for {self._who()}: "
                f"`sftbot decide {n} raise {req.more_usd:.2f}` approves {money(req.more_usd)} more and continues the run; "
                f"`sftbot decide {n} skip` goes on without {req.step.label}; `sftbot cancel {n}` stops it."
            )
            return EXIT_NEEDS_PERSON
        while True:
            answer = (await self._prompt(f"Approve {money(req.more_usd)} more? [r]aise / [s]kip / [c]ancel: ")).lower()
            if answer in ("c", "cancel"):
                await self._decide(e.run.id, Cancel())
                return None
            if answer in ("s", "skip"):
                await self._decide(e.run.id, SkipStep(number=req.number))
                return None
            if answer in ("r", "raise", "a", "approve", "y", "yes"):
                await self._decide(e.run.id, RaiseBudget(number=req.number))
                return None

    async def _approve(self, e: events.PlanProposed) -> None:
        version = e.plan.version
        if self.yes:
            self.out("  approved (--yes)")
            await self._decide(e.run.id, Approve(plan_version=version))
            return
        while True:
            answer = await self._prompt("Approve this plan? [a]pprove / [r]evise <changes> / [c]ancel: ")
            word, _, rest = answer.partition(" ")
            if word.lower() in ("a", "approve", "y", "yes"):
                await self._decide(e.run.id, Approve(plan_version=version))
                return
            if word.lower() in ("c", "cancel", "n", "no"):
                await self._decide(e.run.id, Cancel())
                return
            if word.lower() in ("r", "revise") and rest:
                try:
                    spec = e.run.spec.merged(parse_instruction(rest))
                except ValueError as exc:
                    self.out(f"  {exc}")
                    continue
                await self._decide(e.run.id, Revise(spec, plan_version=version))
                return

    async def _promote(self, e: events.PromotionRequested) -> None:
        best = e.ranked[0] if e.ranked else None
        if best is None:
            return
        if self.yes:
            self.out(f"  promoting {best.label} (--yes)")
            await self._decide(e.run.id, Promote(best.slot))
            return
        while True:
            answer = await self._prompt(f"Promote {best.slot.name}? [enter] yes / a candidate number / [c]ancel: ")
            if answer.lower() in ("c", "cancel"):
                await self._decide(e.run.id, Cancel())
                return
            try:
                slot = best.slot if answer == "" else Slot.parse(answer)
            except ValueError:
                continue
            if await self._decide(e.run.id, Promote(slot)):
                return


_HANDLERS: dict[type[events.RunEvent], Callable[[Terminal, Any], Awaitable[int | None]]] = {
    events.PhaseChanged: Terminal._phase_changed,
    events.QuestionAsked: Terminal._answer,
    events.PlanProposed: Terminal._plan,
    events.ScoreboardChanged: Terminal._scoreboard,
    events.FinalProgress: Terminal._final_progress,
    events.StallWarning: Terminal._stall,
    events.PromotionRequested: Terminal._promotion,
    events.BudgetRequested: Terminal._budget,
    events.SpendWarning: Terminal._spend_ahead,
    events.EvaluatorFailed: Terminal._note,
    events.StoragePaused: Terminal._note,
    events.EvaluationDone: Terminal._evaluated,
    events.Deployed: Terminal._deployed,
    events.ReportReady: Terminal._report,
    events.RunSucceeded: Terminal._ended,
    events.RunFailed: Terminal._ended,
    events.RunCancelled: Terminal._ended,
}
