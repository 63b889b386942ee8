"""The terminal's live scoreboard: elapsed and remaining per job from its progress (or the plan's
estimate before it has any), and plain lines instead whenever nobody watches a terminal."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bot.live import LiveBoard, clock, wants_live
from pipeline.domain.records import CandidateRecord
from pipeline.domain.slots import FINAL, CandidateState, Slot
from pipeline.planning.plan_types import Duration
from pipeline.run.scoreboard import timing

NOW = 10_000.0


def job(
    slot: Slot, state: CandidateState, progress: float, started: float | None, finished: float | None = None
) -> CandidateRecord:
    return CandidateRecord(
        run_id="r",
        slot=slot,
        job_id=f"j-{slot}",
        base_model="tiny-llama",
        lora_rank=8,
        learning_rate=1e-3,
        epochs=1,
        train_samples=40,
        state=state,
        progress=progress,
        started_at=started,
        finished_at=finished,
        val_loss=0.5 if state is CandidateState.COMPLETED else None,
    )


def test_remaining_comes_from_progress_then_from_the_plan() -> None:
    planned = Duration(low_seconds=80, high_seconds=120, basis="test")
    assert timing(job(Slot.candidate(1), CandidateState.RUNNING, 25.0, NOW - 30), NOW) == (30.0, 90.0)
    assert timing(job(Slot.candidate(2), CandidateState.RUNNING, 0.0, NOW - 30), NOW, planned) == (30.0, 70.0)
    assert timing(job(Slot.candidate(3), CandidateState.WAITING, 0.0, None), NOW, planned) == (None, 100.0)
    assert timing(job(FINAL, CandidateState.COMPLETED, 100.0, NOW - 50, NOW - 5), NOW) == (45.0, 0.0)
    assert timing(job(Slot.candidate(4), CandidateState.WAITING, 0.0, None), NOW) == (None, None)


def test_the_table_shows_phase_progress_elapsed_and_remaining() -> None:
    out = io.StringIO()
    board = LiveBoard(Console(file=out, width=160, force_terminal=False, color_system=None), now=lambda: NOW)
    board.started = NOW - 75
    board.title, board.phase = "Run #3", "sweeping"
    board.planned = {
        "c2": Duration(low_seconds=50, high_seconds=70, basis="test"),
        "final": Duration(low_seconds=100, high_seconds=140, basis="test"),  # not started: its estimate counts
    }
    board.jobs = {
        "c1": job(Slot.candidate(1), CandidateState.RUNNING, 50.0, NOW - 60),
        "c2": job(Slot.candidate(2), CandidateState.WAITING, 0.0, None),
    }
    board.console.print(board.render())
    text = out.getvalue()
    assert "Run #3 — sweeping — elapsed 1:15, remaining ~4:00" in text  # c1: 60 s left; c2: 60 s and final 120 s planned
    assert "50.0%" in text and "1:00" in text and "waiting" in text
    assert clock(3725) == "1:02:05"


def test_plain_lines_in_a_pipe_and_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert wants_live(Tty()) and not wants_live(io.StringIO())
    monkeypatch.setenv("CI", "true")
    assert not wants_live(Tty())


@pytest.mark.parametrize("width", [80, 60, 120])
def test_at_any_width_each_job_is_one_line_that_fits(width: int) -> None:
    out = io.StringIO()
    board = LiveBoard(Console(file=out, width=width, force_terminal=False, color_system=None), now=lambda: NOW)
    board.title, board.phase = "Run #12", "sweeping"
    long_base = "accounts/fireworks/models/qwen3-30b-a3b-instruct-2507"
    board.jobs = {
        f"c{i}": job(Slot.candidate(i), CandidateState.RUNNING, 10.0 * i, NOW - 30).model_copy(update={"base_model": long_base})
        for i in range(1, 4)
    }
    board.console.print(board.render())
    lines = out.getvalue().splitlines()
    assert all(len(line.rstrip()) <= width for line in lines)
    for i in range(1, 4):  # one line per job, with its state and progress on it
        rows = [line for line in lines if line.lstrip().startswith(f"#{i} ")]
        assert len(rows) == 1 and "running" in rows[0] and f"{10 * i}" in rows[0], out.getvalue()
