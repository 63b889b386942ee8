"""What every message the bot sends must satisfy in Slack: limits, escaping, a text fallback.

Limits from reference/slack.md §3; slack_sdk's own model validation runs on top (it checks
what it knows: section text, button text/value, header, options, confirm, view sizes).
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import Block as SdkBlock

from bot.testing.slack import FakeSlack
from handlers.render.mrkdwn import Message


def _texts(node: Any) -> list[str]:
    """mrkdwn texts: the ones Slack parses for mentions and links (plain_text is literal)."""
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            return [node["text"]]
        if node.get("type") == "plain_text":
            return []
        return [t for v in node.values() for t in _texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v)]
    return []


def check_blocks(blocks: list[dict[str, Any]], *, max_blocks: int) -> None:
    assert 0 < len(blocks) <= max_blocks
    for block in blocks:
        assert len(block.get("block_id", "")) <= 255
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert len(block.get("fields", [])) <= 10 and all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
        if block["type"] == "actions":
            assert 0 < len(block["elements"]) <= 25
            for el in block["elements"]:
                assert len(el["action_id"]) <= 255
                if el["type"] == "button":
                    assert len(el["text"]["text"]) <= 75 and len(el.get("value", "")) <= 2000
                    json.loads(el["value"])  # run id + version travel as JSON
                else:
                    assert 0 < len(el["options"]) <= 100
                    assert all(len(o["text"]["text"]) <= 75 and len(o["value"]) <= 150 for o in el["options"])
        SdkBlock.parse(block).to_dict()  # slack_sdk's own validation (raises on a violation)


PHONE_CODE_CHARS = 45  # monospace characters in a line on a 420 px phone (~52 in the 480 px thread pane)


def longest_code_line(msg: Message) -> int:
    """The longest line inside a ``` fence of any mrkdwn text: what wraps into broken rows.

    Code is sent as a preformatted rich-text block (its own horizontal scroll), so a fence
    in mrkdwn is only ever data laid out as a table, and must fit a phone.
    """
    longest = 0
    for t in _texts(msg.blocks):
        for block in t.split("```")[1::2]:
            longest = max([longest, *(len(line) for line in block.splitlines())])
    return longest


def check_message(msg: Message) -> None:
    assert msg.text.strip() and len(msg.text) <= 3000  # the notification / screen-reader fallback
    assert longest_code_line(msg) <= PHONE_CODE_CHARS, f"a fenced line wider than a phone in {msg.text[:80]!r}"
    check_blocks(msg.blocks, max_blocks=50)
    assert len(json.dumps(msg.blocks, ensure_ascii=False)) <= 12_000  # msg_blocks_too_long starts near 13k
    for t in [msg.text, *_texts(msg.blocks)]:
        assert "<!channel>" not in t and "<script>" not in t  # user text is escaped


def assert_every_message_fits(slack: FakeSlack) -> None:
    """Every message the bot sent (posts, edits, ephemerals, response_url answers) within Slack's limits."""
    sent = [c for c in slack.calls if c["method"] in ("chat.postMessage", "chat.update", "chat.postEphemeral", "response_url")]
    for c in sent:
        args = c["args"]
        if args.get("blocks"):
            check_message(Message(text=str(args.get("text") or ""), blocks=list(args["blocks"])))
        else:
            assert str(args.get("text") or "").strip()
