"""A stateful fake of the Slack Web API (and a Socket Mode endpoint) over real HTTP on 127.0.0.1.

The bot's real ``AsyncWebClient`` talks to it through ``base_url`` (SLACK_API_URL), exactly
as in production. It keeps channels, threads, edits, ephemerals, views, uploads and every
call; it enforces the server-side rules the bot must respect (``thread_ts`` must be a
parent, at most 50 blocks, text or blocks required, trigger ids work once) and injects
429 (with Retry-After) and 5xx at a configurable rate.

    async with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)
        ...
        slack.thread("C1", root_ts)      # what a person sees in the thread, after edits
        slack.ephemerals("U1")           # ephemerals + response_url replies to one person
        slack.uploads()                  # files with filename, channel, thread_ts, bytes
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from bot.slack_scopes import MANIFEST_BOT_SCOPES

from .methods import WebApiMethods
from .state import JSON, Msg, Upload, render


class FakeSlack(WebApiMethods):
    """The fake server; start it with ``async with`` (binds an ephemeral port)."""

    def __init__(self, *, bot_token: str = "xoxb-test-token", app_token: str = "xapp-test-token", seed: int = 7) -> None:
        self.bot_token, self.app_token = bot_token, app_token
        self.rng = random.Random(seed)
        self.rate_429 = 0.0
        self.rate_5xx = 0.0
        self.retry_after = 0
        self.refuse_sockets = False  # WebSocket upgrades refused (a proxy in the way): Socket Mode cannot connect
        self.fail_next: deque[tuple[str | None, int]] = deque()  # (method or None for any, status)
        self.messages: dict[str, list[Msg]] = {}
        self.ephemeral: list[JSON] = []
        self.views: dict[str, JSON] = {}
        self.home: dict[str, JSON] = {}
        self.files: dict[str, JSON] = {}
        self._uploads: list[Upload] = []
        self.calls: list[JSON] = []
        self.injected = 0
        self.used_triggers: set[str] = set()
        self.users: dict[str, JSON] = {}
        self.groups: dict[str, list[str]] = {}
        # Channel membership (conversations.members): channels set here have exactly these
        # members; other channels have everyone in ``workspace``; a DM its person and the bot.
        self.channel_members: dict[str, list[str]] = {}
        self.workspace: list[str] = ["U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0ERIN", "U0MALLORY", "U0X", "UBOT"]
        self.responses: dict[str, JSON] = {}
        # The bot token's scopes, sent as every Web API answer's x-oauth-scopes header
        # (https://docs.slack.dev/authentication/tokens: "the x-oauth-scopes HTTP header lists the
        # scopes a token has"); by default the ones manifest.yml asks for.
        self.granted_scopes: list[str] = list(MANIFEST_BOT_SCOPES)
        self.bot_channels: set[str] | None = None  # channels the bot is a member of (None: all)
        self.acks: dict[str, JSON] = {}
        self._ws: list[web.WebSocketResponse] = []
        self._ids = itertools.count(1)
        self._ts_base = int(time.time())
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlack:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        app.router.add_post("/response/{rid}", self._response)
        app.router.add_get("/link", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in self._ws:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/"

    # --- helpers for tests ---------------------------------------------------------------

    def response_url(self, user: str, channel: str) -> str:
        """A response_url for a payload; what is posted to it counts as that user's ephemeral."""
        rid = f"R{next(self._ids)}"
        self.responses[rid] = {"user": user, "channel": channel}
        return f"{self.url}/response/{rid}"

    def user_says(self, channel: str, text: str, *, user: str, thread_ts: str | None = None) -> JSON:
        """A person's message (as Slack stores it before sending the event); returns its event."""
        msg = Msg(channel=channel, ts=self._new_ts(), text=text, thread_ts=thread_ts, user=user, bot_id=None)
        self.messages.setdefault(channel, []).append(msg)
        event: JSON = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": msg.ts,
            "channel": channel,
            "event_ts": msg.ts,
            "channel_type": "im" if channel.startswith("D") else "channel",
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return event

    def user_shares_file(
        self, channel: str, filename: str, data: bytes, *, user: str, thread_ts: str | None = None, text: str = ""
    ) -> JSON:
        """A person attaches a file (in a thread): stored for files.info and download; returns the
        ``message``/``file_share`` event. Like Slack's newer events, its file carries only the id,
        the name and ``file_access: check_file_info`` (details need files.info)."""
        file_id = f"F{next(self._ids)}"
        self.files[file_id] = {"filename": filename, "length": len(data), "data": data, "user": user}
        ref = {"id": file_id, "name": filename, "file_access": "check_file_info"}
        msg = Msg(channel=channel, ts=self._new_ts(), text=text, thread_ts=thread_ts, user=user, bot_id=None, files=[ref])
        self.messages.setdefault(channel, []).append(msg)
        event: JSON = {
            "type": "message",
            "subtype": "file_share",
            "user": user,
            "text": text,
            "ts": msg.ts,
            "channel": channel,
            "event_ts": msg.ts,
            "channel_type": "im" if channel.startswith("D") else "channel",
            "files": [ref],
            "upload": False,
            "display_as_bot": False,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return event

    def thread(self, channel: str, ts: str) -> list[JSON]:
        """The root and its replies, oldest first, as they look now (after edits)."""
        msgs = [m for m in self.messages.get(channel, []) if m.ts == ts or m.thread_ts == ts]
        return [m.view() for m in sorted(msgs, key=lambda m: float(m.ts))]

    def roots(self, channel: str) -> list[JSON]:
        return [m.view() for m in self.messages.get(channel, []) if m.thread_ts is None]

    def ephemerals(self, user: str) -> list[JSON]:
        return [e for e in self.ephemeral if e["user"] == user]

    def uploads(self) -> list[Upload]:
        return list(self._uploads)

    def calls_to(self, method: str) -> list[JSON]:
        return [c for c in self.calls if c["method"] == method]

    async def wait_for(self, pred: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Await a condition on the fake's state (re-checked after every call it serves)."""

        async def check() -> Any:
            async with self._changed:
                while not (result := pred()):
                    await self._changed.wait()
                return result

        return await asyncio.wait_for(check(), timeout)

    async def _touch(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- Web API -------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args: JSON = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        elif request.method == "POST":
            args.update(dict(await request.post()))
        for key in ("blocks", "files", "view", "attachments"):
            if isinstance(args.get(key), str):
                try:
                    args[key] = json.loads(args[key])
                except ValueError:
                    pass
        auth = request.headers.get("Authorization", "")
        call: JSON = {"method": method, "args": args, "at": time.monotonic(), "status": 200}
        self.calls.append(call)
        try:
            fault = self._fault(method)
            if fault is not None:
                call["status"] = fault.status
                return fault
            want = self.app_token if method == "apps.connections.open" else self.bot_token
            if auth != f"Bearer {want}":
                return self._err("invalid_auth")
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            if handler is None:
                return self._err("unknown_method")
            body = handler(args)
            call["response"] = body
            return web.json_response(body, headers={"x-oauth-scopes": ",".join(self.granted_scopes)})
        finally:
            await self._touch()

    def _fault(self, method: str) -> web.Response | None:
        status = None
        if self.fail_next and self.fail_next[0][0] in (None, method):
            status = self.fail_next.popleft()[1]
        elif method != "auth.test" and self.rng.random() < self.rate_429:
            status = 429
        elif method != "auth.test" and self.rng.random() < self.rate_5xx:
            status = 503
        if status is None:
            return None
        self.injected += 1
        if status == 429:
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(self.retry_after)}
            )
        return web.Response(status=status, text="<html>upstream error</html>", content_type="text/html")

    # --- response_url and Socket Mode ------------------------------------------------------

    async def _response(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        origin = self.responses.get(rid)
        if origin is None:
            return web.Response(status=404, text="no_service")
        body = await request.json()
        self.calls.append({"method": "response_url", "args": body, "at": time.monotonic(), "status": 200})
        if body.get("response_type") == "in_channel":
            self._m_chat_postMessage({"channel": origin["channel"], "text": body.get("text"), "blocks": body.get("blocks")})
        else:
            self.ephemeral.append(
                {
                    "user": origin["user"],
                    "channel": origin["channel"],
                    "text": body.get("text") or "",
                    "blocks": body.get("blocks") or [],
                    "via": "response_url",
                    "replace_original": body.get("replace_original"),
                    "delete_original": body.get("delete_original"),
                    "rendered": render(str(body.get("text") or ""), list(body.get("blocks") or [])),
                }
            )
        await self._touch()
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_sockets:
            self.calls.append({"method": "socket_refused", "args": {}, "at": time.monotonic(), "status": 403})
            await self._touch()
            return web.Response(status=403, text="WebSocket upgrades are not allowed here")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._ws.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A111"}})
        await self._touch()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                data = json.loads(msg.data)
                if "envelope_id" in data:
                    self.acks[data["envelope_id"]] = data
                    await self._touch()
        return ws

    async def socket_send(self, envelope: JSON) -> None:
        await self.wait_for(lambda: any(not ws.closed for ws in self._ws))
        ws = next(ws for ws in reversed(self._ws) if not ws.closed)
        await ws.send_json(envelope)
