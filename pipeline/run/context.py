"""What a step may touch: the store, the platform, the settings, ``emit`` and ``checkpoint``.

A step is a function ``(RunContext, RunRecord) -> Outcome | None``; it never sees the runner,
so each can be tested with a small context of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from pipeline.dataset.access import LocalFiles
from pipeline.domain.authz import Policy
from pipeline.domain.machine import Event
from pipeline.domain.platform import Platform
from pipeline.domain.records import RunRecord
from pipeline.evaluation.eval_types import SandboxLimits
from pipeline.planning.planner import PlannerSettings
from pipeline.run.events import RunEvent
from pipeline.store import runs
from pipeline.store.db import Database
from pipeline.store.runs import RunChanges


class RunnerConfig(BaseModel):
    """The runner's settings (the composition root fills them from the environment)."""

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
    files: LocalFiles = LocalFiles()  # which local files runs may read (the Slack bot: only its folders)
    sandbox: SandboxLimits = SandboxLimits()  # users' evaluators: limits, and the unsafe switch
    storage_retry_seconds: float = 30.0  # a run paused by a storage fault tries again after this (backing off)
    storage_free_bytes: int = 64 << 20  # free space under the runs dir before a run paused on a full disk goes on
    quota_give_up_seconds: float = 3600.0  # a sweep nothing of which can start for this long fails (SFTBOT_QUOTA_GIVE_UP_MINUTES)
    cancel_settle_seconds: float = 60.0  # after a cancel, how long to read a job back until it has stopped
    spend_margin: float = 1.2  # the run's cap is what was approved x this (SFTBOT_SPEND_MARGIN)
    # Bases whose addon deployments this account refused when `sftbot doctor` last looked: their
    # candidates are evaluated by live merge, and the plan says so.
    live_merge_bases: frozenset[str] = frozenset()

    def planning(self) -> PlannerSettings:
        """What the planner takes from these settings (`sftbot plan` builds the same)."""
        return PlannerSettings(
            files=self.files,
            evaluator_dir=self.evaluator_dir,
            sandbox=self.sandbox,
            answer_tokens=self.eval_max_tokens,
            parallel=self.default_parallel,
            ask_evaluation=self.ask_evaluation,
            live_merge_bases=self.live_merge_bases,
        )


class CheckpointStop(BaseException):
    """A test's checkpoint stopped the runner at an effect boundary, as if the process died.

    A BaseException so that no ``except Exception`` on the way turns the "crash" into a
    handled failure: the run must be left exactly as a killed process would leave it.
    """


@dataclass(frozen=True)
class Outcome:
    """How a work step ended: the event for the machine and the run fields it changes."""

    event: Event
    changes: RunChanges = field(default_factory=lambda: RunChanges())


async def _no_checkpoint(name: str) -> None:
    return None


@dataclass(frozen=True)
class RunContext:
    db: Database
    platform: Platform
    config: RunnerConfig
    emit: Callable[[RunEvent], Awaitable[None]]
    checkpoint: Callable[[str], Awaitable[None]] = _no_checkpoint

    async def reload(self, run: RunRecord) -> RunRecord:
        """The run as committed now."""
        fresh = await runs.get_run(self.db, run.id)
        assert fresh is not None, run.id
        return fresh


def workspace(run: RunRecord) -> Path:
    """The run's folder on disk (created on first use)."""
    path = Path(run.workspace)
    path.mkdir(parents=True, exist_ok=True)
    return path
