"""The job-style commands as real processes against the fake Fireworks: `sftbot models`,
`cancel` (decided and audited like the Slack button), `wait` (its exit code says whether the
run needs a person or how it ended), `logs [-f]`, `--version`, and `resume` keeping --yes."""

from __future__ import annotations

import json
import signal
from importlib.metadata import version

import bot
from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import drive_to_end
from pipeline.domain.machine import Phase
from pipeline.domain.slots import Slot
from pipeline.run.decisions import Approve, Promote
from pipeline.run.events import PlanProposed, PromotionRequested, ScoreboardChanged
from pipeline.store import runs
from tests.bot.cli_support import clean_env, cli_store, fireworks_env, sftbot, sftbot_process
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ALICE, BOB, platform_for, until

TEXT2SQL = f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b"
LONG_JOBS = 3600.0  # the fake's jobs finish only when a test moves its clock on


async def jobs_move_on(fake: FakeFireworks, jobs: int, *, finish: bool = False) -> None:
    """Once ``jobs`` jobs exist, move the fake's clock past their CREATING and PENDING phases
    (bot/testing/fireworks/world.py): they run and stay running, or with ``finish`` complete."""

    async def created() -> bool:
        return len(fake.jobs) == jobs

    await until(created, timeout=60)
    fake.clock.advance(LONG_JOBS if finish else 0.3 * LONG_JOBS)


async def sweep_running(fake: FakeFireworks) -> None:
    await jobs_move_on(fake, 3)


async def test_version_is_the_packages_own() -> None:
    code, out, _ = await sftbot("--version", env=clean_env())
    assert code == 0 and out.strip() == f"sftbot {bot.__version__}" == f"sftbot {version('sftbot')}"


async def test_models_lists_the_catalogue_slack_shows(fake: FakeFireworks) -> None:
    platform = platform_for(fake)
    try:
        expected = [m.id for m in await platform.models.list_models()]  # what /sft models lists (handlers/surface.py)
    finally:
        await platform.close()
    code, out, err = await sftbot("models", "--json", env=fireworks_env(fake))
    assert code == 0, err
    listed = json.loads(out)
    assert listed["platform"] == "fireworks" and [m["id"] for m in listed["models"]] == expected and expected
    code, out, _ = await sftbot("models", env=fireworks_env(fake))
    assert code == 0 and out.startswith(f"Base models you can fine-tune on fireworks ({len(expected)})")
    assert all(model_id in out for model_id in expected)


async def test_cancel_stops_the_jobs_through_the_decision_path_and_wait_says_cancelled() -> None:
    async with FakeFireworks(job_seconds=LONG_JOBS, deployment_seconds=0.05) as fake:
        async with cli_store(fake) as (_, runner, log):
            run = await runner.start(TEXT2SQL, ALICE)
            await log.wait_kind(PlanProposed, run.id)
            await runner.decide(run.id, Approve(plan_version=1), BOB)
            await sweep_running(fake)
            await log.wait_for(lambda e: isinstance(e, ScoreboardChanged) and "running" in str(e.candidates))
        env = fireworks_env(fake)
        code, _, err = await sftbot("cancel", "1", env=env)  # nobody at a terminal to confirm
        assert code == 2 and "add --yes" in err and all(fake.job_state(j) == "JOB_STATE_RUNNING" for j in fake.jobs)
        code, out, err = await sftbot("cancel", "1", "--yes", env=env)
        assert code == 0, err
        assert out.strip() == "Run #1 cancelled (recorded in the audit trail)."
        assert fake.jobs and all(fake.job_state(j) == "JOB_STATE_CANCELLED" for j in fake.jobs)
        code, _, err = await sftbot("cancel", "1", "--yes", env=env)
        assert code == 1 and "run #1 has already cancelled; nothing to cancel" in err
        code, out, _ = await sftbot("wait", "1", env=env)
        assert code == 3 and out.strip() == "Run #1: cancelled"
        async with cli_store(fake) as (db, _, _):
            trail = await db.audit_trail(run.id)
    cancels = [a for a in trail if a.action == "cancel"]
    assert len(cancels) == 1 and cancels[0].actor.startswith("cli:")  # the terminal's user, like any decider


async def test_wait_returns_at_a_gate_and_at_the_end_while_logs_follows_the_run() -> None:
    async with FakeFireworks(job_seconds=LONG_JOBS, deployment_seconds=0.05) as fake:
        env = fireworks_env(fake)
        async with cli_store(fake) as (_, runner, log):
            run = await runner.start(TEXT2SQL, ALICE)
            await log.wait_kind(PlanProposed, run.id)
            code, out, _ = await sftbot("wait", "1", env=env)
            assert code == 4 and out.strip() == "Run #1: awaiting_plan_approval"  # a person must approve
            await runner.decide(run.id, Approve(plan_version=1), BOB)
            await sweep_running(fake)
            code, _, err = await sftbot("wait", "1", "--timeout", "0.5", env=env)
            assert code == 124 and "still going after 0.5 s" in err
            async with sftbot_process("wait", "1", env=env) as waiting, sftbot_process("logs", "1", "-f", env=env) as following:
                await following.line(lambda ln: " job_created " in ln)
                fake.clock.advance(LONG_JOBS)  # the sweep's jobs finish
                assert await waiting.finish() == 4 and "".join(waiting.out).strip() == "Run #1: awaiting_promotion"
                await log.wait_kind(PromotionRequested, run.id)
                await runner.decide(run.id, Promote(Slot.candidate(1)), BOB)
                await jobs_move_on(fake, 4, finish=True)  # the final run's job
                finished = await drive_to_end(runner, log, run.id, actor=BOB)
                assert finished.phase is Phase.SUCCEEDED
                assert await following.finish() == 0  # -f ends with the run
        followed = "".join(following.out)
        for action in ("run_created", "approve", "job_completed", "promote", "deployed"):
            assert f"  {action}" in followed, followed
        code, out, _ = await sftbot("wait", "1", env=env)
        assert code == 0 and out.strip() == "Run #1: succeeded"
        code, out, _ = await sftbot("logs", "1", "--json", env=env)
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and events[0]["action"] == "run_created"
    assert [e["id"] for e in events] == sorted(e["id"] for e in events) and len(events) == len(followed.splitlines())
    code, _, err = await sftbot("wait", "9", env=env)
    assert code == 1 and "no run 9" in err


async def test_resume_keeps_the_yes_the_run_was_started_with() -> None:
    async with FakeFireworks(job_seconds=LONG_JOBS, deployment_seconds=0.05) as fake:
        env = fireworks_env(fake)
        async with sftbot_process("run", TEXT2SQL, "--yes", env=env) as cli:
            await sweep_running(fake)
            await cli.line(lambda ln: ": running" in ln)  # the sweep's jobs run on the platform
            cli.signal(signal.SIGINT)
            assert await cli.finish(60) == 130, cli.text()
        said = "".join(cli.out)
        assert "Run #1 stopped; `sftbot resume 1` continues it." in said
        assert "3 job(s) of it keep running on fireworks (and billing) meanwhile; `sftbot cancel 1` stops them." in said
        assert "Traceback" not in cli.text() and all(fake.job_state(j) == "JOB_STATE_RUNNING" for j in fake.jobs)
        fake.clock.advance(10 * LONG_JOBS)
        code, out, err = await sftbot("resume", "1", "--yes", "--ask", env=env)
        assert code == 2 and "--yes and --ask contradict each other" in err
        async with sftbot_process("resume", "1", env=env) as resumed:  # no --yes: it is remembered
            await jobs_move_on(fake, 4, finish=True)  # the final run's job
            code = await resumed.finish()
        out = "".join(resumed.out)
        assert code == 0, resumed.text()
        assert "Resuming run #1" in out and "with --yes, as it was started" in out and "Run #1 succeeded." in out
        async with cli_store(fake) as (db, _, _):
            run = (await runs.list_runs(db))[0]
            trail = await db.audit_trail(run.id)
    decided = {a.action: a.actor for a in trail if a.action in ("approve", "promote")}
    assert set(decided) == {"approve", "promote"} and all(actor.startswith("cli:") for actor in decided.values())
