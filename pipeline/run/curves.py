"""Loss-curve picture for chat (matplotlib, Agg backend: no display needed on a server).

Made to be read at Slack's preview size: validation loss is the thick line the decision is
about, training loss a faint line behind it; the leader is drawn strongest and named at the
end of its line (direct labels, no legend to match colours against); rendered at 2x so
text stays sharp on a phone. Per-epoch summary rows are not mixed into the per-step
training curve (a mean appended at the last step drew a vertical line).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.domain.platform import LossPoint
from pipeline.domain.records import CandidateRecord


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


def plot_losses(series: dict[str, list[LossPoint]], dest: Path, *, title: str, winner: str | None = None) -> Path:
    """Validation loss (thick, labelled) and training loss (faint) per candidate, into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # A fixed layout instead of tight_layout(): half the cost, and the same picture every time;
    # the right margin holds the line labels.
    fig = plt.figure(figsize=(6.4, 3.6), dpi=200)
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
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest)
    plt.close(fig)
    return dest
