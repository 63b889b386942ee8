"""Measuring a base model's training speed on this machine, for the plan's time estimate.

``python -m pipeline.platforms.local.throughput <root> <model> <sample.jsonl> <device> <batch>``
prints one ``Throughput`` as JSON. It runs in its own process for the same reasons a job
does (torch stays out of the bot; the thread and precision choices are the trainer's own),
and it times the trainer's own step (``token_loss_sum`` + AdamW on a rank-16 LoRA) on real
rows: one small warm-up step, then a few full batches. What it measures is cached per model,
device, batch size and machine by the platform, so only the first plan on a machine pays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Any

_STARTED = time.monotonic()
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in train: see there

from pipeline.dataset.demo_data import demo_path  # noqa: E402
from pipeline.dataset.tokens import content_chars, estimate_tokens  # noqa: E402
from pipeline.domain.fsio import write_atomic  # noqa: E402
from pipeline.domain.platform import Throughput  # noqa: E402
from pipeline.platforms.local.encode import collate, encode  # noqa: E402
from pipeline.platforms.local.jobs import child_env, file_lock  # noqa: E402

TIMED_STEPS = 2  # full batches timed after the warm-up; each is a few seconds for a small model on a CPU
DECODE_STEPS = 8


def machine_id(device: str) -> str:
    """What the measurement holds for: the CPU model and core count, or the GPU (no torch needed)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} x{os.cpu_count()} ({device})"


def sample_rows(path: Path, wanted: int) -> list[list[dict[str, Any]]]:
    """Chat rows with an assistant turn from ``path``; the bundled rows when it has none (a
    question/answer file before its conversion): the speed is the model's, not the data's."""
    rows: list[list[dict[str, Any]]] = []
    for source in (path, demo_path()):
        with open(source, encoding="utf-8") as f:
            for line in f:
                try:
                    messages = json.loads(line).get("messages") if line.strip() else None
                except (ValueError, AttributeError):
                    continue
                if isinstance(messages, list) and any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
                    rows.append(messages)
                if len(rows) >= wanted:
                    return rows
        if rows:
            return rows
    return rows


def estimated_tokens(messages: list[dict[str, Any]]) -> int:
    return estimate_tokens(sum(content_chars(m.get("content")) or 0 for m in messages), len(messages))


def measure(root: Path, model_ref: str, sample: Path, device: str, batch_size: int) -> Throughput:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipeline.platforms.local.loss import token_loss_sum
    from pipeline.platforms.local.models import ensure_folder, resolve
    from pipeline.platforms.local.train import autocast_factory, lora_config

    resolved = resolve(model_ref, root)
    if resolved is None:
        raise FileNotFoundError(f"base model {model_ref!r} is not a known id, HF folder or .gguf file")
    folder = ensure_folder(resolved)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    auto: Any = AutoModelForCausalLM  # transformers' auto classes are untyped
    model = auto.from_pretrained(str(folder), dtype=torch.float32).to(device)
    if device == "cpu" and sum(p.numel() for p in model.parameters()) < 20_000_000:
        torch.set_num_threads(1)  # what the trainer does for tiny models
    rows = sample_rows(sample, batch_size * TIMED_STEPS + 2)
    if not rows:
        raise ValueError("no chat row with an assistant reply to time a training step on")
    encoded = [encode(tokenizer, m) for m in rows]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(0)
    model = get_peft_model(model, lora_config(16))
    autocast, precision = autocast_factory(device, "auto")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    startup = time.monotonic() - _STARTED

    def step(batch: list[int]) -> float:
        t0 = time.perf_counter()
        ids, attn, labels = collate([encoded[i % len(encoded)] for i in batch], int(pad), device)
        with autocast():
            loss, n = token_loss_sum(model, ids, attn, labels)
        (loss / max(n, 1)).backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    step([0, 1])  # warm-up: the first step builds kernels and allocator pools
    speeds = []
    for k in range(TIMED_STEPS):
        batch = list(range(2 + k * batch_size, 2 + (k + 1) * batch_size))
        seconds = step(batch)
        speeds.append(sum(estimated_tokens(rows[i % len(rows)]) for i in batch) / seconds)
    decode = _decode_seconds(model, tokenizer, rows[: min(16, len(rows))], device, int(pad))
    return Throughput(
        model=model_ref,
        machine=machine_id(device),
        device=device,
        precision=precision,
        batch_size=batch_size,
        tokens_per_second_low=round(min(speeds), 2),
        tokens_per_second_high=round(max(speeds), 2),
        startup_seconds=round(startup, 2),
        decode_seconds=round(decode, 4),
        steps=TIMED_STEPS,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        measure_seconds=round(time.monotonic() - _STARTED, 2),
    )


def _decode_seconds(model: Any, tokenizer: Any, rows: list[list[dict[str, Any]]], device: str, pad: int) -> float:
    """Seconds per greedy decoding step for a batch of prompts (the evaluation's batches)."""
    import torch

    prompts = [
        list(tokenizer.apply_chat_template(m[:-1], add_generation_prompt=True, return_dict=True)["input_ids"]) for m in rows
    ]
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    attn = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        attn[i, width - len(p) :] = 1
    model.eval()

    def timed(new_tokens: int) -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            model.generate(
                input_ids=ids.to(device),
                attention_mask=attn.to(device),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        return time.perf_counter() - t0

    # The difference leaves the prompt's forward pass out: what remains is per decoding step.
    first = timed(1)
    return max(timed(1 + DECODE_STEPS) - first, 1e-6) / DECODE_STEPS


# --- the platform's side: the cache, and running the probe ---


def cache_key(model: str, device: str, batch_size: int) -> str:
    return f"{model}|{device}|batch {batch_size}|{machine_id(device)}"


def cached(root: Path, key: str) -> Throughput | None:
    path = root / "throughput.json"
    table = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    entry = table.get(key)
    return Throughput.model_validate(entry).model_copy(update={"cached": True}) if isinstance(entry, dict) else None


def remember(root: Path, key: str, measured: Throughput) -> None:
    with file_lock(root / ".throughput.lock"):
        path = root / "throughput.json"
        table = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        table[key] = measured.model_dump(mode="json", exclude={"cached"})
        write_atomic(path, json.dumps(table, indent=1, sort_keys=True))


async def run_probe(root: Path, model: str, sample: Path, *, device: str, batch_size: int, timeout: float = 900) -> Throughput:
    """Measure in a child process (its own session, killed whole on timeout); raises RuntimeError naming why it failed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipeline.platforms.local.throughput",
        str(root),
        model,
        str(sample),
        device,
        str(batch_size),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    if proc.returncode != 0:
        last = (err or out).decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"measuring {model} failed (exit {proc.returncode}): {last[0][:300]}")
    return Throughput.model_validate_json(out.decode().strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(
            "usage: python -m pipeline.platforms.local.throughput <root> <model> <sample.jsonl> <device> <batch>", file=sys.stderr
        )
        return 2
    root, model, sample, device, batch = argv
    result = measure(Path(root), model, Path(sample), device, int(batch))
    print(result.model_dump_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
