"""Output that fits where it goes: `sftbot run ... --yes` in a pipe prints one line per change
(no line repeated without a change, no progress-bar control characters), `--quiet` only what
matters, and every command's help has examples and every argument a help text."""

from __future__ import annotations

import argparse

import pytest

from bot.cli import parser
from bot.command import COMMANDS
from bot.testing.fireworks import FakeFireworks
from tests.bot.cli_support import CONTROL, fireworks_env, repeated, sftbot
from tests.paths import DATASETS

TEXT2SQL = f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b"


async def test_run_in_a_pipe_prints_each_change_once_and_no_progress_bars() -> None:
    async with FakeFireworks(job_seconds=3.0, deployment_seconds=0.05) as fake:
        code, out, err = await sftbot("run", TEXT2SQL, "--yes", env=fireworks_env(fake))
    assert code == 0, out + err
    assert "Run #1 succeeded." in out
    assert repeated(out) == [] and CONTROL.search(out + err) is None
    progress = [ln for ln in out.splitlines() if ln.startswith("[run #1] #1 ")]
    assert len(progress) >= 3  # the job was followed as it moved on
    assert len(progress) <= 13  # ...in steps of a tenth, not one line per poll
    assert all(len(ln) <= 100 for ln in progress)


async def test_quiet_prints_what_needs_a_person_and_how_it_ended() -> None:
    async with FakeFireworks(job_seconds=0.5, deployment_seconds=0.05) as fake:
        code, out, err = await sftbot("run", TEXT2SQL, "--yes", "--quiet", env=fireworks_env(fake, CI="true"))
    assert code == 0, out + err
    assert "[run #" not in out and "Plan v1" not in out and "Promotion gate" not in out
    assert "Run #1 succeeded." in out and "Deployed " in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_examples_and_every_argument_a_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    for action in sub._actions:
        assert action.help, f"sftbot {name}: {action.dest} has no help"
    with pytest.raises(SystemExit):
        sub.parse_args(["--help"])
    shown = capsys.readouterr().out
    assert "examples:\n" in shown and f"  sftbot {name}" in shown, shown


def test_the_top_help_lists_every_command_with_examples_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    shown = capsys.readouterr().out
    assert all(f"    {name} " in shown for name in COMMANDS)
    assert "examples:" in shown and "130 stopped by Ctrl-C, 143 by SIGTERM" in shown


async def test_a_gate_with_nobody_at_a_terminal_leaves_the_run_waiting_with_exit_4() -> None:
    async with FakeFireworks(job_seconds=0.5, deployment_seconds=0.05) as fake:
        code, out, err = await sftbot("run", TEXT2SQL, env=fireworks_env(fake))  # no --yes, stdin not a TTY
        assert code == 4, out + err
        assert out.splitlines()[-1] == (
            "Run #1 waits: a decision is needed but there is no terminal to ask on (--yes decides plans and "
            "promotions); `sftbot resume 1` at a terminal continues it."
        )
        code, out, _ = await sftbot("wait", "1", env=fireworks_env(fake))
    assert code == 4 and out.strip() == "Run #1: awaiting_plan_approval"
