"""Deterministic held-out test split and HP-tuning subsample of a JSONL dataset.

Rule (``split_sizes``): the test split is 10% of the samples, at least 1 and at most
1,000, and never so large that the train split falls below the platform minimum of 3.
When the train split has more than 1,000 samples, HP tuning runs on a 1,000-sample
subsample of it (seed 42); otherwise HP tuning uses the train split itself.

Which lines go where is decided by a keyed hash (BLAKE2b, keyed by seed and purpose) of
each sample's index, so the same file and seed give byte-identical outputs on any
machine and Python version, unlike ``random.sample``. Streaming: two passes over the
file, holding only the chosen indices (at most ``max_test`` + ``hp_samples`` ints).
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel

from pipeline.domain.fsio import atomic_output
from pipeline.domain.limits import MIN_SAMPLES

TEST_FRACTION = 0.1
MIN_TEST = 1
MAX_TEST = 1_000  # enough for a stable evaluation; more only slows every eval run
HP_SAMPLES = 1_000  # HP-tuning candidates train on at most this many samples
SEED = 42
_BLOCK = 1 << 22  # 4 MiB reads: per-read overhead vanishes, memory stays flat
_BLANK = b" \t\r"


class SplitResult(BaseModel):
    """Where the splits were written and how many samples each holds."""

    src: str
    train_path: str
    test_path: str
    hp_train_path: str  # equals train_path when the train split was small enough
    hp_subsampled: bool
    samples: int
    train: int
    test: int
    hp_train: int
    seed: int
    rule: str


def split_sizes(
    n: int,
    *,
    test_fraction: float = TEST_FRACTION,
    min_test: int = MIN_TEST,
    max_test: int = MAX_TEST,
    hp_samples: int | None = HP_SAMPLES,
) -> tuple[int, int, int]:
    """(train, test, hp_train) sample counts for ``n`` samples; no file needed."""
    if n < 0 or not 0.0 <= test_fraction < 1.0 or min_test < 0 or max_test < min_test:
        raise ValueError("need n >= 0, 0 <= test_fraction < 1 and 0 <= min_test <= max_test")
    # The epsilon keeps 0.1 * 30 from flooring to 2 through binary rounding.
    test = min(max_test, max(min_test, math.floor(n * test_fraction + 1e-9)))
    test = max(0, min(test, n - MIN_SAMPLES))  # the train split must stay trainable
    train = n - test
    hp = train if hp_samples is None else min(train, hp_samples)
    return train, test, hp


def split_rule(
    test_fraction: float = TEST_FRACTION,
    min_test: int = MIN_TEST,
    max_test: int = MAX_TEST,
    hp_samples: int | None = HP_SAMPLES,
    seed: int = SEED,
) -> str:
    """The split rule in one sentence, for plans and reports."""
    rule = f"test = {test_fraction:.0%} of samples (min {min_test}, max {max_test:,}, train kept >= {MIN_SAMPLES})"
    if hp_samples is not None:
        rule += f"; HP tuning on {hp_samples:,} train samples when train is larger"
    return rule + f"; seed {seed}"


@dataclass(frozen=True)
class SplitRule:
    """How a dataset is split (the defaults are the rule in this module's docstring)."""

    test_fraction: float = TEST_FRACTION
    min_test: int = MIN_TEST
    max_test: int = MAX_TEST
    hp_samples: int | None = HP_SAMPLES
    seed: int = SEED

    def sizes(self, n: int) -> tuple[int, int, int]:
        return split_sizes(
            n, test_fraction=self.test_fraction, min_test=self.min_test, max_test=self.max_test, hp_samples=self.hp_samples
        )

    def sentence(self) -> str:
        return split_rule(self.test_fraction, self.min_test, self.max_test, self.hp_samples, self.seed)


def split_dataset(src: str | Path, *, out_dir: str | Path, rule: SplitRule = SplitRule()) -> SplitResult:
    """Write train.jsonl, test.jsonl and (when subsampled) hp_train.jsonl into ``out_dir``.

    Every non-blank line is one sample and is copied byte for byte (line ends become
    "\\n"); no line lands in both train and test.
    """
    src_p, out = Path(src), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with src_p.open("rb") as f:
        n = sum(1 for _ in _samples(f))
    train_n, test_n, hp_n = rule.sizes(n)
    test_idx = _pick(test_n, n, rule.seed, b"test")
    subsample = hp_n < train_n
    hp_pos = _pick(hp_n, train_n, rule.seed, b"hp") if subsample else set()
    paths = {name: out / f"{name}.jsonl" for name in ("train", "test", "hp_train")}
    names = ("train", "test", "hp_train") if subsample else ("train", "test")
    # Each file is written beside its final name and renamed only when all are complete,
    # so a crash leaves no plausible split behind.
    with contextlib.ExitStack() as stack:
        files = {name: stack.enter_context(stack.enter_context(atomic_output(paths[name])).open("wb")) for name in names}
        with src_p.open("rb") as f:
            train_pos = 0
            for i, line in enumerate(_samples(f)):
                if i in test_idx:
                    files["test"].write(line)
                    continue
                files["train"].write(line)
                if train_pos in hp_pos:
                    files["hp_train"].write(line)
                train_pos += 1
    if not subsample:
        paths["hp_train"].unlink(missing_ok=True)  # a stale one from an earlier split
    return SplitResult(
        src=str(src_p),
        train_path=str(paths["train"]),
        test_path=str(paths["test"]),
        hp_train_path=str(paths["hp_train"] if subsample else paths["train"]),
        hp_subsampled=subsample,
        samples=n,
        train=train_n,
        test=test_n,
        hp_train=hp_n,
        seed=rule.seed,
        rule=rule.sentence(),
    )


def _pick(k: int, n: int, seed: int, purpose: bytes) -> set[int]:
    """The ``k`` indices in range(n) with the smallest keyed hash: a seeded sample, O(k) memory."""
    if k <= 0:
        return set()
    if k >= n:
        return set(range(n))
    key = f"{seed}:".encode() + purpose

    def rank(i: int) -> bytes:
        return hashlib.blake2b(i.to_bytes(8, "little"), digest_size=8, key=key).digest()

    return set(heapq.nsmallest(k, range(n), key=rank))


def _samples(f: BinaryIO) -> Iterator[bytes]:
    """Non-blank lines of ``f``, each ending in exactly one b"\\n"."""
    for block in line_blocks(f):
        for raw in block.split(b"\n"):
            raw = raw.rstrip(b"\r")
            if raw.strip(_BLANK):
                yield raw + b"\n"


def line_blocks(f: BinaryIO, size: int | None = None) -> Iterator[bytes]:
    """Yield the next ``size`` bytes of ``f`` (default: all) as runs of whole lines.

    Each run is lines joined by b"\\n" without the last one, so ``run.split(b"\\n")``
    gives exactly its lines; reading in big blocks is several times faster than
    iterating a file line by line, and memory is bounded by the block or longest line.
    """
    left = -1 if size is None else size
    pending: list[bytes] = []  # the start of a line that continues into the next read
    while left != 0 and (chunk := f.read(_BLOCK if left < 0 else min(_BLOCK, left))):
        if left > 0:
            left -= len(chunk)
        cut = chunk.rfind(b"\n")
        if cut < 0:
            pending.append(chunk)
            continue
        pending.append(chunk[:cut])
        yield pending[0] if len(pending) == 1 else b"".join(pending)
        pending = [chunk[cut + 1 :]]
    tail = b"".join(pending)
    if tail:
        yield tail
