"""The "Start a run" modal (from the App Home): dataset, model, channel, anything else.

What it collects becomes the same instruction a ``/sft run`` would carry, parsed by the
same parser (``handlers.commands.parse_start``), so a run started here is exactly a run
started by command. Problems are reported on their own input, inline, before anything exists.
"""

from __future__ import annotations

from typing import Any

from handlers.render.mrkdwn import Block, plain

START_CALLBACK = "sft_start_modal"
DATASET, MODEL, CHANNEL, MORE = "dataset", "model", "channel", "more"
FIELD_ACTION = "value"


def _text(block_id: str, label: str, *, hint: str, optional: bool = False, placeholder: str = "") -> Block:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": FIELD_ACTION}
    if placeholder:
        element["placeholder"] = plain(placeholder, 150)
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, 2000),
        "hint": plain(hint, 2000),
        "element": element,
        "optional": optional,
    }


def start_modal(*, channels: list[str]) -> dict[str, Any]:
    """The form; ``channels`` (SFTBOT_CHANNELS) preselects the first allowed channel."""
    channel: dict[str, Any] = {
        "type": "conversations_select",
        "action_id": FIELD_ACTION,
        "filter": {"include": ["public", "private"]},
    }
    if channels:
        channel["initial_conversation"] = channels[0]
    blocks = [
        _text(
            DATASET,
            "Dataset",
            hint="A Fireworks dataset id (accounts/<you>/datasets/<id>), sftbot:demo, or a file in the team's dataset folder",
            placeholder="accounts/acme/datasets/support-conv",
        ),
        _text(MODEL, "Base model", hint="e.g. qwen3-8b (`/sft models` lists them)", placeholder="qwen3-8b"),
        {
            "type": "input",
            "block_id": CHANNEL,
            "label": plain("Post the run in"),
            "hint": plain("The plan, the scoreboard and the approvals happen in this channel's thread."),
            "element": channel,
        },
        _text(
            MORE,
            "Anything else",
            hint="Same words as /sft run: lr=1e-4 rank=16 epochs=3, “skip the final run”, “generate an evaluator for me”",
            optional=True,
        ),
    ]
    return {
        "type": "modal",
        "callback_id": START_CALLBACK,
        "private_metadata": "{}",
        "title": plain("Start an SFT run", 24),
        "submit": plain("Plan it", 24),
        "close": plain("Cancel", 24),
        "blocks": blocks,
    }
