"""Small mrkdwn and Block Kit helpers: escaping, clipping to Slack's limits, block builders.

Slack only needs ``&``, ``<`` and ``>`` escaped in text it renders; anything else (``*``,
``_``) formats, so identifiers go inside backticks where formatting stops.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

Block = dict[str, Any]

SECTION_MAX = 3000
FIELD_MAX = 2000
BUTTON_TEXT_MAX = 75
VALUE_MAX = 2000
OPTION_VALUE_MAX = 150
OPTION_TEXT_MAX = 75
HEADER_MAX = 150
CONTEXT_MAX = 3000
MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
# Slack rejects messages with msg_blocks_too_long at ~13k characters of blocks in total,
# well below the documented per-block limits (bolt-js#2509); stay under it with room.
TOTAL_TEXT_BUDGET = 11_000

_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,4}$")


@dataclass
class Message:
    """A message as sent: the notification/screen-reader fallback and the blocks."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def escape(text: object) -> str:
    """User- or platform-supplied text made inert for mrkdwn (&, <, > only)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending in … when cut (never inside an &entity;)."""
    if len(text) <= limit:
        return text
    return _PARTIAL_ENTITY.sub("", text[: limit - 1]) + "…"


def code(name: object) -> str:
    """An identifier in backticks (a backtick inside would end the span early)."""
    return "`" + escape(str(name).replace("`", "'")) + "`"


def code_block(body: str, limit: int = SECTION_MAX) -> str:
    """Escaped text in a ``` fence that stays closed when the body is cut to fit."""
    body = escape(body.replace("```", "'''"))
    room = limit - 8
    if len(body) > room:
        body = _PARTIAL_ENTITY.sub("", body[: room - 2]) + "\n…"
    return f"```\n{body}\n```"


def lr_text(lr: float) -> str:
    """ "1e-4", "1.5e-4", "5e-5": a learning rate as people write it (0.0001 wraps a phone line)."""
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def user(user_id: str) -> str:
    """A mention that renders the person's current name (ids only; never trust a name)."""
    return f"<@{user_id}>" if re.fullmatch(r"[UW][A-Z0-9]+", user_id or "") else code(user_id)


def at_time(epoch: float) -> str:
    """HH:MM in the reader's own timezone, with a UTC fallback for old clients."""
    fallback = time.strftime("%H:%M UTC", time.gmtime(epoch))
    return f"<!date^{int(epoch)}^{{time}}|{fallback}>"


def section(text: str, **extra: Any) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_MAX)}, **extra}


def fields(*pairs: tuple[str, str]) -> Block:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": clip(f"*{k}*\n{v}", FIELD_MAX)} for k, v in pairs[:10]]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_MAX), "emoji": True}}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(t, CONTEXT_MAX)} for t in texts[:10] if t]}


def divider() -> Block:
    return {"type": "divider"}


def plain(text: str, limit: int = BUTTON_TEXT_MAX) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def confirm(title: str, text: str, yes: str, no: str = "Go back") -> dict[str, Any]:
    return {
        "title": plain(title, 100),
        "text": {"type": "mrkdwn", "text": clip(text, 300)},
        "confirm": plain(yes, 30),
        "deny": plain(no, 30),
    }


def button(text: str, action_id: str, value: str, *, style: str | None = None, confirm_: dict[str, Any] | None = None) -> Block:
    out: Block = {"type": "button", "text": plain(text), "action_id": action_id, "value": value[:VALUE_MAX]}
    if style:
        out["style"] = style
    if confirm_:
        out["confirm"] = confirm_
    return out


def option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain(text, OPTION_TEXT_MAX), "value": value[:OPTION_VALUE_MAX]}


def actions(*elements: Block, block_id: str | None = None) -> Block:
    out: Block = {"type": "actions", "elements": list(elements)[:25]}
    if block_id:
        out["block_id"] = block_id[:255]
    return out


def chunked_sections(lines: list[str], *, fence: bool = False, limit: int = SECTION_MAX) -> list[Block]:
    """Long line lists as several sections, each under the per-section limit."""
    out: list[Block] = []
    room = limit - (10 if fence else 0)
    chunk: list[str] = []
    size = 0
    for line in lines:
        line = clip(line, room)
        if chunk and size + len(line) + 1 > room:
            out.append(section(("```\n" + "\n".join(chunk) + "\n```") if fence else "\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        out.append(section(("```\n" + "\n".join(chunk) + "\n```") if fence else "\n".join(chunk)))
    return out


def text_size(block: Block) -> int:
    """Characters of rendered text in a block (what Slack's undocumented total limit counts)."""
    return len(json.dumps(block, ensure_ascii=False))


def fit(
    blocks: list[Block], limit: int = MESSAGE_BLOCKS_MAX, *, keep_tail: int = 0, budget: int = TOTAL_TEXT_BUDGET
) -> list[Block]:
    """At most ``limit`` blocks and about ``budget`` characters; the last ``keep_tail``
    blocks (buttons, stamps) always survive, the middle is cut with a note."""
    tail = blocks[len(blocks) - keep_tail :] if keep_tail else []
    body = blocks[: len(blocks) - keep_tail] if keep_tail else list(blocks)
    room = budget - sum(text_size(b) for b in tail)
    head: list[Block] = []
    for block in body:
        if len(head) >= limit - keep_tail - 1 or room - text_size(block) < 200:
            break
        head.append(block)
        room -= text_size(block)
    if len(head) == len(body):
        return blocks
    return [*head, context(f"… {len(body) - len(head)} more parts left out (see `/sft status` or the report)"), *tail]


def encode(**values: Any) -> str:
    """A compact, parseable button value (run id + plan version + what the button means)."""
    return json.dumps(values, separators=(",", ":"))


def decode(value: str | None) -> dict[str, Any]:
    try:
        data = json.loads(value or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
