"""Every money gate from the terminal, as real processes against the fake Fireworks: `sftbot run
--yes` with no stdin on jobs that cost 80x their estimate stops at the budget gate (--yes never
decides money), says the amount, who may decide and the exact command, and exits 4 with the run
left resumable; that command, typed by the terminal's operator, decides through the same
decision path as a click (audited) and continues the run to its end."""

from __future__ import annotations

import os
import pty
import re

from bot.errors import EXIT_NEEDS_PERSON
from bot.testing.fireworks import FakeFireworks
from pipeline.domain.gates import BudgetStep
from pipeline.domain.machine import Phase
from pipeline.store import runs
from pipeline.store.db import Database
from tests.bot.cli_support import fireworks_env, sftbot, sftbot_process
from tests.paths import DATASETS

TEXT2SQL = f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b"
ENDED = re.compile(r"Run #1 (succeeded|failed|cancelled|waits)")
RAISE = re.compile(r"`sftbot decide (\d+) raise ([0-9.]+)`")


async def _waiting(db_path: str) -> tuple[Phase, float | None, BudgetStep | None]:
    db = await Database.open(db_path)
    try:
        run = await runs.get_run(db, 1)
        assert run is not None
        return run.phase, run.budget.more_usd if run.budget else None, run.budget.step if run.budget else None
    finally:
        await db.close()


async def test_run_yes_without_stdin_exits_at_the_budget_gate_and_decide_continues_it_to_its_end() -> None:
    async with FakeFireworks(job_seconds=0.2, deployment_seconds=0.05) as fake:
        fake.cost_factor = 80.0  # the platform prices every job at 80x the plan's estimate
        env = fireworks_env(fake)
        db_path = f"{env['SFTBOT_DATA_DIR']}/sftbot.sqlite3"
        command: tuple[str, ...] = ("run", TEXT2SQL, "--yes")
        steps: list[BudgetStep] = []
        for _ in range(3):  # a gate per paid step at most: the final run, the deployment
            async with sftbot_process(*command, env=env) as cli:
                said = await cli.line(lambda ln: "waits at the budget gate" in ln or "Run #1 succeeded." in ln)
                code = await cli.finish(30)  # it does not wait forever: it exits once the gate is said
            if "succeeded" in said:
                break
            assert code == EXIT_NEEDS_PERSON, cli.text()
            phase, more, step = await _waiting(db_path)
            assert phase is Phase.AWAITING_BUDGET and step is not None and more is not None
            steps.append(step)
            found = RAISE.search(said)
            assert found is not None and found.group(1) == "1" and float(found.group(2)) == more, said
            assert f"approves ${more:,.2f} more" in said and "or you at this terminal" in said
            assert "`sftbot decide 1 skip`" in said and "`sftbot cancel 1`" in said
            gate = next(ln for ln in cli.out if ln.startswith("Budget gate — run #1:"))
            ratio = re.search(r"jobs cost ([0-9.]+)x their estimate", gate)
            assert f"needs ≈ ${more:,.2f} more than approved" in gate and ratio and float(ratio.group(1)) > 50, gate
            if step is BudgetStep.DEPLOY:  # a rate: approving it approves the rate and its first hour
                assert "the deployment $8/h until deleted or scaled to zero (first hour in this estimate" in gate
            jobs = len(fake.jobs)
            code, _, err = await sftbot("decide", "1", "raise", f"{more + 1:.2f}", env=env)  # not the gate's amount
            assert code == 1 and f"asks for ${more:,.2f} more, not ${more + 1:,.2f}" in err and len(fake.jobs) == jobs
            # The operator types the command it named; the run goes on in that command.
            command = tuple(found.group(0).strip("`").split()[1:])
        assert code == 0 and steps, cli.text()
    assert BudgetStep.DEPLOY in steps  # 80x jobs: at least the deployment needed more than was approved
    db = await Database.open(db_path)
    try:
        run = await runs.get_run(db, 1)
        assert run is not None and run.phase is Phase.SUCCEEDED
        trail = [a.action for a in await db.audit_trail(run.id)]
    finally:
        await db.close()
    assert trail.count("raise_budget") == len(steps) and "denied_raise_budget" not in trail  # audited like a click


async def test_run_yes_at_a_tty_prompts_at_the_budget_gate_and_the_answer_continues_the_run() -> None:
    """stdin a real terminal (a pty): --yes decides the plan and the promotion, the budget gate
    is asked there, and `r` approves what it asks, audited like a click."""
    primary, tty = pty.openpty()
    try:
        async with FakeFireworks(job_seconds=0.2, deployment_seconds=0.05) as fake:
            fake.cost_factor = 80.0
            env = fireworks_env(fake)
            db_path = f"{env['SFTBOT_DATA_DIR']}/sftbot.sqlite3"
            async with sftbot_process("run", TEXT2SQL, "--yes", env=env, stdin=tty) as cli:
                gates = 0
                while True:
                    said = await cli.line(
                        lambda ln: (ln.startswith("Budget gate — run #1:") and ln not in cli.seen) or ENDED.match(ln) is not None
                    )
                    if not said.startswith("Budget gate"):
                        break
                    cli.seen.add(said)
                    gates += 1
                    os.write(primary, b"r\n")  # the person at the terminal answers the prompt
                try:
                    code = await cli.finish(60)
                except TimeoutError:
                    raise AssertionError(cli.text()) from None
            assert code == 0 and "Run #1 succeeded." in said and gates >= 1, cli.text()
            assert "waits at the budget gate" not in cli.text()  # asked, not left waiting
            assert "Approve $" in cli.text()  # the prompt, with the amount
    finally:
        os.close(primary)
        os.close(tty)
    db = await Database.open(db_path)
    try:
        run = await runs.get_run(db, 1)
        assert run is not None and run.phase is Phase.SUCCEEDED
        trail = [a for a in await db.audit_trail(run.id) if a.action == "raise_budget"]
    finally:
        await db.close()
    assert len(trail) == gates and all(a.actor.startswith("cli:") for a in trail)
