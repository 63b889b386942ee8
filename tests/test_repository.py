"""The repository stands on its own: a clone with nothing beside it has everything it needs."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Built from parts so this file does not match itself.
SIBLING = ".." + "/" + "shared"
PARENT_SHARED = "parents[2] / " + '"shared"'


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_nothing_refers_to_a_folder_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary files cannot name a path we would follow
        if SIBLING in text or PARENT_SHARED in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
