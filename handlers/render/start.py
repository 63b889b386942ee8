"""The "Start a run" modal (from the App Home): dataset, model, channel, anything else.

What it collects becomes the same instruction a ``/sft run`` would carry, parsed by the
same parser, so a run started here is exactly a run started by command. Problems are
reported on their own input, inline, before anything exists.
"""

from __future__ import annotations

from typing import Any

from handlers.commands import CommandError, parse_slash
from handlers.render.mrkdwn import Block, plain
from pipeline.domain.spec import RunSpec, SpecError

START_CALLBACK = "sft_start_modal"
DATASET, MODEL, CHANNEL, MORE = "dataset", "model", "channel", "more"
_ACTION = "value"


def _text(block_id: str, label: str, *, hint: str, optional: bool = False, placeholder: str = "") -> Block:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": _ACTION}
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
    channel: dict[str, Any] = {"type": "conversations_select", "action_id": _ACTION, "filter": {"include": ["public", "private"]}}
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


def _value(values: dict[str, Any], block: str) -> str:
    state = (values.get(block) or {}).get(_ACTION) or {}
    return str(state.get("value") or state.get("selected_conversation") or "").strip()


def parse_start(values: dict[str, Any]) -> tuple[str, str, RunSpec | None, dict[str, str]]:
    """(instruction, channel, spec, errors by block id) from the submitted form."""
    dataset, model, channel, more = (_value(values, b) for b in (DATASET, MODEL, CHANNEL, MORE))
    errors: dict[str, str] = {}
    if not dataset or any(c.isspace() for c in dataset):
        errors[DATASET] = "Name one dataset: a Fireworks dataset id, sftbot:demo or a file name (no spaces)."
    if not model or any(c.isspace() for c in model):
        errors[MODEL] = "Name one base model, e.g. qwen3-8b."
    if not channel:
        errors[CHANNEL] = "Choose the channel where the team follows and approves the run."
    instruction = f"dataset={dataset} model={model} {more}".strip()
    if errors:
        return instruction, channel, None, errors
    try:
        cmd = parse_slash(f"run {instruction}")
    except (CommandError, SpecError) as exc:
        return instruction, channel, None, {MORE if more else DATASET: str(exc)[:150]}
    return cmd.instruction, channel, cmd.spec, {}
