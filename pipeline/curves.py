"""Loss-curve picture (matplotlib, Agg backend: no display needed on a server)."""

from __future__ import annotations

from pathlib import Path

from pipeline.platforms.base import LossPoint


def plot_losses(series: dict[str, list[LossPoint]], dest: Path, *, title: str) -> Path:
    """Training loss (thin) and validation loss (dots) per candidate, into a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # A fixed layout instead of tight_layout(): half the cost, and the same picture every time.
    fig = plt.figure(figsize=(7, 4), dpi=90)
    ax = fig.add_axes((0.09, 0.12, 0.88, 0.8))
    for i, (label, points) in enumerate(series.items()):
        color = f"C{i % 10}"
        train = [(p.step if p.step is not None else j, p.train_loss) for j, p in enumerate(points) if p.train_loss is not None]
        val = [(p.step if p.step is not None else j, p.val_loss) for j, p in enumerate(points) if p.val_loss is not None]
        if train:
            ax.plot([x for x, _ in train], [y for _, y in train], color=color, alpha=0.5, linewidth=1, label=f"{label} train")
        if val:
            ax.plot([x for x, _ in val], [y for _, y in val], color=color, marker="o", linewidth=2, label=f"{label} val")
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if series and any(series.values()):
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no metrics reported", ha="center", va="center", transform=ax.transAxes)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest)
    plt.close(fig)
    return dest
