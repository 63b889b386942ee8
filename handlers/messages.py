"""Which Slack message belongs to which run: the root, keyed thread messages, uploads.

Every message's ts is written to the ``slack_messages`` table as soon as Slack returns it,
so a bot that restarts keeps editing the same root, plan and scoreboard instead of posting
new ones. A message whose rendering did not change is not sent again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from handlers.render.mrkdwn import Message
from handlers.slack_client import ChannelLimiter
from pipeline.domain.gates import GateKey
from pipeline.store.db import Database


@dataclass(frozen=True)
class MessageKey:
    """A message of a run's thread: formatted and parsed only here."""

    name: str

    @staticmethod
    def gate(key: GateKey) -> MessageKey:
        return MessageKey(str(key))  # plan:v2, input:1, promotion: one message per gate

    @staticmethod
    def upload(name: str) -> MessageKey:
        return MessageKey(f"upload:{name}")

    @staticmethod
    def dm(gate: GateKey, user: str) -> MessageKey:
        return MessageKey(f"dm:{gate}:{user}")  # one DM per decider per gate

    @staticmethod
    def dms(gate: GateKey) -> str:
        """The key prefix of every DM about ``gate``."""
        return f"dm:{gate}:"

    @staticmethod
    def evaluator_request(question: int) -> MessageKey:
        return MessageKey(f"evaluator_request:{question}")

    @property
    def gate_key(self) -> GateKey | None:
        try:
            return GateKey.parse(self.name)
        except ValueError:
            return None

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class _Row:
    """A ``slack_messages`` row as written: a posted message has a ts, an upload a file id."""

    channel: str
    ts: str = ""
    file_id: str = ""
    open: bool = False
    digest: str = ""


ROOT = MessageKey("root")
SCOREBOARD = MessageKey("scoreboard")
FINAL_BOARD = MessageKey("final_board")
FINAL = MessageKey("final")


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str
    meta: dict[str, Any]
    open: bool
    digest: str


def _digest(msg: Message) -> str:
    return hashlib.sha256(json.dumps(msg.kwargs(), sort_keys=True).encode()).hexdigest()[:20]


class RunMessages:
    """Posts and edits the messages of runs; a small cache mirrors the table."""

    def __init__(self, client: AsyncWebClient, db: Database, limiter: ChannelLimiter) -> None:
        self.client = client
        self.db = db
        self.limiter = limiter
        self._cache: dict[tuple[str, str], Posted | None] = {}

    async def get(self, run_id: str, key: MessageKey) -> Posted | None:
        if (run_id, key.name) not in self._cache:
            row = await self.db.fetchone(
                "SELECT channel, ts, file_id, meta_json, open, digest FROM slack_messages WHERE run_id=? AND key=?",
                (run_id, key.name),
            )
            self._cache[(run_id, key.name)] = (
                None
                if row is None
                else Posted(channel=row[0], ts=row[1] or row[2], meta=json.loads(row[3]), open=bool(row[4]), digest=row[5])
            )
        return self._cache[(run_id, key.name)]

    async def _save(self, run_id: str, key: MessageKey, row: _Row) -> None:
        async with self.db.write() as tx:
            await tx.execute(
                "INSERT INTO slack_messages(run_id, key, channel, ts, file_id, open, digest) VALUES (?,?,?,?,?,?,?)"
                " ON CONFLICT(run_id, key) DO UPDATE SET ts=excluded.ts, file_id=excluded.file_id, open=excluded.open,"
                " digest=excluded.digest",
                (run_id, key.name, row.channel, row.ts, row.file_id, int(row.open), row.digest),
            )
        self._cache.pop((run_id, key.name), None)

    async def set_meta(self, run_id: str, key: MessageKey, **meta: Any) -> None:
        """Facts a later rendering of this message needs (e.g. the question it asked)."""
        posted = await self.get(run_id, key)
        if posted is None:
            return
        async with self.db.write() as tx:
            await tx.execute(
                "UPDATE slack_messages SET meta_json=? WHERE run_id=? AND key=?",
                (json.dumps({**posted.meta, **meta}), run_id, key.name),
            )
        self._cache.pop((run_id, key.name), None)

    async def channel(self, run_id: str) -> str | None:
        """Where the run's messages go: the channel its root was posted in."""
        root = await self.get(run_id, ROOT)
        return root.channel if root is not None else None

    async def run_for_thread(self, channel: str, thread_ts: str) -> str | None:
        row = await self.db.fetchone(
            "SELECT run_id FROM slack_messages WHERE key='root' AND channel=? AND ts=?", (channel, thread_ts)
        )
        return None if row is None else str(row[0])

    async def root(self, run_id: str, channel: str, msg: Message) -> None:
        """Post the run's channel message the first time, edit it in place afterwards."""
        posted = await self.get(run_id, ROOT)
        if posted is not None:
            await self._update(run_id, ROOT, posted, msg)
            return
        await self.limiter.wait(channel)
        resp = await self.client.chat_postMessage(channel=channel, unfurl_links=False, **msg.kwargs())
        # A DM given as a user id comes back as the D-id; edits need the real channel id.
        await self._save(run_id, ROOT, _Row(str(resp["channel"]), ts=str(resp["ts"]), digest=_digest(msg)))

    async def _update(self, run_id: str, key: MessageKey, posted: Posted, msg: Message, *, open_: bool | None = None) -> bool:
        digest = _digest(msg)
        if digest == posted.digest and (open_ is None or open_ == posted.open):
            return False  # Slack already shows exactly this
        if digest != posted.digest:
            await self.client.chat_update(channel=posted.channel, ts=posted.ts, **msg.kwargs())
        await self._save(
            run_id, key, _Row(posted.channel, ts=posted.ts, open=posted.open if open_ is None else open_, digest=digest)
        )
        return True

    async def put(self, run_id: str, key: MessageKey, msg: Message, *, gate: bool = False) -> bool:
        """The thread message ``key``: posted once, edited in place afterwards. True if new.

        ``gate``: the message carries a decision's buttons, to be stamped once it is decided.
        """
        root = await self.get(run_id, ROOT)
        if root is None:
            return False
        posted = await self.get(run_id, key)
        if posted is not None:
            await self._update(run_id, key, posted, msg)
            return False
        await self.limiter.wait(root.channel)
        resp = await self.client.chat_postMessage(channel=root.channel, thread_ts=root.ts, unfurl_links=False, **msg.kwargs())
        await self._save(run_id, key, _Row(root.channel, ts=str(resp["ts"]), open=gate, digest=_digest(msg)))
        return True

    async def stamp(self, run_id: str, key: MessageKey, msg: Message) -> None:
        """Replace a gate message with its decided form (its buttons gone)."""
        posted = await self.get(run_id, key)
        if posted is not None:
            await self._update(run_id, key, posted, msg, open_=False)

    async def open_gates(self, run_id: str) -> list[MessageKey]:
        rows = await self.db.fetchall("SELECT key FROM slack_messages WHERE run_id=? AND open=1 ORDER BY rowid", (run_id,))
        return [MessageKey(str(r[0])) for r in rows]

    async def reply(self, run_id: str, msg: Message) -> None:
        """A one-off thread reply (a notice, the failure message)."""
        root = await self.get(run_id, ROOT)
        if root is None:
            return
        await self.limiter.wait(root.channel)
        await self.client.chat_postMessage(channel=root.channel, thread_ts=root.ts, unfurl_links=False, **msg.kwargs())

    async def direct(self, user: str, msg: Message) -> None:
        """A DM to ``user`` (posting to a user id opens the DM)."""
        await self.limiter.wait(user)
        await self.client.chat_postMessage(channel=user, unfurl_links=False, **msg.kwargs())

    async def direct_once(self, run_id: str, key: MessageKey, user: str, msg: Message, **meta: Any) -> bool:
        """A DM to ``user`` remembered as ``key`` (sent once, across restarts; edited later by
        ``edit``). True when it was sent now."""
        if await self.get(run_id, key) is not None:
            return False
        await self.limiter.wait(user)
        resp = await self.client.chat_postMessage(channel=user, unfurl_links=False, **msg.kwargs())
        # Posting to a user id answers with the DM's own channel id (D…): edits need it.
        await self._save(run_id, key, _Row(str(resp["channel"]), ts=str(resp["ts"]), digest=_digest(msg)))
        if meta:
            await self.set_meta(run_id, key, **meta)
        return True

    async def edit(self, run_id: str, key: MessageKey, msg: Message) -> None:
        """Edit the message ``key`` in place (nothing when it was never sent or is unchanged)."""
        posted = await self.get(run_id, key)
        if posted is not None:
            await self._update(run_id, key, posted, msg)

    async def keys(self, run_id: str, prefix: str) -> list[MessageKey]:
        """The run's messages whose key starts with ``prefix`` (e.g. every DM about one gate)."""
        rows = await self.db.fetchall(
            "SELECT key FROM slack_messages WHERE run_id=? AND substr(key, 1, ?)=? ORDER BY rowid", (run_id, len(prefix), prefix)
        )
        return [MessageKey(str(r[0])) for r in rows]

    async def permalink(self, run_id: str) -> str | None:
        """A link to the run's thread (chat.getPermalink, asked once and remembered)."""
        root = await self.get(run_id, ROOT)
        if root is None:
            return None
        if link := root.meta.get("permalink"):
            return str(link)
        try:
            resp = await self.client.chat_getPermalink(channel=root.channel, message_ts=root.ts)
        except Exception:  # a link is a convenience: the answer goes out without it
            return None
        link = str(resp.get("permalink") or "")
        if link:
            await self.set_meta(run_id, ROOT, permalink=link)
        return link or None

    async def tell(self, channel: str, user: str, msg: Message) -> None:
        """An ephemeral for ``user`` in ``channel``, for a run with no thread (yet)."""
        if user[:1] in ("U", "W"):
            await self.client.chat_postEphemeral(channel=channel, user=user, **msg.kwargs())

    async def private(self, run_id: str, user: str, msg: Message) -> None:
        """An ephemeral in the run's thread, seen only by ``user``."""
        root = await self.get(run_id, ROOT)
        if root is not None and user[:1] in ("U", "W"):
            await self.client.chat_postEphemeral(channel=root.channel, user=user, thread_ts=root.ts, **msg.kwargs())

    async def upload(self, run_id: str, name: str, path: Path, *, title: str, comment: str | None = None) -> None:
        """Upload a file into the thread once (``name`` remembers it across restarts)."""
        root = await self.get(run_id, ROOT)
        key = MessageKey.upload(name)
        if root is None or not path.is_file() or await self.get(run_id, key) is not None:
            return
        await self.limiter.wait(root.channel)
        resp = await self.client.files_upload_v2(
            file=str(path), filename=path.name, title=title, channel=root.channel, thread_ts=root.ts, initial_comment=comment
        )
        file_id = (resp.get("file") or {}).get("id") or "uploaded"
        await self._save(run_id, key, _Row(root.channel, file_id=str(file_id)))

    async def mark(self, run_id: str, key: MessageKey) -> bool:
        """Remember that something was done once for this run (True the first time)."""
        if await self.get(run_id, key) is not None:
            return False
        await self._save(run_id, key, _Row(await self.channel(run_id) or ""))
        return True
