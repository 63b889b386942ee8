"""The terminal surface: progress lines and the same gates as Slack (prompt, or --yes).

Events are queued by the bus subscriber and handled by ``follow``, so a prompt never runs
inside the runner's own publish call.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Callable

from bot.console import plan_text
from pipeline.events import EventKind, RunEvent
from pipeline.machine import Event, Refused
from pipeline.runner import Denied, Runner
from pipeline.scoreboard import leader, rank
from pipeline.store import runs as q
from pipeline.store.db import GateAlreadyDecided
from pipeline.store.records import Actor, CandidateRecord

Ask = Callable[[str], str]


def terminal_actor() -> Actor:
    user = getpass.getuser()
    return Actor(id=f"cli:{user}", name=user)


def scoreboard_lines(cands: list[CandidateRecord]) -> list[str]:
    top = leader(cands)
    out = []
    for c in rank(cands) + [c for c in cands if c.idx == 0]:
        mark = " <- leader" if top is not None and c.idx == top.idx else ""
        stall = " (no progress)" if c.stalled else ""
        val = f"{c.val_loss:.4f}" if c.val_loss is not None else "-"
        score = f" score {c.score:.3f}" if c.score is not None else ""
        epoch = f" epoch {c.epoch:g}" if c.epoch is not None else ""
        out.append(f"  {c.label:<40} {c.state.value:<9} {c.progress:5.1f}%{epoch} val {val}{score}{stall}{mark}")
    return out


class Terminal:
    """Follows one run in the terminal until it finishes."""

    def __init__(self, runner: Runner, *, yes: bool, ask: Ask | None = None, out: Callable[[str], None] = print) -> None:
        self.runner = runner
        self.yes = yes
        self.ask = ask or (lambda prompt: input(prompt))
        self.out = out
        self.actor = terminal_actor()
        self.queue: asyncio.Queue[RunEvent] = asyncio.Queue()
        self._last_board = ""
        runner.bus.subscribe(self._on_event)

    async def _on_event(self, event: RunEvent) -> None:
        await self.queue.put(event)

    async def follow(self, run_id: str) -> int:
        """Handle events for ``run_id`` until it succeeds (0), fails (1) or is cancelled (1)."""
        while True:
            event = await self.queue.get()
            if event.run.id != run_id:
                continue
            done = await self._handle(event)
            if done is not None:
                return done

    async def _handle(self, e: RunEvent) -> int | None:
        k = e.kind
        if k is EventKind.PHASE_CHANGED:
            self.out(f"[run #{e.run.number}] {e.run.phase.value}")
        elif k is EventKind.QUESTION_ASKED and e.question is not None:
            await self._answer(e)
        elif k is EventKind.PLAN_PROPOSED:
            plan = await q.get_plan(self.runner.db, e.run.id, e.plan_version)
            if plan is not None:
                self.out(plan_text(plan))
            await self._approve(e)
        elif k in (EventKind.SCOREBOARD_CHANGED, EventKind.FINAL_PROGRESS):
            board = "\n".join(scoreboard_lines(e.candidates))
            if board != self._last_board:
                self.out(board)
                self._last_board = board
        elif k is EventKind.STALL_WARNING:
            self.out(f"  warning: {e.text}")
        elif k is EventKind.PROMOTION_REQUESTED:
            self.out("Promotion gate — " + e.text)
            self.out("\n".join(scoreboard_lines(e.candidates)))
            for name, path in e.files.items():
                self.out(f"  {name}: {path}")
            await self._promote(e)
        elif k in (EventKind.EVALUATION_DONE, EventKind.NOTICE):
            self.out(f"  {e.text}")
        elif k is EventKind.DEPLOYED:
            self.out(f"  {e.text}")
            snippet = e.data.get("snippet")
            if snippet:
                self.out("Use it:\n" + str(snippet))
        elif k is EventKind.REPORT_READY:
            self.out(f"  {e.text}")
        elif k is EventKind.FAILED:
            self.out(f"Run #{e.run.number} failed: {e.text}")
            return 1
        elif k is EventKind.CANCELLED:
            self.out(f"Run #{e.run.number} cancelled: {e.text}")
            return 1
        if e.run.phase.value == "succeeded" and k is EventKind.PHASE_CHANGED:
            self.out(f"Run #{e.run.number} succeeded.")
            return 0
        return None

    async def _prompt(self, text: str) -> str:
        if not sys.stdin or not sys.stdin.isatty():
            if self.ask.__name__ == "<lambda>":
                raise SystemExit("sftbot: a decision is needed but there is no terminal; use --yes")
        return (await asyncio.to_thread(self.ask, text)).strip()

    async def _decide(self, run_id: str, event: Event, **kw: object) -> bool:
        try:
            await self.runner.decide(run_id, event, self.actor, **kw)  # type: ignore[arg-type]
            return True
        except (Denied, Refused, GateAlreadyDecided, ValueError) as exc:
            self.out(f"  not done: {exc}")
            return False

    async def _answer(self, e: RunEvent) -> None:
        assert e.question is not None
        self.out(e.question.text + (f" ({', '.join(e.question.choices[:12])})" if e.question.choices else ""))
        if self.yes:
            if e.question.what == "evaluation":
                await self._decide(e.run.id, Event.ANSWER, answer="loss")
                return
            await self._decide(e.run.id, Event.CANCEL)
            self.out("  --yes cannot answer this; say it in the instruction (e.g. model=...)")
            return
        answer = await self._prompt("> ")
        if answer.lower() in ("c", "cancel", ""):
            await self._decide(e.run.id, Event.CANCEL)
        else:
            await self._decide(e.run.id, Event.ANSWER, answer=answer)

    async def _approve(self, e: RunEvent) -> None:
        if self.yes:
            self.out("  approved (--yes)")
            await self._decide(e.run.id, Event.APPROVE, plan_version=e.plan_version)
            return
        while True:
            answer = await self._prompt("Approve this plan? [a]pprove / [r]evise <changes> / [c]ancel: ")
            word, _, rest = answer.partition(" ")
            if word.lower() in ("a", "approve", "y", "yes"):
                await self._decide(e.run.id, Event.APPROVE, plan_version=e.plan_version)
                return
            if word.lower() in ("c", "cancel", "n", "no"):
                await self._decide(e.run.id, Event.CANCEL)
                return
            if word.lower() in ("r", "revise") and rest:
                from pipeline.instructions import parse_instruction

                try:
                    spec = e.run.spec.merged(parse_instruction(rest))
                except ValueError as exc:
                    self.out(f"  {exc}")
                    continue
                await self._decide(e.run.id, Event.REVISE, plan_version=e.plan_version, spec=spec)
                return

    async def _promote(self, e: RunEvent) -> None:
        best = e.candidates[0] if e.candidates else None
        if best is None:
            return
        if self.yes:
            self.out(f"  promoting {best.label} (--yes)")
            await self._decide(e.run.id, Event.PROMOTE, candidate=best.idx)
            return
        while True:
            answer = await self._prompt(f"Promote #{best.idx}? [enter] yes / a candidate number / [c]ancel: ")
            if answer.lower() in ("c", "cancel"):
                await self._decide(e.run.id, Event.CANCEL)
                return
            idx = best.idx if answer == "" else int(answer.lstrip("#")) if answer.lstrip("#").isdigit() else None
            if idx is not None and await self._decide(e.run.id, Event.PROMOTE, candidate=idx):
                return
