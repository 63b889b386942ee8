"""The loss chart: drawn once per set of inputs, in one thread, the same picture each time."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from bot.testing.memory_platform import MemoryPlatform
from pipeline.domain.platform import LossPoint
from pipeline.domain.records import Actor
from pipeline.run import curves
from pipeline.run.decisions import Approve
from pipeline.run.events import PlanProposed, PromotionRequested
from tests.paths import DATASETS


def _series(shift: float = 0.0) -> curves.Series:
    return {
        f"#{i} r16 lr1e-4": [
            LossPoint(step=s, train_loss=2.0 / (s + 1) + i / 100 + shift, val_loss=1.5 / (s + 1) if s % 10 == 9 else None)
            for s in range(40)
        ]
        for i in range(1, 4)
    }


class DrawCount:
    """The real plot_losses, counted, with the thread each drawing ran in."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.threads: list[str] = []
        self._real = curves.plot_losses
        monkeypatch.setattr(curves, "plot_losses", self)

    def __call__(self, *args: object, **kwargs: object) -> Path:
        self.threads.append(threading.current_thread().name)
        return self._real(*args, **kwargs)  # type: ignore[arg-type]


async def test_the_same_inputs_are_drawn_once_and_new_ones_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = DrawCount(monkeypatch)
    png = tmp_path / "loss_curves.png"
    await curves.draw_losses(_series(), png, title="Run #1 sweep", winner="#1 r16 lr1e-4")
    first = png.read_bytes()
    assert first.startswith(b"\x89PNG") and len(first) > 1000
    await curves.draw_losses(_series(), png, title="Run #1 sweep", winner="#1 r16 lr1e-4")
    assert len(drawn.threads) == 1 and png.read_bytes() == first
    await curves.draw_losses(_series(), png, title="Run #1 sweep", winner="#2 r16 lr1e-4")  # another leader
    await curves.draw_losses(_series(0.5), png, title="Run #1 sweep", winner="#2 r16 lr1e-4")  # other losses
    assert len(drawn.threads) == 3 and png.read_bytes() != first


async def test_a_picture_asked_for_while_it_is_drawn_is_drawn_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = DrawCount(monkeypatch)
    png = tmp_path / "loss_curves.png"
    await asyncio.gather(*(curves.draw_losses(_series(), png, title="Run #1 sweep") for _ in range(5)))
    assert len(drawn.threads) == 1 and png.stat().st_size > 1000


async def test_charts_of_many_runs_are_drawn_one_at_a_time_in_the_chart_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn = DrawCount(monkeypatch)
    await asyncio.gather(*(curves.draw_losses(_series(i), tmp_path / f"{i}.png", title=f"Run #{i}") for i in range(6)))
    assert len(drawn.threads) == 6 and set(drawn.threads) == {"sftbot-chart_0"}
    assert all((tmp_path / f"{i}.png").stat().st_size > 1000 for i in range(6))


async def test_a_gate_announced_again_on_restart_does_not_draw_its_chart_again(
    make_runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn = DrawCount(monkeypatch)
    people = Actor(id="U_ALICE", name="alice"), Actor(id="U_BOB", name="bob")
    runner, log = await make_runner(MemoryPlatform())
    run = await runner.start(f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b", people[0])
    await log.wait_kind(PlanProposed, run.id)
    await runner.decide(run.id, Approve(plan_version=1), people[1])
    gate = await log.wait_kind(PromotionRequested, run.id)
    assert gate.curves is not None
    picture = gate.curves.read_bytes()
    await runner.close()
    again, again_log = await make_runner(MemoryPlatform())
    await again.resume_all()
    announced = await again_log.wait_kind(PromotionRequested, run.id)
    assert announced.curves == gate.curves and gate.curves.read_bytes() == picture
    assert len(drawn.threads) == 1
