"""Composition of the engine: settings -> database, platform, runner (no Slack here)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot import doctor_results
from bot.settings import Settings, prepare_data_dir
from pipeline.domain.authz import Policy
from pipeline.domain.platform import Platform
from pipeline.planning.history import Outcome
from pipeline.planning.planner import History, Planner
from pipeline.platforms.fireworks.facts import declared
from pipeline.run.context import RunnerConfig
from pipeline.run.events import EventBus
from pipeline.run.runner import Runner
from pipeline.store import outcomes
from pipeline.store.db import Database


def make_platform(settings: Settings, name: str | None = None) -> Platform:
    """The configured training platform; Fireworks needs its key and account id."""
    which = name or settings.resolved_platform
    if which == "fireworks":
        settings.require("fireworks_api_key", "fireworks_account_id")
        settings.check_wandb()
        from pipeline.platforms.fireworks.jobs import WandbSettings
        from pipeline.platforms.fireworks.platform import FireworksPlatform
        from pipeline.platforms.fireworks.settings import FireworksSettings

        assert settings.fireworks_api_key is not None and settings.fireworks_account_id is not None
        wandb = (
            WandbSettings(
                api_key=settings.wandb_api_key.get_secret_value(), project=settings.wandb_project, entity=settings.wandb_entity
            )
            if settings.wandb_api_key and settings.wandb_project
            else None
        )
        return FireworksPlatform(
            FireworksSettings(
                api_key=settings.fireworks_api_key.get_secret_value(),
                account_id=settings.fireworks_account_id,
                base_url=settings.fireworks_base_url,
                inference_url=settings.fireworks_inference_url,
                warmup_seconds=settings.warmup_minutes * 60,
                large_warmup_seconds=settings.warmup_minutes_large * 60,
                wandb=wandb,
            )
        )
    from bot.local_commands import local_platform

    return local_platform(settings)


def runner_config(settings: Settings, *, poll_seconds: float | None = None, ask_evaluation: bool = False) -> RunnerConfig:
    """The runner's settings from the bot's (the planner takes its part: ``RunnerConfig.planning``)."""
    return RunnerConfig(
        runs_dir=settings.runs_dir,
        poll_seconds=settings.poll_seconds if poll_seconds is None else poll_seconds,
        stall_minutes=settings.stall_minutes,
        ask_evaluation=ask_evaluation,
        policy=policy_from(settings),
        evaluator_dir=settings.evaluator_dir,
        files=settings.local_files(slack=False),
        sandbox=settings.sandbox_limits(),
        eval_max_tokens=settings.answer_max_tokens,
        quota_give_up_seconds=settings.quota_give_up_minutes * 60,
        spend_margin=settings.spend_margin,
        live_merge_bases=doctor_results.live_merge_bases(settings.data_dir),
    )


@asynccontextmanager
async def planning(settings: Settings, platform_name: str | None = None) -> AsyncIterator[Planner]:
    """The one planner for `sftbot plan`: on the configured platform, asking it what the run
    would ask; for Fireworks without an account, from its declared facts alone (serving is then
    priced "not looked up" and only local files can be inspected). Recent runs in the data dir
    set the range, as they do for a run."""
    which = platform_name or settings.resolved_platform
    config = runner_config(settings).planning()
    if which == "fireworks" and not (settings.fireworks_api_key and settings.fireworks_account_id):
        yield Planner(declared(), config)
        return
    platform = make_platform(settings, which)
    db = await Database.open(settings.db_path) if settings.db_path.exists() else None
    try:
        yield Planner.on(platform, config, history=_history(db) if db is not None else None)
    finally:
        await platform.close()
        if db is not None:
            await db.close()


def _history(db: Database) -> History:
    async def recent(platform: str, band: str) -> Sequence[Outcome]:
        return await outcomes.recent(db, platform=platform, band=band, phase="training")

    return recent


def policy_from(settings: Settings) -> Policy:
    return Policy(
        approvers=settings.approvers,
        admins=settings.admins,
        allow_self_approval=settings.allow_self_approval,
        channels=settings.channels,
        budget_usd=settings.budget_usd,
        # Evaluators may run unsandboxed with this switch: then only admins supply evaluator files.
        admin_evaluators=settings.unsafe_evaluators,
    )


@dataclass
class Engine:
    settings: Settings
    db: Database
    platform: Platform
    runner: Runner
    bus: EventBus

    async def stop_runs(self, run_ids: list[str]) -> list[str]:
        """Stop the work of these runs in this process, leaving each resumable where it stands:
        the runner's tasks end, and this machine's trainers are stopped (the resume starts those
        jobs again). Returns the ids of jobs still running elsewhere (on a cloud platform they
        go on, and bill, until the run is resumed or cancelled)."""
        from pipeline.platforms.local.platform import LocalPlatform
        from pipeline.store import runs

        await self.runner.close()
        active = [
            c.job_id for run_id in run_ids for c in await runs.candidates(self.db, run_id) if c.job_id and c.state.is_active()
        ]
        if isinstance(self.platform, LocalPlatform):
            await self.platform.jobs.stop(active)
            return []
        return active

    def kill_local_jobs(self) -> None:
        """A forced stop: this machine's trainers are killed at once (no clean-up)."""
        from pipeline.platforms.local.platform import LocalPlatform

        if isinstance(self.platform, LocalPlatform):
            jobs = self.platform.jobs
            jobs.kill_now([spec.request.job_id for spec in jobs.specs()])


@asynccontextmanager
async def open_engine(
    settings: Settings, *, platform: Platform | None = None, platform_name: str | None = None, ask_evaluation: bool = False
) -> AsyncIterator[Engine]:
    """Open the database (migrating it), the platform and a runner; close all on exit."""
    # The platform first: a missing setting must fail before anything is opened
    # (an open aiosqlite connection would keep the process alive after the error).
    plat = platform or make_platform(settings, platform_name)
    prepare_data_dir(settings.data_dir)
    db = await Database.open(settings.db_path)
    bus = EventBus()
    # Reading a local job's status is a file read, not an API call: poll every second unless
    # SFTBOT_POLL_SECONDS says otherwise, so a finished job hands over at once.
    poll = settings.poll_seconds if plat.facts.name != "local" or "poll_seconds" in settings.model_fields_set else 1.0
    runner = Runner(db, plat, runner_config(settings, poll_seconds=poll, ask_evaluation=ask_evaluation), bus=bus)
    try:
        yield Engine(settings=settings, db=db, platform=plat, runner=runner, bus=bus)
    finally:
        await runner.close()
        await plat.close()
        await db.close()
