"""The loss as the local trainer computes it, and the untrained base model's validation loss.

``token_loss_sum`` and ``evaluate`` are the trainer's own (``train`` imports them from
here); ``base_loss`` runs the same code on the untrained base.

Same model folder, same tokenisation and masking (only assistant tokens count), same
token-weighted mean in fp32 (``train.evaluate``), on the same held-out rows: so the
promotion gate can set "base 2.31" beside "leader 0.41" for a run judged by validation
loss, where there are no answers to score. One forward pass over the held-out split, in a
worker thread of the bot's process (like generation); nothing is trained or saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.platforms.local.encode import IGNORE, Encoded, collate, load_rows
from pipeline.platforms.local.models import ensure_folder, resolve

if TYPE_CHECKING:
    import torch

MAX_SEQ_LEN = 1024  # LocalJobSpec's default: the rows are cut where the candidates' were


def token_loss_sum(model: Any, ids: torch.Tensor, attn: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over assistant targets, and how many there were.

    Only the target positions go through the LM head (a quarter of the tokens in a typical
    SFT row, and the head is the widest matmul of a small model). Models with logit
    post-processing (soft-capping) take the full forward.
    """
    import torch.nn.functional as F

    targets = labels[:, 1:]
    keep = targets != IGNORE
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(base.config, "final_logit_softcapping", None) is None:
        hidden = base.get_decoder()(input_ids=ids, attention_mask=attn).last_hidden_state[:, :-1]
        logits = base.get_output_embeddings()(hidden[keep])
    else:
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1][keep]
    loss = F.cross_entropy(logits.float(), targets[keep], reduction="sum")
    return loss, int(keep.sum().item())


def evaluate(model: Any, rows: Sequence[Encoded], pad_id: int, device: str, batch_size: int) -> float | None:
    """Token-weighted mean loss in fp32 (no autocast: validation numbers must be comparable)."""
    import torch

    if not rows:
        return None
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            loss, n = token_loss_sum(model, *collate(rows[i : i + batch_size], pad_id, device))
            total, count = total + loss.item(), count + n
    model.train()
    return total / max(count, 1)


def load_base(base_model: str, root: Path, device: str) -> tuple[Any, Any]:
    """The base model (fp32, on ``device``) and its tokenizer, from a known id, folder or .gguf."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve(base_model, root)
    if resolved is None:
        raise FileNotFoundError(f"base model {base_model!r} is not a known id, HF folder or .gguf file")
    folder = ensure_folder(resolved)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model: Any = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    return model.to(device), tokenizer


def max_length(model: Any, tokenizer: Any, max_seq_len: int) -> tuple[int, int]:
    """The row length the trainer uses, and the pad id."""
    context = getattr(model.config, "max_position_embeddings", None) or max_seq_len
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return min(max_seq_len, int(context)), int(pad_id)


def base_loss(
    base_model: str, root: Path, eval_path: Path, device: str, batch_size: int, max_seq_len: int = MAX_SEQ_LEN
) -> float | None:
    """Token-weighted mean loss of the untrained base on ``eval_path``; None without rows."""
    model, tokenizer = load_base(base_model, root, device)
    max_len, pad_id = max_length(model, tokenizer, max_seq_len)
    rows = load_rows(eval_path, tokenizer, max_len)
    return evaluate(model, rows, pad_id, device, batch_size)
