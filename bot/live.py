"""The live scoreboard of the terminal: in a TTY one table redrawn in place (rich), with the
phase, each job's progress, elapsed time and what remains; in a pipe or CI, nothing here runs
and the terminal prints plain lines as before (logs and tests read those).

rich's ``Live`` redraws a few times a second on its own, so elapsed times tick even while no
job reports progress. Anything else the run says is printed above the table.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pipeline.domain.records import CandidateRecord
from pipeline.planning.plan_types import Duration
from pipeline.run.scoreboard import leader, rank, timing


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def wants_live(stream: object = None) -> bool:
    """A live table only for a person at a terminal: not in a pipe, not in CI, not on a dumb terminal."""
    stream = stream or sys.stdout
    isatty = getattr(stream, "isatty", None)
    return (
        bool(isatty and isatty()) and os.environ.get("CI", "").lower() not in ("true", "1") and os.environ.get("TERM") != "dumb"
    )


class LiveBoard:
    """One run's phase and jobs as a table that redraws in place."""

    def __init__(self, console: Console | None = None, *, now: Callable[[], float] = time.time) -> None:
        self.console = console or Console()
        self._now = now
        self.phase = ""
        self.title = ""
        self.started = self._now()
        self.jobs: dict[str, CandidateRecord] = {}
        self.planned: Mapping[str, Duration] = {}
        self._live: Live | None = None

    def start(self) -> None:
        if self._live is None:
            self._live = Live(get_renderable=self.render, console=self.console, refresh_per_second=4, transient=False)
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def say(self, text: str) -> None:
        """A line above the table (plans, milestones, prompts' context)."""
        self.console.print(Text(text))

    def update(self, cands: list[CandidateRecord]) -> None:
        for c in cands:
            self.jobs[str(c.slot)] = c
        self.start()

    def render(self) -> Table:
        """The table, fitted to the terminal's width: a narrow one drops the bars and the epoch and
        elapsed columns, and each job stays on one line (its label is cut with an ellipsis)."""
        now = self._now()
        cands = list(self.jobs.values())
        top = leader(cands)
        rows = rank(cands) + [c for c in cands if c.slot.is_final]
        left = [timing(c, now, self.planned.get(str(c.slot)))[1] for c in rows]
        # Jobs the plan has that have not started (the final run during the sweep) count too.
        left += [(d.low_seconds + d.high_seconds) / 2 for slot, d in self.planned.items() if slot not in self.jobs]
        eta = None if not left or any(r is None for r in left) else sum(r for r in left if r is not None)
        wide = self.console.width >= WIDE
        table = Table(
            title=f"{self.title} — {self.phase} — elapsed {clock(now - self.started)}, remaining ~{clock(eta)}",
            title_justify="left",
            expand=False,
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        columns = COLUMNS if wide else NARROW
        widths = {**WIDTHS, "progress": WIDTHS["progress"] if wide else 4}
        # Every column but the job's gets its width; the job's label takes what is left of the line
        # once rich's padding (one space each side, none at the table's edges), the one-space
        # dividers and the two edges are counted.
        n = len(columns) + 2
        fixed = sum(widths[name] for name in columns) + STATE + (2 * n - 2) + (n - 1) + 2
        table.add_column("job", no_wrap=True, overflow="ellipsis", max_width=max(12, self.console.width - fixed - 1))
        table.add_column("state", no_wrap=True, overflow="ellipsis", width=STATE)
        for name in columns:
            header = name if wide or name != "progress" else "%"
            table.add_column(header, justify="right", no_wrap=True, width=widths[name])
        for c in rows:
            cells = self._cells(c, now, bar=wide)
            mark = " ★" if top is not None and c.slot == top.slot else ""
            state = c.state.value + (" (no progress)" if c.stalled else "")
            label = f"{c.slot.name} {c.base_model.rsplit('/', 1)[-1]} r{c.lora_rank} lr{c.learning_rate:g}"
            table.add_row(label + mark, state, *(cells[name] for name in columns))
        return table

    def _cells(self, c: CandidateRecord, now: float, *, bar: bool) -> dict[str, str]:
        elapsed, remaining = timing(c, now, self.planned.get(str(c.slot)))
        return {
            "progress": _bar(c.progress) if bar else f"{c.progress:.0f}%",
            "epoch": f"{c.epoch:g}" if c.epoch is not None else "-",
            "val loss": f"{c.val_loss:.4f}" if c.val_loss is not None else "-",
            "score": f"{c.score:.3f}" if c.score is not None else "-",
            "elapsed": clock(elapsed),
            "left": clock(remaining) if not c.state.is_finished() else "done",
        }


# From 120 columns the table has room for everything with ~35 columns left for the job's
# label; below, it keeps what a person checks at a glance, which at 80 leaves ~29 for it.
WIDE = 120
COLUMNS = ("progress", "epoch", "val loss", "score", "elapsed", "left")
NARROW = ("progress", "val loss", "score", "left")
STATE = 9  # "completed"
WIDTHS = {"progress": 19, "epoch": 5, "val loss": 8, "score": 5, "elapsed": 7, "left": 7}


def _bar(percent: float, width: int = 12) -> str:
    filled = round(width * max(0.0, min(percent, 100.0)) / 100)
    return "█" * filled + "░" * (width - filled) + f" {percent:5.1f}%"
