"""What the fake Slack keeps: messages with their edits, uploads, and how Slack renders text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
