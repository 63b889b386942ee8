"""The platform's dataset size limits, in a module that imports nothing: the inspector (and so
`sftbot inspect`, which must start in a blink) needs them without loading the run spec's
pydantic models."""

from __future__ import annotations

MIN_SAMPLES = 3  # the platform's minimum dataset size (reference/fireworks.md §2.1)
MAX_SAMPLES = 3_000_000
