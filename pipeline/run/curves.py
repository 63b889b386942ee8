"""Loss-curve picture for chat (matplotlib, Agg backend: no display needed on a server).

Made to be read at Slack's preview size: validation loss is the thick line the decision is
about, training loss a faint line behind it; the leader is drawn strongest and named at the
end of its line (direct labels, no legend to match colours against); rendered at 2x so
text stays sharp on a phone. Per-epoch summary rows are not mixed into the per-step
training curve (a mean appended at the last step drew a vertical line).

Every run draws its chart at its promotion gate, and a gate announces itself again on each
restart, so ``draw_losses`` draws only when the inputs differ from those the picture on disk
was drawn from, and all drawing happens in one thread of its own (see ``_drawer``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.domain.fsio import atomic_output, write_atomic
from pipeline.domain.platform import LossPoint
from pipeline.domain.records import CandidateRecord

Series = dict[str, list[LossPoint]]
_DRAWER: ThreadPoolExecutor | None = None
_DRAWING: dict[tuple[Path, str], asyncio.Future[Path]] = {}  # pictures being drawn: a second ask waits for the first


def _train(points: list[LossPoint]) -> list[tuple[float, float]]:
    per_step = [p for p in points if p.train_loss is not None and p.val_loss is None]
    rows = per_step or [p for p in points if p.train_loss is not None]  # only epoch rows: use them
    return [(float(p.step if p.step is not None else i), float(p.train_loss or 0.0)) for i, p in enumerate(rows)]


def _val(points: list[LossPoint]) -> list[tuple[float, float]]:
    return [
        (float(p.step if p.step is not None else i), float(p.val_loss)) for i, p in enumerate(points) if p.val_loss is not None
    ]


def labels(jobs: Sequence[CandidateRecord]) -> dict[str, str]:
    """Short line labels by job id (read at chat size): ``#2 r16 lr0.0001``, the model only when it varies."""
    with_model = len({j.base_model for j in jobs}) > 1
    return {
        j.job_id: f"{j.slot.name} r{j.lora_rank} lr{j.learning_rate:g}" + (f" {j.base_model}" if with_model else "") for j in jobs
    }


def _drawer() -> ThreadPoolExecutor:
    """The one thread that draws charts, bounded to one on purpose.

    Drawing is CPU work under the GIL (matplotlib is mostly Python, ~0.1 s a chart), so more
    threads draw no faster; handed to the default pool, 50 runs' charts took all its workers
    and the GIL from the event loop, and every run's database round trips waited behind them
    (bench/bench_orchestration.py). matplotlib is not thread-safe either: one thread also
    keeps two charts from ever being drawn at once.
    """
    global _DRAWER
    if _DRAWER is None:
        _DRAWER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sftbot-chart")
    return _DRAWER


def _key(series: Series, title: str, winner: str | None) -> str:
    """What the picture is drawn from, as a digest (the same inputs draw the same picture)."""
    data = {"title": title, "winner": winner, "series": {k: [p.model_dump() for p in v] for k, v in series.items()}}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


async def draw_losses(series: Series, dest: Path, *, title: str, winner: str | None = None) -> Path:
    """The chart of ``series`` at ``dest``, drawn in the chart thread unless ``dest`` already shows it.

    The digest of the inputs is kept beside the picture (written after it, so a crash between
    the two only costs a redraw).
    """
    key = _key(series, title, winner)
    stamp = dest.with_name(dest.name + ".key")
    if dest.exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == key:
        return dest
    loop = asyncio.get_running_loop()
    pending = _DRAWING.get((dest, key))
    if pending is None or pending.get_loop() is not loop:
        draw = functools.partial(plot_losses, series, dest, title=title, winner=winner)
        pending = loop.run_in_executor(_drawer(), draw)
        _DRAWING[(dest, key)] = pending
        pending.add_done_callback(lambda done: _DRAWING.pop((dest, key)) if _DRAWING.get((dest, key)) is done else None)
    await asyncio.shield(pending)
    write_atomic(stamp, key)
    return dest


def plot_losses(series: Series, dest: Path, *, title: str, winner: str | None = None) -> Path:
    """Validation loss (thick, labelled) and training loss (faint) per candidate, into a PNG."""
    # A Figure without pyplot, as matplotlib advises for servers: pyplot keeps global state
    # (https://matplotlib.org/stable/gallery/user_interfaces/web_application_server_sgskip.html).
    from matplotlib.figure import Figure

    # A fixed layout instead of tight_layout(): half the cost, and the same picture every time;
    # the right margin holds the line labels.
    fig = Figure(figsize=(6.4, 3.6), dpi=200)
    ax = fig.add_axes((0.1, 0.14, 0.6, 0.74))
    drawn = False
    for i, (label, points) in enumerate(series.items()):
        color = f"C{i % 10}"
        best = label == winner
        train, val = _train(points), _val(points)
        if train:
            ax.plot([x for x, _ in train], [y for _, y in train], color=color, alpha=0.25, linewidth=0.8)
        if val:
            drawn = True
            ax.plot(
                [x for x, _ in val],
                [y for _, y in val],
                color=color,
                marker="o",
                markersize=4 if best else 3,
                linewidth=3 if best else 1.6,
                alpha=1.0 if best or winner is None else 0.75,
            )
            name = f"★ {label} (best)" if best else label
            ax.annotate(
                name,
                xy=val[-1],
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color=color,
                fontweight="bold" if best else "normal",
                annotation_clip=False,
            )
    ax.set_title(title + " · validation loss (thick), training loss (faint)", fontsize=9, loc="left")
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("loss", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.2)
    if not drawn:
        ax.text(0.5, 0.5, "no validation loss reported", ha="center", va="center", transform=ax.transAxes)
    with atomic_output(dest) as tmp:
        fig.savefig(tmp, format="png")
    return dest
