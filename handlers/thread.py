"""A run's Slack messages: the channel root, keyed thread messages, uploads — all by stored ref.

Every message's ts is written with ``db.set_ref`` as soon as Slack returns it, so a bot that
restarts keeps editing the same root, plan and scoreboard instead of posting new ones.
"""

from __future__ import annotations

from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from handlers.mrkdwn import Message
from handlers.slack_client import ChannelLimiter
from pipeline.store.db import Database

CHANNEL, ROOT = "slack:channel", "slack:root_ts"


class RunMessages:
    """Posts and edits the messages of runs; the ref cache mirrors what the database holds."""

    def __init__(self, client: AsyncWebClient, db: Database, limiter: ChannelLimiter) -> None:
        self.client = client
        self.db = db
        self.limiter = limiter
        self._refs: dict[tuple[str, str], str | None] = {}

    async def ref(self, run_id: str, key: str) -> str | None:
        if (run_id, key) not in self._refs:
            self._refs[(run_id, key)] = await self.db.get_ref(run_id, key)
        return self._refs[(run_id, key)]

    async def set_ref(self, run_id: str, key: str, value: str) -> None:
        await self.db.set_ref(run_id, key, value)
        self._refs[(run_id, key)] = value

    async def channel(self, run_id: str) -> str | None:
        return await self.ref(run_id, CHANNEL)

    async def root(self, run_id: str, msg: Message) -> None:
        """Post the run's channel message the first time, edit it in place afterwards."""
        channel = await self.channel(run_id)
        if channel is None:
            return
        ts = await self.ref(run_id, ROOT)
        if ts is not None:
            await self.client.chat_update(channel=channel, ts=ts, **msg.kwargs())
            return
        await self.limiter.wait(channel)
        resp = await self.client.chat_postMessage(channel=channel, unfurl_links=False, **msg.kwargs())
        # A DM given as a user id comes back as the D-id; edits need the real channel id.
        await self.set_ref(run_id, CHANNEL, str(resp["channel"]))
        await self.set_ref(run_id, ROOT, str(resp["ts"]))

    async def put(self, run_id: str, key: str, msg: Message) -> bool:
        """The thread message ``key``: posted once, edited in place afterwards. True if new."""
        channel, root = await self.channel(run_id), await self.ref(run_id, ROOT)
        if channel is None or root is None:
            return False
        ts = await self.ref(run_id, f"slack:{key}")
        if ts is not None:
            await self.client.chat_update(channel=channel, ts=ts, **msg.kwargs())
            return False
        await self.limiter.wait(channel)
        resp = await self.client.chat_postMessage(channel=channel, thread_ts=root, unfurl_links=False, **msg.kwargs())
        await self.set_ref(run_id, f"slack:{key}", str(resp["ts"]))
        return True

    async def edit(self, run_id: str, key: str, msg: Message) -> bool:
        """Edit ``key`` if it was posted; False when there is nothing to edit."""
        channel, ts = await self.channel(run_id), await self.ref(run_id, f"slack:{key}")
        if channel is None or ts is None:
            return False
        await self.client.chat_update(channel=channel, ts=ts, **msg.kwargs())
        return True

    async def reply(self, run_id: str, msg: Message) -> None:
        """A one-off thread reply (a notice, the failure message)."""
        channel, root = await self.channel(run_id), await self.ref(run_id, ROOT)
        if channel is None or root is None:
            return
        await self.limiter.wait(channel)
        await self.client.chat_postMessage(channel=channel, thread_ts=root, unfurl_links=False, **msg.kwargs())

    async def upload(self, run_id: str, key: str, path: Path, *, title: str, comment: str | None = None) -> None:
        """Upload a file into the thread once (``key`` remembers it across restarts)."""
        channel, root = await self.channel(run_id), await self.ref(run_id, ROOT)
        if channel is None or root is None or not path.is_file() or await self.ref(run_id, f"upload:{key}"):
            return
        await self.limiter.wait(channel)
        resp = await self.client.files_upload_v2(
            file=str(path), filename=path.name, title=title, channel=channel, thread_ts=root, initial_comment=comment
        )
        file_id = (resp.get("file") or {}).get("id") or "uploaded"
        await self.set_ref(run_id, f"upload:{key}", str(file_id))
