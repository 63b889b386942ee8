"""Tokenising chat rows for the local trainer, with a loss mask that trains only on the
assistant's tokens; and collating them into padded batches."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    import torch

IGNORE = -100


class Encoded(BaseModel):
    """One tokenised conversation: ids and which of them the loss trains on (1 = assistant)."""

    input_ids: list[int]
    mask: list[int]


# --- tokenisation with an assistant-only loss mask ---


def _plain(messages: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages]


def mask_by_generation(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> Encoded:
    """The template's ``{% generation %}`` blocks mark the assistant tokens (exact, one render)."""
    out = tokenizer.apply_chat_template(_plain(messages), return_dict=True, return_assistant_tokens_mask=True)
    return Encoded(input_ids=list(out["input_ids"]), mask=list(out["assistant_masks"]))


def mask_by_prefix(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> Encoded:
    """For templates without generation blocks: an assistant turn is what rendering it adds
    to the conversation-so-far-plus-generation-prompt."""
    msgs = _plain(messages)
    ids: list[int] = list(tokenizer.apply_chat_template(msgs, return_dict=True)["input_ids"])
    mask = [0] * len(ids)
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        start = len(tokenizer.apply_chat_template(msgs[:i], add_generation_prompt=True, return_dict=True)["input_ids"])
        end = len(tokenizer.apply_chat_template(msgs[: i + 1], return_dict=True)["input_ids"])
        for t in range(start, min(end, len(ids))):
            mask[t] = 1
    return Encoded(input_ids=ids, mask=mask)


def encode(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> Encoded:
    template = tokenizer.chat_template or ""
    if "{% generation %}" in template or "{%- generation %}" in template:
        return mask_by_generation(tokenizer, messages)
    return mask_by_prefix(tokenizer, messages)


def load_rows(path: Path, tokenizer: Any, max_len: int) -> list[Encoded]:
    """Tokenise a chat JSONL file; rows that keep no assistant token after truncation are dropped."""
    rows: list[Encoded] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            messages = json.loads(line).get("messages") or []
            if not any(m.get("role") == "assistant" for m in messages):
                continue
            enc = encode(tokenizer, messages)
            enc = Encoded(input_ids=enc.input_ids[:max_len], mask=enc.mask[:max_len])
            if sum(enc.mask[1:]) > 0:  # position 0 is never a target
                rows.append(enc)
    return rows


def collate(rows: Sequence[Encoded], pad_id: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask and labels (IGNORE outside assistant tokens and on pads)."""
    import torch

    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        attn[i, :n] = 1
        labels[i, :n] = torch.where(torch.tensor(r.mask) == 1, torch.tensor(r.input_ids), IGNORE)
    return ids.to(device), attn.to(device), labels.to(device)


def first_messages(path: Path) -> list[dict[str, Any]] | None:
    """The first row's messages of a JSONL chat file (a prompt and its answer), or None."""
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), "")
    messages = json.loads(first).get("messages") if first else None
    return messages if isinstance(messages, list) and len(messages) >= 2 else None
