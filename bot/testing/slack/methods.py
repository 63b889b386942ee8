"""The fake Slack's Web API methods (``_m_<method>``), each checked the way Slack checks it."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .state import JSON, Msg, Upload, render


class WebApiMethods:
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

    def _m_chat_getPermalink(self, args: JSON) -> JSON:
        """https://docs.slack.dev/reference/methods/chat.getPermalink: ``channel`` + ``message_ts`` ->
        ``permalink`` (``https://<team>.slack.com/archives/<channel>/p<ts without the dot>``);
        ``message_not_found`` for an unknown message. Read-only: no ``chat:write`` needed."""
        channel, ts = str(args.get("channel") or ""), str(args.get("message_ts") or "")
        if self._find(channel, ts) is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": channel, "permalink": f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"}

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
        """``is_member``: whether the bot is in the channel (https://docs.slack.dev/reference/methods/conversations.info);
        every channel unless ``bot_channels`` lists the ones it was invited to."""
        cid = str(args.get("channel") or "")
        member = self.bot_channels is None or cid in self.bot_channels
        return {"ok": True, "channel": {"id": cid, "name": cid.lower(), "is_im": cid.startswith("D"), "is_member": member}}

    def _m_usergroups_list(self, args: JSON) -> JSON:
        """https://docs.slack.dev/reference/methods/usergroups.list: needs usergroups:read, else
        ``missing_scope`` (the documented error for a token without the method's scope)."""
        if "usergroups:read" not in self.granted_scopes:
            return {"ok": False, "error": "missing_scope", "needed": "usergroups:read"}
        return {"ok": True, "usergroups": [{"id": g, "handle": g.lower(), "user_count": len(u)} for g, u in self.groups.items()]}

    def members_of(self, channel: str) -> list[str] | None:
        """Who is in ``channel``: as set in ``channel_members``; a DM's person and the bot; else the
        whole workspace roster (a channel nobody set up is an open one). None: no such channel."""
        if channel in self.channel_members:
            return list(self.channel_members[channel])
        if channel.startswith("D"):
            return ["U" + channel[1:], "UBOT"]  # the fake opens D<id> for user U<id> (chat.postMessage)
        return list(self.workspace) if channel[:1] in ("C", "G") else None

    def _m_conversations_members(self, args: JSON) -> JSON:
        """https://docs.slack.dev/reference/methods/conversations.members: ``channel`` (+ ``cursor``,
        ``limit`` default 100, at most 1000) -> ``members`` (user ids) and
        ``response_metadata.next_cursor`` ("" on the last page); ``channel_not_found`` for a
        conversation the bot cannot see (a private channel it is not in), ``invalid_limit``,
        ``invalid_cursor``. The cursor is opaque to clients; here it is the offset."""
        members = self.members_of(str(args.get("channel") or ""))
        if members is None:
            return {"ok": False, "error": "channel_not_found"}
        try:
            limit = int(args.get("limit") or 100)
            start = int(str(args.get("cursor") or "0").removeprefix("o:"))
        except ValueError:
            return {"ok": False, "error": "invalid_cursor"}
        if not 1 <= limit <= 1000:
            return {"ok": False, "error": "invalid_limit"}
        page = members[start : start + limit]
        more = start + limit < len(members)
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": f"o:{start + limit}" if more else ""}}
