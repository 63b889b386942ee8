"""Files on disk: written so that a reader (or a restarted bot) never sees half of one, and
JSONL read the lenient way every best-effort reader here wants.

The one tmp-then-rename helper of the project: a sibling temporary file in the same folder
(same filesystem, so ``os.replace`` is atomic), removed again when the write fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_output(dest: Path) -> Iterator[Path]:
    """A temporary path beside ``dest``; renamed over ``dest`` when the block succeeds.

    For writers that stream (a split, a download, a conversion) or produce a folder.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` in one step (text is UTF-8)."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def copy_atomic(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` in one step (never a half-copied file at ``dest``)."""
    with atomic_output(dest) as tmp:
        shutil.copyfile(src, tmp)


def json_lines(path: Path, *, lines: int | None = None) -> Iterator[Any]:
    """The JSON values of a JSONL file's first ``lines`` lines (all when None), for readers that
    take what they can: a line that is not JSON is passed over, bytes that are not UTF-8 are
    replaced, and a missing file yields nothing."""
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in itertools.islice(fh, lines):
            try:
                yield json.loads(line)
            except ValueError:
                continue
