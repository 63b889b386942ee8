"""Parse a Fireworks SFT job's ``metrics.jsonl`` into loss points, defensively.

The file behind ``metricsFileSignedUrl`` has no published schema (reference/fireworks.md
§3.4, §12): one JSON object per line with a ``step``, metrics either at the top level or
under ``data``, keys like ``train/loss`` or ``loss``, and an eval loss under some key that
mentions eval/val and loss. So we accept every shape we know of and skip what we cannot
read instead of failing a whole sweep over one odd line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping

from pipeline.domain.platform import LossPoint

_TRAIN_KEYS = ("train/loss", "loss", "train_loss", "training_loss", "train/train_loss")
_STEP_KEYS = ("step", "train/step", "global_step", "train/global_step")
_EPOCH_KEYS = ("epoch", "train/epoch", "eval/epoch")
_VAL_WORDS = frozenset({"eval", "val", "valid", "validation", "evaluation"})
_WORD = re.compile(r"[a-z0-9]+")


def parse_metrics(lines: Iterable[str]) -> list[LossPoint]:
    """Loss points in file order; lines that are not JSON objects with a loss are skipped."""
    points: list[LossPoint] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, Mapping):
            point = point_from_row(row)
            if point is not None:
                points.append(point)
    return points


def point_from_row(row: Mapping[str, object]) -> LossPoint | None:
    """One row -> a LossPoint, or None when it carries neither a train nor a validation loss."""
    metrics: dict[str, object] = dict(row)
    nested = row.get("data")
    if isinstance(nested, Mapping):
        metrics.update({str(k): v for k, v in nested.items()})
    train = _first_number(metrics, _TRAIN_KEYS)
    val = _validation_loss(metrics)
    if train is None and val is None:
        return None
    step = _first_number(metrics, _STEP_KEYS)
    epoch = _first_number(metrics, _EPOCH_KEYS)
    return LossPoint(step=int(step) if step is not None else None, epoch=epoch, train_loss=train, val_loss=val)


def _validation_loss(metrics: Mapping[str, object]) -> float | None:
    # Prefer the exact names seen in the wild, then anything like "eval_loss" or "val/loss";
    # matching whole words keeps e.g. "interval_loss" out.
    exact = _first_number(metrics, ("eval/loss", "val/loss", "eval_loss", "val_loss", "validation/loss", "validation_loss"))
    if exact is not None:
        return exact
    for key in sorted(metrics):
        words = set(_WORD.findall(key.lower()))
        if "loss" in words and words & _VAL_WORDS:
            value = _number(metrics[key])
            if value is not None:
                return value
    return None


def _first_number(metrics: Mapping[str, object], keys: Iterable[str]) -> float | None:
    for key in keys:
        if key in metrics:
            value = _number(metrics[key])
            if value is not None:
                return value
    return None


def _number(value: object) -> float | None:
    """A finite float from a JSON number or numeric string; NaN/inf count as missing (they break ranking)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value)
        except ValueError:
            return None
    else:
        return None
    return out if math.isfinite(out) else None
