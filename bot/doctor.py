"""`sftbot doctor`: the first contact with a real account, in tiers the user chooses.

- free (default): reads and ``validateOnly`` creates on Fireworks (pipeline/platforms/fireworks/
  probes.py) and the Slack half: auth.test, the token's scopes against manifest.yml, a Socket
  Mode connection, the bot's membership in SFTBOT_CHANNELS, user groups readable.
- cents and GPU minutes: asked first, naming the amount (see ``TIERS``).

Every check says what sftbot assumes, what was observed and what sftbot will do. The results are
saved as ``<data dir>/doctor.json`` and read back by the bot: a base whose addon deployments the
account refuses is evaluated by live merge from then on (``live_merge_bases``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from bot.slack_scopes import MANIFEST_BOT_SCOPES
from bot.slack_tokens import APP_FIX, BOT_FIX, swapped
from pipeline.domain.checks import Check

log = logging.getLogger("sftbot.doctor")
DEFAULT_BASE = "qwen3-8b"  # probed when no run has named a base yet

# What each paid tier does and costs, said before it is asked for (prices: pipeline/data/prices.json).
TIERS = {
    "free": "reads and validateOnly creates only: nothing is billed",
    "cents": (
        "one 20-row LoRA SFT job on the smallest tunable base (llama-v3p2-3b-instruct at Tier 1, qwen3-0p6b from "
        "Tier 2) and the cancel of a second pending job: under $0.01 of training tokens at $0.50 per million"
    ),
    "gpu": (
        "one multi-LoRA deployment with one adapter, a live-merge deployment of it, scale to zero, delete and one "
        "hosted evaluation job, all torn down: about 30 GPU-minutes on 1 x H100, about $4 at $8 per GPU-hour"
    ),
}


async def free_tier(settings: Settings, bases: Sequence[str]) -> list[Check]:
    return [*await fireworks_checks(settings, bases), *await slack_checks(settings)]


async def fireworks_checks(settings: Settings, bases: Sequence[str]) -> list[Check]:
    if not (settings.fireworks_api_key and settings.fireworks_account_id):
        return [
            _skipped("fireworks", "account", "FIREWORKS_API_KEY and FIREWORKS_ACCOUNT_ID are not set: runs train on this machine")
        ]
    from bot.engine import make_platform
    from pipeline.platforms.fireworks.platform import FireworksPlatform

    platform = make_platform(settings, "fireworks")
    assert isinstance(platform, FireworksPlatform)
    try:
        return await platform.probes().run(list(bases) or [DEFAULT_BASE])
    finally:
        await platform.close()


async def slack_checks(settings: Settings) -> list[Check]:
    if settings.slack_bot_token is None:
        return [_skipped("slack", "bot token", "SLACK_BOT_TOKEN is not set: the terminal commands work without Slack")]
    bot = settings.slack_bot_token.get_secret_value()
    app = settings.slack_app_token.get_secret_value() if settings.slack_app_token and settings.mode == "socket" else None
    if (problem := swapped(bot, app)) is not None:
        return [_failed("slack", "tokens", "SLACK_BOT_TOKEN is a bot token and SLACK_APP_TOKEN an app-level one", problem)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        client = AsyncWebClient(token=bot, base_url=settings.slack_api_url or AsyncWebClient.BASE_URL, session=session)
        try:
            who = await client.auth_test()
        except SlackApiError as exc:
            code = exc.response.get("error")
            return [_failed("slack", "auth.test", "SLACK_BOT_TOKEN is this app's bot token", f"refused ({code}): {BOT_FIX}")]
        checks = [_auth(who.data), _scopes(who.headers.get("x-oauth-scopes") or who.headers.get("X-OAuth-Scopes"))]
        checks.append(await _socket_mode(client, session, app))
        checks += [await _membership(client, channel) for channel in settings.channels] or [
            _skipped("slack", "channels", "SFTBOT_CHANNELS is not set: the bot answers in every channel it is in")
        ]
        checks.append(await _usergroups(client))
    return checks


def _auth(data: Any) -> Check:
    return Check(
        area="slack",
        name="auth.test",
        assumption="SLACK_BOT_TOKEN is this app's bot token",
        observed=f"accepted: @{data.get('user')} in {data.get('team')} ({data.get('team_id')})",
        action="posts as this bot user",
        ok=True,
    )


def _scopes(header: str | None) -> Check:
    granted = {s.strip() for s in (header or "").split(",") if s.strip()}
    missing = [s for s in MANIFEST_BOT_SCOPES if s not in granted]
    return Check(
        area="slack",
        name="scopes",
        assumption="the token has every bot scope manifest.yml asks for",
        observed=f"missing: {', '.join(missing)}" if missing else f"all {len(MANIFEST_BOT_SCOPES)} granted",
        action="reinstall the app from manifest.yml to grant the missing scopes" if missing else "uses them as the manifest says",
        ok=not missing,
        facts={"missing": missing},
    )


async def _socket_mode(client: AsyncWebClient, session: aiohttp.ClientSession, app: str | None) -> Check:
    assumption = "SLACK_APP_TOKEN opens a Socket Mode connection (apps.connections.open, then a WebSocket)"
    if app is None:
        return _skipped("slack", "socket mode", "HTTP mode (or no SLACK_APP_TOKEN): Slack calls the bot's Request URL")
    try:
        opened = await client.apps_connections_open(app_token=app)
        async with session.ws_connect(str(opened["url"])) as ws:
            await ws.close()
    except SlackApiError as exc:
        return _failed("slack", "socket mode", assumption, f"refused ({exc.response.get('error')}): {APP_FIX}")
    except (aiohttp.ClientError, OSError) as exc:
        return _failed(
            "slack", "socket mode", assumption, f"the WebSocket did not open ({type(exc).__name__}): a proxy in the way?"
        )
    return Check(
        area="slack", name="socket mode", assumption=assumption, observed="connected", action="serves over Socket Mode", ok=True
    )


async def _membership(client: AsyncWebClient, channel: str) -> Check:
    assumption = f"the bot is a member of {channel} (SFTBOT_CHANNELS)"
    try:
        found = await client.conversations_info(channel=channel)
    except SlackApiError as exc:
        return _failed("slack", f"channel {channel}", assumption, f"conversations.info: {exc.response.get('error')}")
    member = bool((found.get("channel") or {}).get("is_member"))
    return Check(
        area="slack",
        name=f"channel {channel}",
        assumption=assumption,
        observed="member" if member else "not a member",
        action="answers runs there" if member else f"cannot post there: invite the bot (/invite @sftbot in {channel})",
        ok=member,
    )


async def _usergroups(client: AsyncWebClient) -> Check:
    assumption = "user groups are readable (SFTBOT_APPROVERS may name one, S...)"
    try:
        found = await client.usergroups_list()
    except SlackApiError as exc:
        return _failed("slack", "user groups", assumption, f"usergroups.list: {exc.response.get('error')}")
    groups = found.get("usergroups") or []
    return Check(
        area="slack", name="user groups", assumption=assumption, observed=f"{len(groups)} readable",
        action="resolves approver groups to their members", ok=True,
    )  # fmt: skip


def _skipped(area: str, name: str, why: str) -> Check:
    return Check(area=area, name=name, assumption="", observed=why, action="skips this check", ok=None)


def _failed(area: str, name: str, assumption: str, observed: str) -> Check:
    return Check(
        area=area, name=name, assumption=assumption, observed=observed, action="fix this, then run sftbot doctor again", ok=False
    )


def text(checks: Sequence[Check], path: Path) -> str:
    """What a person reads: each check as assumption -> observed -> what sftbot will do."""
    marks = {True: "ok  ", False: "FAIL", None: "--  "}
    lines = []
    for c in checks:
        lines.append(f"{marks[c.ok]} {c.area}: {c.name}")
        if c.assumption:
            lines.append(f"       assumed:  {c.assumption}")
        lines.append(f"       observed: {c.observed}")
        lines.append(f"       sftbot:   {c.action}")
    failed = sum(1 for c in checks if c.ok is False)
    lines.append(f"{failed} failed, {sum(1 for c in checks if c.ok)} ok; saved to {path}")
    return "\n".join(lines)
