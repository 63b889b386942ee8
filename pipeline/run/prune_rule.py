"""Pruning across a sweep's candidates (pure): successive halving at epoch boundaries.

The rule, in one place (the plan message and the README say the same words):

    After each epoch e, rank every candidate that has reported a validation loss for epoch e
    (its "rung"). A candidate still training is stopped when, at that rung,
      1. it is outside the top half, and never one of the top ``KEEP`` (2), and
      2. its validation loss is more than 5% above the best loss at that rung (``RATIO``), and
      3. it has epochs left to run (stopping it saves something), and
      4. it is not the last candidate of its base model still in the race.

Both conditions 1 and 2 must hold: halving alone would stop a candidate that is level with
the others, the margin alone would stop half a sweep of equally poor candidates. Why 5% and
not more: every candidate is scored on the same held-out rows, so a gap is a real difference
of the candidates, not sampling noise; and a loss is dominated by what no candidate can
learn (a small model on real text, a random one in the tests, sits near ln(vocabulary) for
all), so a learning rate that learns nothing is 10-12% behind on the tiny test model, not 50%. A rung counts
every candidate that reported that epoch, including ones pruned or failed since, so a
prune never moves the others up and starts a cascade. Loss that is not a finite number
ranks last. Candidates on different base models share the rung (the loss is per token on
each model's own tokenizer, so it is only roughly comparable); condition 4 keeps one of
each base model alive, which is why that is safe enough.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from pipeline.domain.slots import Slot

RATIO = 1.05  # a loss more than 5% above the rung's best is "clearly worse" (see above)
KEEP = 2  # the top two of every rung always go on

RULE = (
    f"after each epoch, a candidate whose validation loss is more than {round((RATIO - 1) * 100)}% above the best "
    f"at that epoch and outside the top half is stopped; the top {KEEP} and the last of each base model go on"
)


class Standing(str, Enum):
    """Where a candidate is in the race, as far as pruning cares."""

    WAITING = "waiting"  # not started yet: it may still finish
    TRAINING = "training"  # the only standing that can be pruned
    DONE = "done"  # completed: it has a model
    OUT = "out"  # failed, cancelled or pruned: it will produce no model


@dataclass(frozen=True)
class Entry:
    """One candidate as pruning sees it."""

    slot: Slot
    base_model: str
    epochs: int  # planned
    losses: Mapping[int, float]  # validation loss at the end of each finished epoch (1-based)
    standing: Standing

    @property
    def in_race(self) -> bool:
        return self.standing is not Standing.OUT


@dataclass(frozen=True)
class Prune:
    """A decision to stop one candidate, with everything its reason needs."""

    slot: Slot
    epoch: int
    val_loss: float
    best: float
    best_slot: Slot
    rank: int  # 1-based place at the rung
    rung: int  # candidates that reported this epoch

    @property
    def reason(self) -> str:
        """The scoreboard note and the audit reason: short enough for a 480 px line."""
        return (
            f"pruned after epoch {self.epoch}: val loss {_num(self.val_loss)} vs best {_num(self.best)} ({self.best_slot.name})"
        )


def _num(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def _sort_key(loss: float, slot: Slot) -> tuple[float, tuple[int, int]]:
    return (loss if math.isfinite(loss) else math.inf, slot.order)


def decide(entries: Sequence[Entry]) -> list[Prune]:
    """Which training candidates to stop now (each at the first epoch the rule fires for it)."""
    in_race: dict[str, int] = {}
    for e in entries:
        if e.in_race:
            in_race[e.base_model] = in_race.get(e.base_model, 0) + 1
    decided: list[Prune] = []
    chosen: set[Slot] = set()
    last_epoch = max((max(e.losses, default=0) for e in entries), default=0)
    for epoch in range(1, last_epoch + 1):
        rung = sorted((e for e in entries if epoch in e.losses), key=lambda e: _sort_key(e.losses[epoch], e.slot))
        if len(rung) <= KEEP:
            continue
        best = rung[0]
        keep = max(KEEP, math.ceil(len(rung) / 2))
        # Worst first: when the last-of-a-base-model rule spares one, it spares the better one.
        for place, e in reversed(list(enumerate(rung[keep:], start=keep + 1))):
            loss = e.losses[epoch]
            worse = not math.isfinite(loss) or loss > RATIO * best.losses[epoch]
            if e.standing is not Standing.TRAINING or e.slot in chosen or not worse or epoch >= e.epochs:
                continue
            if in_race[e.base_model] <= 1:
                continue  # never the last candidate of a base model
            in_race[e.base_model] -= 1
            chosen.add(e.slot)
            decided.append(
                Prune(
                    slot=e.slot,
                    epoch=epoch,
                    val_loss=loss,
                    best=best.losses[epoch],
                    best_slot=best.slot,
                    rank=place,
                    rung=len(rung),
                )
            )
    return decided


def epoch_losses(points: Sequence[tuple[float | None, float | None]]) -> dict[int, float]:
    """Validation loss per finished epoch from (epoch, val_loss) metric rows.

    Only rows at a whole epoch count (the end-of-epoch validation); a platform that logs
    validation mid-epoch gives nothing here rather than a loss at the wrong rung.
    """
    out: dict[int, float] = {}
    for epoch, val in points:
        if epoch is None or val is None or epoch < 1:
            continue
        whole = round(epoch)
        if abs(epoch - whole) < 1e-6:
            out[whole] = float(val)
    return out


@dataclass(frozen=True)
class Pruned:
    """One pruned candidate, for what pruning saved."""

    epochs: int  # planned
    reached: float  # epochs trained when it stopped (fractional: the epoch it was in counts in part)
    usd_per_epoch: float | None  # billing platforms: what one epoch of this candidate costs
    seconds_per_epoch: float | None  # what one epoch takes (measured, else estimated)


@dataclass(frozen=True)
class Savings:
    """What pruning saved across a sweep."""

    pruned: int
    candidate_epochs: float
    usd: float | None  # None: not billed, or a price was unknown
    seconds: float | None  # None: no time per epoch known

    def sentence(self, *, local: bool) -> str:
        """ "Pruning stopped 1 candidate early and saved 2.0 candidate-epochs (≈ 3 min)." """
        n = f"{self.pruned} candidate{'s' if self.pruned != 1 else ''}"
        extra = ""
        if local and self.seconds is not None:
            extra = f" (≈ {_minutes(self.seconds)} of training on this machine)"
        elif not local and self.usd is not None:
            extra = f" (≈ ${self.usd:,.2f} of training)"
        return f"Pruning stopped {n} early and saved {self.candidate_epochs:.1f} candidate-epochs{extra}."


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def savings(pruned: Sequence[Pruned]) -> Savings | None:
    """Epochs a pruned candidate did not run, summed, with their money or time; None when none was pruned."""
    if not pruned:
        return None
    left = [(p, max(0.0, p.epochs - p.reached)) for p in pruned]
    usd: float | None = 0.0
    seconds: float | None = 0.0
    for p, n in left:
        usd = None if usd is None or p.usd_per_epoch is None else usd + p.usd_per_epoch * n
        seconds = None if seconds is None or p.seconds_per_epoch is None else seconds + p.seconds_per_epoch * n
    return Savings(pruned=len(pruned), candidate_epochs=round(sum(n for _, n in left), 2), usd=usd, seconds=seconds)
