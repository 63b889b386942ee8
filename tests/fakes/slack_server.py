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
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest_asyncio
from aiohttp import WSMsgType, web

JSON = dict[str, Any]


@dataclass
class Msg:
    channel: str
    ts: str
    text: str = ""
    blocks: list[JSON] = field(default_factory=list)
    thread_ts: str | None = None
    user: str = "UBOT"
    bot_id: str | None = "BBOT"
    files: list[JSON] = field(default_factory=list)
    edits: int = 0

    def view(self) -> JSON:
        return {
            "ts": self.ts,
            "text": self.text,
            "blocks": self.blocks,
            "files": self.files,
            "edits": self.edits,
            "user": self.user,
            "thread_ts": self.thread_ts,
            "rendered": render(self.text, self.blocks),
        }


@dataclass
class Upload:
    file_id: str
    filename: str
    title: str
    channel: str | None
    thread_ts: str | None
    data: bytes


def render(text: str, blocks: list[JSON]) -> str:
    """The visible text of a message: every block's text, fields, buttons and options."""
    if not blocks:
        return text
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and "text" in node:
                out.append(str(node["text"]))
                return
            for key in ("text", "fields", "elements", "accessory", "options", "placeholder", "label", "element"):
                if key in node:
                    walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return "\n".join(out)


class FakeSlack:
    """The fake server; start it with ``async with`` (binds an ephemeral port)."""

    def __init__(self, *, bot_token: str = "xoxb-test-token", app_token: str = "xapp-test-token", seed: int = 7) -> None:
        self.bot_token, self.app_token = bot_token, app_token
        self.rng = random.Random(seed)
        self.rate_429 = 0.0
        self.rate_5xx = 0.0
        self.retry_after = 0
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
        self.responses: dict[str, JSON] = {}
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
            return web.json_response(body)
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

    @staticmethod
    def _err(error: str, **extra: Any) -> web.Response:
        return web.json_response({"ok": False, "error": error, **extra})

    def _new_ts(self) -> str:
        n = next(self._ids)
        return f"{self._ts_base + n}.{n:06d}"

    def _find(self, channel: str, ts: str) -> Msg | None:
        return next((m for m in self.messages.get(channel, []) if m.ts == ts), None)

    @staticmethod
    def _check_blocks(args: JSON, limit: int = 50) -> JSON | None:
        blocks = args.get("blocks")
        if blocks is not None and (not isinstance(blocks, list) or len(blocks) > limit or any("type" not in b for b in blocks)):
            return {"ok": False, "error": "invalid_blocks"}
        return None

    def _m_auth_test(self, args: JSON) -> JSON:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "sftbot",
            "team_id": "T111",
            "user_id": "UBOT",
            "bot_id": "BBOT",
            "is_enterprise_install": False,
        }

    def _m_apps_connections_open(self, args: JSON) -> JSON:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link"}

    def _m_chat_postMessage(self, args: JSON) -> JSON:
        channel = str(args.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel.startswith("U"):
            channel = "D" + channel[1:]  # posting to a user id opens the DM
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if bad := self._check_blocks(args):
            return bad
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None:
            parent = self._find(channel, str(thread_ts))
            if parent is None or parent.thread_ts is not None:
                return {"ok": False, "error": "thread_not_found"}
        msg = Msg(
            channel=channel,
            ts=self._new_ts(),
            text=str(args.get("text") or ""),
            blocks=list(args.get("blocks") or []),
            thread_ts=str(thread_ts) if thread_ts else None,
        )
        self.messages.setdefault(channel, []).append(msg)
        return {"ok": True, "channel": channel, "ts": msg.ts, "message": msg.view()}

    def _m_chat_update(self, args: JSON) -> JSON:
        msg = self._find(str(args.get("channel")), str(args.get("ts")))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if msg.bot_id != "BBOT":
            return {"ok": False, "error": "cant_update_message"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if bad := self._check_blocks(args):
            return bad
        if "blocks" in args:
            msg.blocks = list(args["blocks"] or [])
        elif args.get("text"):
            msg.blocks = []  # Slack drops the blocks when an update sends only text
        if args.get("text"):
            msg.text = str(args["text"])
        msg.edits += 1
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "text": msg.text}

    def _m_chat_postEphemeral(self, args: JSON) -> JSON:
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if bad := self._check_blocks(args):
            return bad
        self.ephemeral.append(
            {
                "user": args.get("user"),
                "channel": args.get("channel"),
                "text": args.get("text") or "",
                "blocks": args.get("blocks") or [],
                "thread_ts": args.get("thread_ts"),
                "via": "postEphemeral",
                "rendered": render(str(args.get("text") or ""), list(args.get("blocks") or [])),
            }
        )
        return {"ok": True, "message_ts": self._new_ts()}

    def _m_views_open(self, args: JSON) -> JSON:
        trigger = str(args.get("trigger_id") or "")
        if not trigger or trigger in self.used_triggers:
            return {"ok": False, "error": "expired_trigger_id"}
        self.used_triggers.add(trigger)
        view = args.get("view")
        if not isinstance(view, dict) or len(view.get("blocks") or []) > 100 or len(view.get("title", {}).get("text", "")) > 24:
            return {"ok": False, "error": "invalid_arguments"}
        view_id = f"V{next(self._ids)}"
        self.views[view_id] = {**view, "id": view_id, "trigger_id": trigger}
        return {"ok": True, "view": self.views[view_id]}

    def _m_views_update(self, args: JSON) -> JSON:
        view_id = str(args.get("view_id") or "")
        if view_id not in self.views:
            return {"ok": False, "error": "not_found"}
        self.views[view_id] = {**args["view"], "id": view_id}
        return {"ok": True, "view": self.views[view_id]}

    def _m_views_publish(self, args: JSON) -> JSON:
        view = args.get("view")
        if not isinstance(view, dict) or view.get("type") != "home" or len(view.get("blocks") or []) > 100:
            return {"ok": False, "error": "invalid_arguments"}
        self.home[str(args.get("user_id"))] = view
        return {"ok": True, "view": {**view, "id": f"VH{args.get('user_id')}"}}

    def _m_files_getUploadURLExternal(self, args: JSON) -> JSON:
        file_id = f"F{next(self._ids)}"
        self.files[file_id] = {"filename": args.get("filename"), "length": int(args.get("length") or 0), "data": None}
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.files:
            return web.Response(status=404, text="not found")
        reader = await request.post() if request.content_type.startswith("multipart/") else None
        if reader is not None:
            part = next(iter(reader.values()))
            data = part.file.read() if hasattr(part, "file") else str(part).encode()
        else:
            data = await request.read()
        self.files[file_id]["data"] = data
        await self._touch()
        return web.Response(text=f"OK - {len(data)}")

    def _m_files_completeUploadExternal(self, args: JSON) -> JSON:
        channel = args.get("channel_id") or (str(args.get("channels") or "").split(",")[0] or None)
        thread_ts = args.get("thread_ts") or None
        if channel and thread_ts:
            parent = self._find(str(channel), str(thread_ts))
            if parent is None or parent.thread_ts is not None:
                return {"ok": False, "error": "invalid_thread_ts"}
        out = []
        for f in args.get("files") or []:
            meta = self.files.get(f.get("id"))
            if meta is None or meta["data"] is None:
                return {"ok": False, "error": "file_not_found"}
            up = Upload(f["id"], meta["filename"], f.get("title") or meta["filename"], channel, thread_ts, meta["data"])
            self._uploads.append(up)
            out.append({"id": up.file_id, "name": up.filename, "title": up.title})
            if channel:
                self.messages.setdefault(str(channel), []).append(
                    Msg(
                        channel=str(channel),
                        ts=self._new_ts(),
                        text=str(args.get("initial_comment") or ""),
                        thread_ts=thread_ts,
                        files=[{"id": up.file_id, "name": up.filename, "title": up.title}],
                    )
                )
        return {"ok": True, "files": out}

    def _m_files_info(self, args: JSON) -> JSON:
        file_id = str(args.get("file") or "")
        meta = self.files.get(file_id)
        if meta is None or meta.get("data") is None:
            return {"ok": False, "error": "file_not_found"}
        name = str(meta["filename"])
        url = f"{self.url}/files-pri/{file_id}/{quote(name, safe='')}"
        return {
            "ok": True,
            "file": {
                "id": file_id,
                "name": name,
                "title": name,
                "size": len(meta["data"]),
                "mimetype": "text/x-python" if name.endswith(".py") else "application/octet-stream",
                "filetype": "python" if name.endswith(".py") else "binary",
                "mode": "hosted",
                "user": meta.get("user"),
                "url_private": url,
                "url_private_download": f"{url}?download=1",
            },
        }

    async def _download(self, request: web.Request) -> web.Response:
        """url_private_download: the bytes with the bot token; without it, Slack's login redirect."""
        file_id = request.match_info["file_id"]
        auth = request.headers.get("Authorization", "")
        ok = auth == f"Bearer {self.bot_token}"
        self.calls.append(
            {"method": "files.download", "args": {"file": file_id}, "at": time.monotonic(), "status": 200 if ok else 302}
        )
        try:
            meta = self.files.get(file_id)
            if not ok:
                return web.Response(status=302, headers={"Location": f"{self.url}/login"})
            if meta is None or meta.get("data") is None:
                return web.Response(status=404, text="not found")
            return web.Response(body=meta["data"], content_type="application/octet-stream")
        finally:
            await self._touch()

    def _m_users_info(self, args: JSON) -> JSON:
        uid = str(args.get("user") or "")
        user = self.users.get(uid) or {
            "id": uid,
            "name": uid.lower(),
            "real_name": f"User {uid}",
            "profile": {"display_name": uid.lower()},
        }
        return {"ok": True, "user": user}

    def _m_usergroups_users_list(self, args: JSON) -> JSON:
        group = str(args.get("usergroup") or "")
        if group not in self.groups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": self.groups[group]}

    def _m_conversations_info(self, args: JSON) -> JSON:
        cid = str(args.get("channel") or "")
        return {"ok": True, "channel": {"id": cid, "name": cid.lower(), "is_im": cid.startswith("D"), "is_member": True}}

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

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
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


@pytest_asyncio.fixture
async def fake_slack() -> Any:
    async with FakeSlack() as slack:
        yield slack
