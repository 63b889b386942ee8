"""The runner: runs the steps the state machine's effects name, persisting every transition.

Callers (terminal, Slack) use three things: ``start`` a run, ``decide`` at a gate, and the
event bus. Neither call waits on training: each returns once the change is committed, and
the work goes on in one background task per run. On start-up ``resume_all`` runs each
unfinished run's phase entry from the same table a transition uses; work steps are
idempotent by the ids they recorded before each create call.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pipeline.dataset.access import LocalFiles, check_use
from pipeline.domain.authz import Action, Policy, Subject, authorize
from pipeline.domain.instructions import parse_instruction
from pipeline.domain.machine import ENTRY, Context, Effect, Event, Phase, Refused, advance
from pipeline.domain.platform import Platform, PlatformError
from pipeline.domain.records import BOT, Actor, GateDecision, NewRun, RunRecord
from pipeline.domain.spec import RunSpec, SpecError
from pipeline.planning.preflight import preflight
from pipeline.run import decisions, teardown
from pipeline.run.authorship import evaluator_file
from pipeline.run.context import CheckpointStop, Outcome, RunContext, RunnerConfig
from pipeline.run.decisions import Decision, Refusal
from pipeline.run.events import (
    BudgetDecided,
    EventBus,
    PhaseChanged,
    PlanDecided,
    PromotionDecided,
    RunCreated,
    StoragePaused,
)
from pipeline.run.steps.announce import ask, propose, request_promotion
from pipeline.run.steps.budget import request_budget
from pipeline.run.steps.deploy import deploy
from pipeline.run.steps.evaluate import evaluate
from pipeline.run.steps.final import final
from pipeline.run.steps.inspect import inspect
from pipeline.run.steps.report import report
from pipeline.run.steps.stop import cancel_jobs, finish
from pipeline.run.steps.sweep import sweep
from pipeline.store import runs, uploads
from pipeline.store.db import Database, StorageError, StorageFull, storage_problem
from pipeline.store.runs import RunChanges

log = logging.getLogger("sftbot.runner")

Step = Callable[[RunContext, RunRecord], Awaitable[Outcome | None]]

# Effect -> step: the one table. A ``background`` effect's step returns the Outcome that
# ends its phase; the others announce (a gate, the end) and return None.
STEPS: dict[Effect, Step] = {
    Effect.INSPECT: inspect,
    Effect.ASK: ask,
    Effect.PROPOSE: propose,
    Effect.SWEEP: sweep,
    Effect.REQUEST_PROMOTION: request_promotion,
    Effect.REQUEST_BUDGET: request_budget,
    Effect.FINAL: final,
    Effect.EVALUATE: evaluate,
    Effect.DEPLOY: deploy,
    Effect.REPORT: report,
    Effect.CANCEL_JOBS: cancel_jobs,
    Effect.FINISH: finish,
}


class RunNotFound(LookupError):
    pass


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
        db.publish = self.bus.publish  # events raised inside a write reach surfaces after its COMMIT
        self._checkpoint = checkpoint
        self.ctx = RunContext(db=db, platform=platform, config=config, emit=self.bus.publish, checkpoint=self.cp)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: set[str] = set()
        self.crashed = asyncio.Event()  # set when a test's checkpoint stopped the runner

    @property
    def policy(self) -> Policy:
        return self.config.policy

    @property
    def files(self) -> LocalFiles:
        return self.config.files

    # --- what callers use ---------------------------------------------------------------

    async def start(
        self, instruction: str, actor: Actor, *, spec: RunSpec | None = None, channel: str | None = None
    ) -> RunRecord:
        """Parse and create a run; returns at once (bad input raises before anything exists)."""
        await self.check_start(actor, channel=channel)
        spec = spec or parse_instruction(instruction)
        if evaluator_file(spec) is not None:
            await self.check_start(actor, channel=channel, evaluator_code=True)
        # A path this bot may not read, or data given elsewhere, is refused before a run exists.
        await check_use(spec, channel=channel, files=self.config.files, origin=lambda r: uploads.origin(self.db, r))
        await uploads.used(self.db, [r for r in (spec.dataset, spec.eval_dataset) if r])
        # What can be known to fail is said now, privately, before a run number or a public message exists.
        await preflight(self.platform, spec, self.config.files)
        async with self.db.write() as tx:
            facts = self.platform.facts
            new = NewRun(
                requester=actor,
                instruction=instruction,
                spec=spec,
                platform=facts.name,
                billed=facts.billed,
                workspace_root=str(self.config.runs_dir),
                channel=channel,
            )
            run = await runs.insert_run(tx, new)
            await tx.audit(
                run_id=run.id, actor=actor.id, actor_name=actor.name, action="run_created", details={"instruction": instruction}
            )
            tx.emit(RunCreated(run=run, actor=actor))
        Path(run.workspace).mkdir(parents=True, exist_ok=True)
        await self._enter(run, ENTRY[run.phase])
        return run

    async def check_start(self, actor: Actor, *, channel: str | None, evaluator_code: bool = False) -> None:
        """Raise the (audited) Refusal a start by ``actor`` in ``channel`` gets; asked before
        anything is downloaded for it, too."""
        verdict = authorize(
            actor, Action.START, policy=self.policy, channel=channel, about=Subject(evaluator_code=evaluator_code)
        )
        if verdict.denied:
            refusal = Refusal.denied(verdict.rule, self.policy)
            details = {"rule": verdict.rule.value if verdict.rule else None, "reason": refusal.sentence()}
            await self.db.audit(run_id=None, actor=actor.id, actor_name=actor.name, action="denied_start", details=details)
            raise refusal

    async def decide(self, key: str | int, decision: Decision, actor: Actor, *, channel: str | None = None) -> RunRecord:
        """Record a person's decision at a gate (see ``pipeline.run.decisions``); raises Refusal."""
        return await decisions.decide(self, key, decision, actor, channel=channel)

    async def teardown(self, key: str | int, actor: Actor, *, channel: str | None = None) -> tuple[RunRecord, str]:
        """Delete the run's deployment for ``actor`` (authorized, audited); the state read back."""
        return await teardown.teardown(self.db, self.platform, self.policy, key, actor, channel=channel)

    async def get(self, key: str | int) -> RunRecord:
        run = await runs.get_run(self.db, key)
        if run is None:
            raise RunNotFound(f"no run {str(key)[:20]}")
        return run

    async def resume_all(self) -> list[RunRecord]:
        """Continue every unfinished run after a restart; returns those whose work resumed.

        Gates announce themselves again (surfaces edit what they showed before); a finished
        run that still has active jobs (stopped between its end and its cancels) cancels them.
        """
        resumed = []
        for run in await runs.list_runs(self.db, unfinished=True, limit=10_000):
            await self._enter(run, ENTRY[run.phase])
            if not run.phase.gate:
                resumed.append(run)
        for run_id in await runs.finished_runs_with_active_jobs(self.db):
            await cancel_jobs(self.ctx, await self.get(run_id))
        return resumed

    def working(self, run_id: str) -> bool:
        """True while this process works on the run in the background (a step is under way)."""
        task = self._tasks.get(run_id)
        return task is not None and not task.done()

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

    async def cp(self, name: str) -> None:
        """An effect boundary: tests stop the runner here to prove resume is safe."""
        if self._checkpoint is not None:
            try:
                await self._checkpoint(name)
            except Exception as exc:
                self.crashed.set()
                raise CheckpointStop(name) from exc

    # --- transitions --------------------------------------------------------------------

    async def transition(
        self,
        run_id: str,
        event: Event,
        *,
        actor: Actor = BOT,
        gate: GateDecision | None = None,
        changes: RunChanges | None = None,
        details: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Apply one event: the phase change, the gate decision and the audit event commit together."""
        async with self.db.write() as tx:
            run = await runs.read_run(tx, run_id)
            if gate is not None:
                await self.db.decide_gate(tx, gate)
            plan = await runs.get_plan(self.db, run_id, run.plan_version) if run.plan_version else None
            ctx = Context(
                final_run=plan.final is not None if plan else True,
                deploy=plan.deploy if plan else True,
                budget_held=run.budget.held if run.budget else None,
                answer_deploys=run.question is not None and run.question.kind.blocks_deploy,
            )
            nxt, effects = advance(run.phase, event, ctx)
            await runs.update_run(tx, run_id, changes or RunChanges(), phase=nxt)
            if event is Event.APPROVE:
                await runs.set_plan_status(tx, run_id, run.plan_version, "approved")
            elif event is Event.REVISE:
                await runs.set_plan_status(tx, run_id, run.plan_version, "superseded")
            elif event is Event.CANCEL and run.phase is Phase.AWAITING_PLAN_APPROVAL:
                await runs.set_plan_status(tx, run_id, run.plan_version, "cancelled")
            after = await runs.read_run(tx, run_id)
            await tx.audit(
                run_id=run_id,
                actor=actor.id,
                actor_name=actor.name,
                action=event.value,
                plan_version=after.plan_version,  # "planned" names the plan it made, not the one before
                details={"from": run.phase.value, "to": nxt.value, **(details or {})},
            )
            if event in (Event.APPROVE, Event.REVISE):
                tx.emit(PlanDecided(run=after, actor=actor, decision=event, version=run.plan_version))
            if event is Event.PROMOTE and after.promoted is not None:
                tx.emit(PromotionDecided(run=after, actor=actor, slot=after.promoted))
            if event in (Event.RAISE_BUDGET, Event.SKIP_STEP) and run.budget is not None:
                tx.emit(BudgetDecided(run=after, actor=actor, request=run.budget, decision=event))
            tx.emit(PhaseChanged(run=after, actor=actor, event=event, previous=run.phase))
        await self.cp(f"phase:{after.phase.value}")
        await self._enter(after, effects)
        return after

    async def _enter(self, run: RunRecord, effects: tuple[Effect, ...]) -> None:
        """Run a phase's entry: work goes to the run's task, announcements happen here."""
        for effect in effects:
            if effect.background:
                self._spawn(run.id)
                continue
            if effect is Effect.CANCEL_JOBS:
                await self._stop_work(run.id)
            await STEPS[effect](self.ctx, run)

    async def fail(self, run_id: str, reason: str) -> None:
        """Stop the run with one sentence; active jobs of this run are cancelled."""
        run = await self.get(run_id)
        if run.phase.finished:
            return
        await self.transition(run_id, Event.FAIL, changes=RunChanges(error=reason), details={"reason": reason})

    # --- background work ----------------------------------------------------------------

    def _spawn(self, run_id: str) -> None:
        task = self._tasks.get(run_id)
        if task is not None and not task.done():
            # The driver is alive: make it look again before it returns (no await between
            # its last check of this flag and its return, so no wake-up is ever lost).
            self._wake.add(run_id)
            return
        self._tasks[run_id] = asyncio.create_task(self._drive(run_id), name=f"run-{run_id}")

    async def _stop_work(self, run_id: str) -> None:
        task = self._tasks.get(run_id)
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _drive(self, run_id: str) -> None:
        """Run the current phase's work, and keep at it through storage faults.

        A storage fault (another process holding the database lock, a full disk) is not the
        run's failure: its jobs keep running on the platform, the step is idempotent, so the
        run waits for the storage and takes the step up again. Anything else fails the run.
        """
        paused = False
        while True:
            try:
                await self._work(run_id)
                return
            except CheckpointStop:
                return
            except Exception as exc:
                problem = storage_problem(exc)
                if problem is None:
                    problem = await self._fail_quietly(run_id, self._reason(exc))
                    if problem is None:
                        return
                if not paused:
                    paused = True
                    await self._tell_storage(run_id, problem)
                await self._wait_for_storage(problem)

    async def _work(self, run_id: str) -> None:
        """The current phase's work step, then its outcome fed back into the machine, until a gate or the end."""
        while True:
            self._wake.discard(run_id)
            run = await self.get(run_id)
            work = [e for e in ENTRY[run.phase] if e.background]
            if not work:  # a gate or a finished run: nothing to do until a decision
                if run_id in self._wake:
                    continue
                return
            outcome = await STEPS[work[0]](self.ctx, run)
            assert outcome is not None, work[0]
            await self.transition(run.id, outcome.event, changes=outcome.changes)

    def _reason(self, exc: Exception) -> str:
        """The one sentence a failed run shows."""
        if isinstance(exc, Refused):
            return f"internal error: {exc}"
        if isinstance(exc, (PlatformError, SpecError, OSError, ValueError)):
            return str(exc)
        log.exception("run failed unexpectedly", exc_info=exc)
        return f"internal error: {type(exc).__name__}: {exc}"

    async def _fail_quietly(self, run_id: str, reason: str) -> StorageError | None:
        """Fail the run; a storage fault while recording that is returned (the run is taken up again)."""
        try:
            await self.fail(run_id, reason)
        except Exception as exc:
            problem = storage_problem(exc)
            if problem is None:
                raise
            return problem
        return None

    async def _tell_storage(self, run_id: str, problem: StorageError) -> None:
        try:
            await self.bus.publish(StoragePaused(run=await self.get(run_id), reason=str(problem)))
        except Exception:  # reads can fail too; the log still says it
            log.warning("run %s paused: %s", run_id, problem)

    async def _wait_for_storage(self, problem: StorageError) -> None:
        """Until the disk has room again (a full disk) or one backoff step (a lock held elsewhere)."""
        delay = self.config.storage_retry_seconds
        while isinstance(problem, StorageFull):
            await asyncio.sleep(delay)
            if (
                shutil.disk_usage(self.config.runs_dir if self.config.runs_dir.exists() else Path.cwd()).free
                >= self.config.storage_free_bytes
            ):
                return
            delay = min(delay * 2, 300.0)
        await asyncio.sleep(delay)
