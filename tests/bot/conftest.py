"""Fixtures of the composition root's tests: the Slack and Fireworks fakes (the CLI and the
app drive both) and the local demo, run once per session."""

from __future__ import annotations

import pytest

from tests.handlers.slack_support import bot_factory, fake_slack  # noqa: F401  (fixtures)
from tests.pipeline.fireworks_support import fake, make_platform, platform  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def local_demo_run(tmp_path_factory: pytest.TempPathFactory) -> object:
    """`sftbot demo --yes` end to end on the tiny model, run once for the session and then
    exited (engine, platform and endpoint closed): what the local-platform tests pick up after."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from tests.bot.local_demo import run_tiny_demo

    return run_tiny_demo(tmp_path_factory.mktemp("local-demo"))
