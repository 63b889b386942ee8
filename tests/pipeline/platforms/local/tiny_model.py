"""A tiny random Llama saved to disk: the local platform's tests train and serve it in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.local

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pipeline.platforms.local.models import TINY_MODEL_ID, ensure_folder, resolve  # noqa: E402


def tiny_model(root: Path) -> tuple[Any, Any]:
    """The tiny test model and its tokenizer (built once per root)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve(TINY_MODEL_ID, root)
    assert resolved is not None
    folder = ensure_folder(resolved)
    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32), AutoTokenizer.from_pretrained(str(folder))
