"""Fakes of the services sftbot talks to, and drivers for the real app on them: the one place
that both ``tests/`` and ``bench/`` import them from.

- ``slack``: a stateful fake of the Slack Web API (and Socket Mode) over real HTTP;
  ``slack_app``: correctly signed requests from recorded payloads, dispatched to the real Bolt
  app, and ``make_bot`` (the real app on a real runner, wired to the fake Slack).
- ``fireworks``: a stateful fake of the Fireworks REST API, driven through the real SDK.
- ``memory_platform``: an in-memory platform for runs that need no HTTP at all.
- ``runs``: an event log to await runner events on, and a driver that decides every gate.

Why here and not in ``tests/``: ``bench/`` drives the same fakes, and product or bench code
must not import ``tests`` (an import-linter contract). Why in ``bot/``: the Slack fake and the
app driver wire Slack to the engine, which only the composition root may do; ``pipeline``
stays free of Slack. Nothing here is imported by the running bot.
"""
