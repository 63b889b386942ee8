"""Where the tests' data is: everything the tests read lives in the repository (tests/data/,
each folder with its source and licence), so a clone with nothing beside it must pass."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
DATASETS = DATA / "datasets"
MANIFEST_SCHEMA = DATA / "slack-manifest-schema" / "manifest.schema.1.0.0.json"
TEXT2SQL = DATASETS / "text2sql_dataset.jsonl"
RUN = f"run dataset={TEXT2SQL} model=qwen3-8b"
