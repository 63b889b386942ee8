"""The wheel carries templates, migrations and data files: the bot works from `pip install .`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_templates_migrations_and_data(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    wheel = next(tmp_path.glob("sftbot-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "templates/final_report.md.j2",
        "pipeline/store/migrations/001_init.sql",
        "pipeline/data/prices.json",
        "pipeline/data/models.json",
        "pipeline/data/demo_contacts.jsonl",
        "bot/cli.py",
        "handlers/__init__.py",
    ):
        assert required in names, required
    assert not any(n.startswith("tests/") for n in names)
    # Every module of every package: a package missing from pyproject's list breaks `pip install .`.
    for package in ("bot", "handlers", "pipeline", "templates"):
        for module in (ROOT / package).rglob("*.py"):
            if "__pycache__" not in module.parts:
                assert str(module.relative_to(ROOT)) in names, module
