"""The runner: executes the state machine's effects against a platform, persisting every step.

Callers (terminal, Slack) use three things: ``start`` a run, ``decide`` at a gate, and the
event bus. Neither call waits on training: each returns once the change is committed and
the work continues in a background task per run. On start-up ``resume_all`` picks every
unfinished run up from the database; work phases are idempotent by recorded ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipeline import phases
from pipeline.authz import Action, Policy, authorize
from pipeline.events import EventBus, EventKind, RunEvent
from pipeline.instructions import parse_instruction
from pipeline.machine import Context, Effect, Event, Phase, Refused, advance
from pipeline.platforms.base import JobState, Platform, PlatformError
from pipeline.spec import EvalKind, Evaluation, RunSpec, SpecError
from pipeline.store import runs as q
from pipeline.store.db import Database
from pipeline.store.records import BOT, Actor, GateDecision, RunRecord

log = logging.getLogger("sftbot.runner")


class Denied(Exception):
    """The actor may not do this; the message is the reason shown to them."""


class RunNotFound(LookupError):
    pass


class CheckpointStop(BaseException):
    """A test's checkpoint stopped the runner at an effect boundary, as if the process died.

    A BaseException so that no ``except Exception`` on the way turns the "crash" into a
    handled failure: the run must be left exactly as a killed process would leave it.
    """


class RunnerConfig(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    runs_dir: Path
    poll_seconds: float = 30.0
    stall_minutes: float = 10.0
    ask_evaluation: bool = False  # ask "how should I evaluate?" when the instruction did not say
    default_parallel: int | None = None  # None: the platform's / plan's default (6)
    policy: Policy = Policy()
    deploy_timeout_seconds: float = 1800.0
    evaluator_dir: Path | None = None  # SFTBOT_EVALUATOR_DIR: where users' evaluator files live
    eval_max_tokens: int = 512  # per held-out answer; reasoning models think before they answer


_ACTIONS = {
    Event.APPROVE: Action.APPROVE,
    Event.REVISE: Action.REVISE,
    Event.PROMOTE: Action.PROMOTE,
    Event.CANCEL: Action.CANCEL,
    Event.ANSWER: Action.ANSWER,
}


class Runner:
    """Owns the background work of every run in one process."""

    def __init__(
        self,
        db: Database,
        platform: Platform,
        config: RunnerConfig,
        *,
        bus: EventBus | None = None,
        checkpoint: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.platform = platform
        self.config = config
        self.bus = bus or EventBus()
        self._checkpoint = checkpoint
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: set[str] = set()
        self.crashed = asyncio.Event()  # set when a test's checkpoint stopped the runner

    # --- public API --------------------------------------------------------------------

    async def start(
        self, instruction: str, actor: Actor, *, spec: RunSpec | None = None, channel: str | None = None
    ) -> RunRecord:
        """Parse and create a run; returns at once (bad input raises before anything exists)."""
        verdict = authorize(actor, Action.START, policy=self.config.policy, channel=channel)
        if not verdict.allowed:
            await self.db.audit(
                run_id=None, actor=actor.id, actor_name=actor.name, action="denied_start", details={"reason": verdict.reason}
            )
            raise Denied(verdict.reason)
        spec = spec or parse_instruction(instruction)
        async with self.db.write() as tx:
            run = await q.insert_run(
                tx,
                requester=actor.id,
                requester_name=actor.name,
                instruction=instruction,
                spec=spec,
                platform=self.platform.name,
                workspace_root=str(self.config.runs_dir),
            )
            await tx.audit(
                run_id=run.id, actor=actor.id, actor_name=actor.name, action="run_created", details={"instruction": instruction}
            )
        Path(run.workspace).mkdir(parents=True, exist_ok=True)
        await self.publish(EventKind.RUN_CREATED, run, actor=actor, text=f"Run #{run.number} started by {actor.label}")
        self._spawn(run.id)
        return run

    async def get(self, key: str | int) -> RunRecord:
        run = await q.get_run(self.db, key)
        if run is None:
            raise RunNotFound(f"no run {key}")
        return run

    async def decide(
        self,
        key: str | int,
        event: Event,
        actor: Actor,
        *,
        plan_version: int | None = None,
        candidate: int | None = None,
        spec: RunSpec | None = None,
        answer: str | None = None,
        channel: str | None = None,
    ) -> RunRecord:
        """Record a human decision at a gate. Raises Denied, GateAlreadyDecided or Refused."""
        run = await self.get(key)
        verdict = authorize(
            actor,
            _ACTIONS[event],
            policy=self.config.policy,
            channel=channel,
            requester=run.requester,
            estimated_usd=run.estimated_usd,
        )
        if not verdict.allowed:
            await self.db.audit(
                run_id=run.id,
                actor=actor.id,
                actor_name=actor.name,
                action=f"denied_{event.value}",
                plan_version=run.plan_version,
                details={"reason": verdict.reason},
            )
            raise Denied(verdict.reason)
        gate, updates, details = self._gate_for(
            run, event, plan_version=plan_version, candidate=candidate, spec=spec, answer=answer
        )
        if event is Event.PROMOTE:
            cands = {c.idx: c for c in await q.candidates(self.db, run.id)}
            chosen = cands.get(candidate or 0)
            if chosen is None or chosen.idx == 0 or chosen.state is not JobState.COMPLETED:
                raise Refused(f"candidate {candidate} has not completed; pick one of the completed candidates")
        decision = GateDecision(
            run_id=run.id,
            gate=gate or "",
            decision=event.value,
            actor=actor.id,
            actor_name=actor.name,
            plan_version=run.plan_version,
            details=details,
            decided_at=time.time(),
        )
        return await self._transition(
            run.id, event, actor=actor, gate=decision if gate else None, updates=updates, details=details
        )

    async def resume_all(self) -> list[RunRecord]:
        """Continue every unfinished run after a restart; gates stay open, nothing is redone."""
        resumed = []
        for run in await q.list_runs(self.db, unfinished=True, limit=10_000):
            if not run.phase.gate:
                self._spawn(run.id)
                resumed.append(run)
        return resumed

    async def reannounce(self, run_id: str) -> None:
        """Publish the open gate again (a terminal that resumes must show its prompt)."""
        run = await self.get(run_id)
        if run.phase is Phase.AWAITING_INPUT:
            await self.publish(
                EventKind.QUESTION_ASKED, run, question=run.question, text=run.question.text if run.question else ""
            )
        elif run.phase is Phase.AWAITING_PLAN_APPROVAL:
            await self.publish(EventKind.PLAN_PROPOSED, run, plan_version=run.plan_version)
        elif run.phase is Phase.AWAITING_PROMOTION:
            await phases.request_promotion(self, run)

    async def wait(self, run_id: str) -> None:
        """Wait for the run's current background work (not for a person at a gate)."""
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    async def publish(self, kind: EventKind, run: RunRecord, **fields: Any) -> None:
        await self.bus.publish(RunEvent(kind=kind, run=run, **fields))

    async def cp(self, name: str) -> None:
        """An effect boundary: tests stop the runner here to prove resume is safe."""
        if self._checkpoint is not None:
            try:
                await self._checkpoint(name)
            except Exception as exc:
                self.crashed.set()
                raise CheckpointStop(name) from exc

    # --- transitions -------------------------------------------------------------------

    def _gate_for(
        self,
        run: RunRecord,
        event: Event,
        *,
        plan_version: int | None,
        candidate: int | None,
        spec: RunSpec | None,
        answer: str | None,
    ) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
        """The gate key a decision closes, the run fields it changes, and its audit details."""
        if event is Event.CANCEL:
            gate = {
                Phase.AWAITING_INPUT: f"input:{run.question.number if run.question else 1}",
                Phase.AWAITING_PLAN_APPROVAL: f"plan:v{run.plan_version}",
                Phase.AWAITING_PROMOTION: "promotion",
            }.get(run.phase)
            return gate, {}, {}
        if event in (Event.APPROVE, Event.REVISE):
            version = plan_version or run.plan_version
            if version < run.plan_version:
                raise Refused(f"plan v{version} was replaced by v{run.plan_version}; decide on the newest plan")
            if event is Event.REVISE:
                if spec is None:
                    raise SpecError("a revision needs the changed values")
                return f"plan:v{version}", {"spec_json": spec.model_dump_json()}, {"spec": spec.model_dump(mode="json")}
            return f"plan:v{version}", {}, {"plan_version": version}
        if event is Event.PROMOTE:
            return "promotion", {"winner": candidate}, {"candidate": candidate}
        if event is Event.ANSWER:
            if run.question is None or answer is None:
                raise Refused("there is no open question on this run")
            new_spec = apply_answer(run.spec, run.question.what, answer)
            return (
                f"input:{run.question.number}",
                {"spec_json": new_spec.model_dump_json(), "question_json": None},
                {"question": run.question.what, "answer": answer},
            )
        raise Refused(f"{event.value} is not a decision")

    async def _transition(
        self,
        run_id: str,
        event: Event,
        *,
        actor: Actor = BOT,
        gate: GateDecision | None = None,
        updates: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Apply one event: the phase change, the gate decision and the audit event commit together."""
        plan = None
        async with self.db.write() as tx:
            run = await q.read_run(tx, run_id)
            if gate is not None:
                await self.db.decide_gate(tx, gate)
            plan = await q.get_plan(self.db, run_id, run.plan_version) if run.plan_version else None
            ctx = Context(final_run=plan.final is not None if plan else True, deploy=plan.deploy if plan else True)
            nxt, effects = advance(run.phase, event, ctx)
            fields = dict(updates or {})
            fields["phase"] = nxt.value
            await q.update_run(tx, run_id, **fields)
            if event is Event.APPROVE:
                await q.set_plan_status(tx, run_id, run.plan_version, "approved")
            elif event is Event.REVISE:
                await q.set_plan_status(tx, run_id, run.plan_version, "superseded")
            elif event is Event.CANCEL and run.phase is Phase.AWAITING_PLAN_APPROVAL:
                await q.set_plan_status(tx, run_id, run.plan_version, "cancelled")
            await tx.audit(
                run_id=run_id,
                actor=actor.id,
                actor_name=actor.name,
                action=event.value,
                plan_version=run.plan_version,
                details={"from": run.phase.value, "to": nxt.value, **(details or {})},
            )
            after = await q.read_run(tx, run_id)
        await self.cp(f"phase:{after.phase.value}")
        await self._effects(after, effects, event=event, actor=actor)
        return after

    async def _effects(self, run: RunRecord, effects: tuple[Effect, ...], *, event: Event, actor: Actor) -> None:
        if event in (Event.APPROVE, Event.REVISE):
            await self.publish(
                EventKind.PLAN_DECIDED,
                run,
                actor=actor,
                decision=event.value,
                plan_version=run.plan_version,
            )
        if event is Event.PROMOTE:
            await self.publish(
                EventKind.PROMOTION_DECIDED, run, actor=actor, decision=event.value, data={"candidate": run.winner}
            )
        await self.publish(EventKind.PHASE_CHANGED, run, actor=actor, text=f"{event.value} -> {run.phase.value}")
        for effect in effects:
            if effect is Effect.CANCEL_JOBS:
                current = asyncio.current_task()
                task = self._tasks.get(run.id)
                if task is not None and task is not current:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                await phases.cancel_jobs(self, run)
            elif effect is Effect.ASK:
                await self.publish(
                    EventKind.QUESTION_ASKED, run, question=run.question, text=run.question.text if run.question else ""
                )
            elif effect is Effect.PROPOSE_PLAN:
                await self.publish(EventKind.PLAN_PROPOSED, run, plan_version=run.plan_version)
            elif effect is Effect.REQUEST_PROMOTION:
                await phases.request_promotion(self, run)
            elif effect is Effect.FINISH:
                kind = {Phase.FAILED: EventKind.FAILED, Phase.CANCELLED: EventKind.CANCELLED}.get(run.phase)
                if kind is not None:
                    await self.publish(kind, run, actor=actor, text=run.error or f"cancelled by {actor.label}")
            else:
                self._spawn(run.id)

    # --- background work ---------------------------------------------------------------

    def _spawn(self, run_id: str) -> None:
        task = self._tasks.get(run_id)
        if task is not None and not task.done():
            # The driver is alive: make it look again before it returns (no await between
            # its last check of this flag and its return, so no wake-up is ever lost).
            self._wake.add(run_id)
            return
        self._tasks[run_id] = asyncio.create_task(self._drive(run_id), name=f"run-{run_id}")

    async def _drive(self, run_id: str) -> None:
        """Do the current phase's work, then feed its result back into the machine."""
        try:
            while True:
                self._wake.discard(run_id)
                run = await self.get(run_id)
                work = phases.WORK.get(run.phase)
                if work is None:  # a gate or a finished run: nothing to do until a decision
                    if run_id in self._wake:
                        continue
                    return
                event, updates = await work(self, run)
                await self._transition(run.id, event, updates=updates)
        except CheckpointStop:
            return
        except (PlatformError, SpecError, OSError, ValueError) as exc:
            await self.fail(run_id, str(exc))
        except Exception as exc:
            log.exception("run %s failed unexpectedly", run_id)
            await self.fail(run_id, f"internal error: {type(exc).__name__}: {exc}")

    async def fail(self, run_id: str, reason: str) -> None:
        """Stop the run with one sentence; active jobs of this run are cancelled."""
        run = await self.get(run_id)
        if run.phase.finished:
            return
        await self._transition(run_id, Event.FAIL, updates={"error": reason}, details={"reason": reason})


def apply_answer(spec: RunSpec, what: str, answer: str) -> RunSpec:
    """The spec with a question's answer filled in."""
    if what == "base_model":
        return spec.model_copy(update={"base_models": (answer.strip(),)})
    if what == "dataset":
        return spec.model_copy(update={"dataset": answer.strip()})
    if what in ("evaluation", "evaluator_failed"):
        kind = answer.strip().lower()
        if kind.startswith("evaluator:"):
            return spec.model_copy(
                update={"evaluation": Evaluation(kind=EvalKind.EVALUATOR, ref=answer.split(":", 1)[1].strip())}
            )
        return spec.model_copy(update={"evaluation": Evaluation(kind=EvalKind(kind))})
    raise SpecError(f"unknown question {what}")
