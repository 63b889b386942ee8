"""Base models of the local platform: a .gguf file is converted once into a Hugging Face folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.local

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pipeline.dataset.demo_data import generate  # noqa: E402
from pipeline.platforms.local.models import TINY_MODEL_ID, ensure_folder, resolve  # noqa: E402
from pipeline.platforms.local.platform import LocalPlatform  # noqa: E402
from tests.pipeline.platforms.local.tiny_model import tiny_model  # noqa: E402


def _write_tiny_gguf(root: Path, path: Path) -> Any:
    """The tiny model as a llama.cpp-style GGUF (f32; q/k rows permuted as llama.cpp does)."""
    import gguf

    model, tok = tiny_model(root)
    cfg = model.config
    spec = json.loads((root / "models" / TINY_MODEL_ID / "tokenizer.json").read_text())
    vocab = sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    specials = {a["id"] for a in spec["added_tokens"]}
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([t for t, _ in vocab])
    writer.add_token_merges(merges)
    writer.add_token_types([3 if i in specials else 1 for _, i in vocab])
    writer.add_bos_token_id(tok.bos_token_id)
    writer.add_eos_token_id(tok.eos_token_id)
    writer.add_pad_token_id(tok.pad_token_id)
    writer.add_chat_template(tok.chat_template)
    block = {
        v: k
        for k, v in {
            "attn_norm": "input_layernorm",
            "attn_q": "self_attn.q_proj",
            "attn_k": "self_attn.k_proj",
            "attn_v": "self_attn.v_proj",
            "attn_output": "self_attn.o_proj",
            "ffn_norm": "post_attention_layernorm",
            "ffn_gate": "mlp.gate_proj",
            "ffn_up": "mlp.up_proj",
            "ffn_down": "mlp.down_proj",
        }.items()
    }
    top = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
    for name, tensor in model.state_dict().items():
        array = tensor.numpy()
        stem, leaf = name.rsplit(".", 1)
        if stem.startswith("model.layers."):
            _, _, layer, module = stem.split(".", 3)
            short = block[module]
            if short in ("attn_q", "attn_k"):
                n = cfg.num_attention_heads if short == "attn_q" else cfg.num_key_value_heads
                array = array.reshape(n, 2, array.shape[0] // n // 2, *array.shape[1:]).swapaxes(1, 2).reshape(array.shape)
            writer.add_tensor(f"blk.{layer}.{short}.{leaf}", array)
        else:
            writer.add_tensor(f"{top[stem]}.{leaf}", array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


async def test_a_gguf_file_is_converted_once_into_the_same_model(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    original = _write_tiny_gguf(tmp_path, tmp_path / "tiny.gguf")
    platform = LocalPlatform(tmp_path, port=0)
    try:
        info = await platform.models.model_info(str(tmp_path / "tiny.gguf"))
        assert info is not None and info.max_context == 512 and info.params_b is not None and info.params_b > 0.0008
        resolved = resolve(str(tmp_path / "tiny.gguf"), tmp_path)
        assert resolved is not None and resolved.kind == "gguf"
        folder = ensure_folder(resolved)
        assert ensure_folder(resolved) == folder  # cached: converted once
        from transformers import AutoModelForCausalLM, AutoTokenizer

        converted = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        _, tok = tiny_model(tmp_path)
        ids = torch.tensor([tok.apply_chat_template(generate(1, seed=4)[0]["messages"], return_dict=True)["input_ids"]])
        assert (
            AutoTokenizer.from_pretrained(str(folder)).apply_chat_template(generate(1, seed=4)[0]["messages"])["input_ids"]
            == ids[0].tolist()
        )
        with torch.no_grad():
            assert torch.allclose(original(input_ids=ids).logits, converted(input_ids=ids).logits, atol=1e-5)
    finally:
        await platform.close()
