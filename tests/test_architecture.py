"""The shape of the code: import-linter enforces the layers (contracts in pyproject.toml, run by
``.ci/check`` as ``lint-imports``); this checks what a contract cannot say about itself: that
every folder of the core is one of its layers, so a new package cannot sit outside them."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_ONLY = {"pipeline.data"}  # JSON shipped with the code: imports nothing, imported by nothing


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["importlinter"]["contracts"])


def layered_modules() -> set[str]:
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    return {name.strip() for layer in layers["layers"] for name in str(layer).split("|")}  # type: ignore[attr-defined]


def test_every_package_of_the_core_is_a_layer() -> None:
    packages = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "pipeline").glob("*/__init__.py")}
    assert packages - DATA_ONLY - layered_modules() == set()
    assert {"bot", "handlers", "templates"} <= layered_modules()
