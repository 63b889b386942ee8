"""Models for the local platform: load (base + merged adapter) and batched greedy generation
(evaluation answers, the smoke test). The endpoint that serves them is ``server``;
generation runs in worker threads so the bot's event loop is never blocked by a forward pass.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pipeline.domain.platform import ChatMessage


@dataclass
class LoadedModel:
    """A model ready to generate; ``lock`` serialises forward passes (they use every core anyway)."""

    name: str
    model: Any
    tokenizer: Any
    device: str
    lock: threading.Lock = field(default_factory=threading.Lock)


class Generation(BaseModel):
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length", as OpenAI reports it


def load_model(name: str, base_folder: Path, adapter: Path | None, device: str) -> LoadedModel:
    """Base weights in fp32, the LoRA adapter merged in (generation never sees a PEFT wrapper)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see train: spinning threads stall on a shared CPU
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_folder))
    model: Any = AutoModelForCausalLM.from_pretrained(str(base_folder), dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.to(device).eval()
    return LoadedModel(name=name, model=model, tokenizer=tokenizer, device=device)


def stop_ids(loaded: LoadedModel) -> list[int]:
    ids = {loaded.tokenizer.eos_token_id}
    configured = getattr(loaded.model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


def generate_batch(
    loaded: LoadedModel, prompts: Sequence[Sequence[ChatMessage]], *, max_tokens: int, batch_size: int = 16
) -> list[Generation]:
    """Greedy completions, batched with left padding (prompts sorted by length to pad little)."""
    import torch

    tok = loaded.tokenizer
    encoded = [
        list(tok.apply_chat_template([m.model_dump() for m in p], add_generation_prompt=True, return_dict=True)["input_ids"])
        for p in prompts
    ]
    stops = stop_ids(loaded)
    pad = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    results: list[Generation | None] = [None] * len(encoded)
    with loaded.lock, torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attn = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                n = len(encoded[i])
                ids[row, width - n :] = torch.tensor(encoded[i])
                attn[row, width - n :] = 1
            out = loaded.model.generate(
                input_ids=ids.to(loaded.device),
                attention_mask=attn.to(loaded.device),
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=stops,
            )
            for row, i in enumerate(chunk):
                new = out[row, width:].tolist()
                cut = next((k for k, t in enumerate(new) if t in stops), None)
                kept = new if cut is None else new[:cut]
                results[i] = Generation(
                    text=tok.decode(kept, skip_special_tokens=True).strip(),
                    prompt_tokens=len(encoded[i]),
                    completion_tokens=len(kept) + (0 if cut is None else 1),
                    finish_reason="length" if cut is None else "stop",
                )
    return [r for r in results if r is not None]
