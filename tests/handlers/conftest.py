"""Fixtures of the Slack tests: the fake Slack Web API and bots wired to it."""

from tests.handlers.slack_support import bot_factory, fake_slack  # noqa: F401  (fixtures)
