"""Fixtures of the pipeline's tests: the fake Fireworks and platforms pointed at it."""

from tests.pipeline.fireworks_support import fake, make_platform, platform  # noqa: F401  (fixtures)
