"""`sftbot serve` checks its Slack tokens before it starts anything.

auth.test with the bot token (any token may call it: https://docs.slack.dev/reference/methods/auth.test)
and, in Socket Mode, apps.connections.open with the app-level token (the one call that needs
it: https://docs.slack.dev/reference/methods/apps.connections.open). A refused token ends
the start-up with one line naming the variable and where the right token is found; a token
of the other kind (the two are easily swapped) is named before any call, by its documented
prefix (xoxb- bot, xapp- app-level: https://docs.slack.dev/authentication/tokens). Slack
unreachable is not a wrong token: the call is tried again with back-off, one log line each
time, until it answers or the bot is stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings, SettingsError
from bot.stopping import unless

log = logging.getLogger("sftbot.serve")

# Errors that mean this token will not work however often it is tried.
REFUSED = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "not_allowed_token_type"}
BOT_FIX = "use the Bot User OAuth Token (xoxb-...) from your Slack app's OAuth & Permissions page"
APP_FIX = (
    "use an app-level token (xapp-...) with the connections:write scope, from your Slack app's "
    "Basic Information > App-Level Tokens"
)
MAX_BACKOFF = 60.0


class TokenRefused(SettingsError):
    """A Slack token is wrong; the message names which one and the fix (never its value)."""


def swapped(bot: str, app: str | None) -> str | None:
    """The one line for tokens in each other's place (or a token of the wrong kind), else None."""
    if bot.startswith("xapp-") and app is not None and app.startswith("xoxb-"):
        return "SLACK_BOT_TOKEN and SLACK_APP_TOKEN are swapped: the bot token starts with xoxb-, the app-level token with xapp-"
    if bot.startswith("xapp-"):
        return f"SLACK_BOT_TOKEN holds an app-level token (xapp-...): {BOT_FIX}"
    if app is not None and app.startswith("xoxb-"):
        return f"SLACK_APP_TOKEN holds a bot token (xoxb-...): {APP_FIX}"
    return None


async def check_tokens(settings: Settings, stop: asyncio.Event) -> bool:
    """Check the tokens serve needs; False when the bot was stopped before Slack answered.
    Raises TokenRefused with the line to print."""
    assert settings.slack_bot_token is not None
    bot = settings.slack_bot_token.get_secret_value()
    app = settings.slack_app_token.get_secret_value() if settings.slack_app_token and settings.mode == "socket" else None
    if (problem := swapped(bot, app)) is not None:
        raise TokenRefused(problem)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        client = AsyncWebClient(token=bot, base_url=settings.slack_api_url or AsyncWebClient.BASE_URL, session=session)
        who = await _answer(lambda: client.auth_test(), "SLACK_BOT_TOKEN", BOT_FIX, stop)
        if who is None:
            return False
        log.info("Slack: bot token accepted (@%s in %s, team %s)", who.get("user"), who.get("team"), who.get("team_id"))
        if app is None:
            return True
        opened = await _answer(lambda: client.apps_connections_open(app_token=app), "SLACK_APP_TOKEN", APP_FIX, stop)
        if opened is None:
            return False
        log.info("Slack: app-level token accepted (Socket Mode can connect)")
        return True


async def _answer(call: Callable[[], Awaitable[Any]], variable: str, fix: str, stop: asyncio.Event) -> dict[str, Any] | None:
    """The call's data once Slack answers; None when stopped first. A refusal raises."""
    delay = 1.0
    while not stop.is_set():
        try:
            response = await unless(stop, call())
        except SlackApiError as exc:
            code = str(exc.response.get("error", "unknown_error"))
            if code in REFUSED:
                raise TokenRefused(f"{variable} was refused by Slack ({code}): {fix}") from None
            if code != "ratelimited":
                raise TokenRefused(f"Slack answered {code} to the check of {variable}: {fix}") from None
            problem = "Slack is rate limiting this app"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            problem = f"Slack is unreachable ({type(exc).__name__}: {exc or 'no answer'})"
        else:
            return None if response is None else dict(response.data)
        log.warning("%s; checking %s again in %.0f s", problem, variable, delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return None
        except TimeoutError:
            delay = min(delay * 2, MAX_BACKOFF)
    return None
