"""`bash .ci/check` on a machine set up by the quick start (`bash .ci/setup`, no dev tools) says
what is missing and how to get it, instead of failing on the first import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def check_in(folder: Path) -> subprocess.CompletedProcess[str]:
    (folder / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "check", folder / ".ci" / "check")
    return subprocess.run(["bash", str(folder / ".ci" / "check")], capture_output=True, text=True, timeout=60)


def test_without_the_dev_tools_check_names_them_and_the_setup_that_adds_them(tmp_path: Path) -> None:
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    # This venv's interpreter without its site-packages: Python is there, the tools are not.
    python.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n', encoding="utf-8")
    python.chmod(0o755)
    done = check_in(tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "ruff, mypy, import-linter, pytest, pytest-asyncio, hypothesis not installed: run `bash .ci/setup --dev` "
        "(the dev tools; `bash .ci/setup` leaves them out)"
    )


def test_without_a_venv_check_says_to_set_up_first(tmp_path: Path) -> None:
    done = check_in(tmp_path)
    assert done.returncode == 2 and "run `bash .ci/setup --dev` first" in done.stderr
