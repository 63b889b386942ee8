"""Benchmark: the streaming inspector against json.loads + a pydantic model per line.

    python bench/bench_inspect.py            # ~1 GB file in bench/out/ (git-ignored)
    python bench/bench_inspect.py --mb 100   # quicker
    python bench/bench_inspect.py --floors   # also bare parsing, no checks
    python bench/bench_inspect.py --runs 3   # each contender 3 times, interleaved

Generates a realistic chat JSONL once (seeded, so the same bytes each time; reused when
present), then runs each contender in a fresh subprocess so that its peak RSS is its own
(os.wait4's ru_maxrss of that child) and prints MB/s, peak RSS and the throughput ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"

_WORDS = (
    "the model answer query table select where because result value data user system "
    "function returns list string number error request response example training loss "
    "step first second then finally note that this is a good way to check each row and "
    "compute total count average price customer order date join group by having limit "
    "assistant explain why how what which should would could python code test file"
).split()
_NON_ASCII = ["café", "naïve", "Zürich", "数据", "模型", "“quoted”", "—", "€", "ß", "😀", "é"]
_SYSTEMS = [
    "You are a helpful assistant.",
    "You are a helpful SQL assistant. Given a database schema and a question, write the correct SQL query.",
    "You are a concise assistant. Answer in at most three sentences.",
    "You are an expert Python programmer. Explain your reasoning, then give the code.",
    "Du bist ein hilfreicher Assistent. Antworte auf Deutsch.",
]


def _paragraph(rng: random.Random, unicode: bool) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(15, 90))]
    if unicode:
        for _ in range(rng.randint(1, 4)):
            words[rng.randrange(len(words))] = rng.choice(_NON_ASCII)
    text = " ".join(words).capitalize() + "."
    if rng.random() < 0.25:  # code: quotes, backslashes and newlines to escape
        text += '\n```python\nprint("result:", row["value"])\npath = "C:\\\\data\\\\x.csv"\n```'
    return text


def _pool(rng: random.Random, unicode: bool) -> list[str]:
    return ["\n\n".join(_paragraph(rng, unicode) for _ in range(rng.randint(1, 3))) for _ in range(3000)]


def _row(rng: random.Random, ascii_pool: list[str], uni_pool: list[str]) -> dict[str, Any]:
    pool = uni_pool if rng.random() < 0.15 else ascii_pool
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.7:
        messages.append({"role": "system", "content": rng.choice(_SYSTEMS)})
    for _ in range(rng.choices((1, 2, 3, 4), weights=(55, 25, 12, 8))[0]):
        messages.append({"role": "user", "content": rng.choice(pool)})
        messages.append({"role": "assistant", "content": rng.choice(pool) + "\n\n" + rng.choice(pool)})
    roll = rng.random()
    if roll < 0.02:  # some rows train on the last turn only
        for m in messages:
            if m["role"] == "assistant":
                m["weight"] = 0
        messages[-1]["weight"] = 1
    elif roll < 0.03:  # and some use content parts
        messages[-1]["content"] = [{"type": "text", "text": messages[-1]["content"]}]
    return {"messages": messages}


def generate(path: Path, mb: int, seed: int = 7) -> None:
    """Write ~``mb`` MB of chat JSONL; 40% of rows as raw UTF-8, the rest ASCII-escaped."""
    rng = random.Random(seed)
    ascii_pool, uni_pool = _pool(rng, False), _pool(rng, True)
    target = mb * 1_000_000
    tmp = path.with_name(path.name + ".part")
    written = 0
    with tmp.open("wb") as f:
        while written < target:
            row = _row(rng, ascii_pool, uni_pool)
            line = (json.dumps(row, ensure_ascii=rng.random() < 0.6) + "\n").encode("utf-8")
            f.write(line)
            written += len(line)
    tmp.replace(path)


def _child(which: str, path: str) -> None:
    # Import before the clock starts: both contenders import pydantic, and a slow import
    # is not throughput.
    if which == "inspector":
        from pipeline.dataset.inspector import inspect_dataset

        start, cpu = time.perf_counter(), time.process_time()
        report = inspect_dataset(path)
        summary: dict[str, Any] = {"samples": report.samples, "blocking": report.blocking}
    elif which == "baseline":
        sample = _baseline_model()
        start, cpu = time.perf_counter(), time.process_time()
        summary = _baseline(path, sample)
    elif which == "floor-msgspec":  # the inspector's reads and block decodes, no checks
        from pipeline.dataset.inspector import _BLOCK, CHAT

        start, cpu = time.perf_counter(), time.process_time()
        rows = 0
        with open(path, "rb") as f:
            for block in line_blocks_sized(f, _BLOCK):
                rows += len(CHAT.decode_lines(block))
        summary = {"samples": rows}
    else:  # a floor: read and parse every line, check nothing
        from pydantic_core import from_json

        from pipeline.dataset.split import line_blocks

        parse = json.loads if which == "floor-json" else from_json
        start, cpu = time.perf_counter(), time.process_time()
        rows = 0
        with open(path, "rb") as f:
            for block in line_blocks(f):
                for line in block.split(b"\n"):
                    parse(line)
                    rows += 1
        summary = {"samples": rows}
    summary["seconds"] = time.perf_counter() - start
    summary["cpu_seconds"] = time.process_time() - cpu
    print(json.dumps(summary))


def line_blocks_sized(f: Any, size: int) -> Any:
    """Runs of whole lines from reads of ``size`` bytes (what the inspector decodes at once)."""
    tail = b""
    while chunk := f.read(size):
        cut = chunk.rfind(b"\n")
        if cut < 0:
            tail += chunk
            continue
        yield tail + chunk[:cut]
        tail = chunk[cut + 1 :]
    if tail:
        yield tail


def _baseline_model() -> Any:
    """What one would write first: a pydantic model of the chat format."""
    from typing import Literal

    from pydantic import BaseModel, Field

    class TextPart(BaseModel):
        type: Literal["text"]
        text: str

    class Message(BaseModel):
        role: Literal["system", "user", "assistant"]
        content: str | list[TextPart] | None = None
        weight: Literal[0, 1] | None = None
        reasoning_content: str | None = None
        tool_calls: list[dict[str, Any]] | None = None

    class Sample(BaseModel):
        messages: list[Message] = Field(min_length=1)
        tools: list[dict[str, Any]] | None = None
        weight: float | None = None

    return Sample


def _baseline(path: str, sample: Any) -> dict[str, Any]:
    """json.loads and the model validated per line."""
    ok = bad = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                sample.model_validate(json.loads(line))
                ok += 1
            except ValueError:  # pydantic's ValidationError is a ValueError
                bad += 1
    return {"samples": ok, "bad": bad}


def _run(which: str, path: Path) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", which, str(path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{which} failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024, help="size of the generated file")
    parser.add_argument(
        "--floors",
        action="store_true",
        help="also time bare parsing (json.loads, from_json, msgspec typed decode_lines)",
    )
    parser.add_argument("--runs", type=int, default=1, help="run each contender this many times")
    parser.add_argument("--child", nargs=2, metavar=("WHICH", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    OUT.mkdir(exist_ok=True)
    path = OUT / f"chat_{args.mb}mb.jsonl"
    if not path.exists():
        started = time.perf_counter()
        generate(path, args.mb)
        print(f"generated {path} in {time.perf_counter() - started:.0f}s")
    size_mb = path.stat().st_size / 1e6
    with path.open("rb") as f:  # warm the page cache so neither run pays for the disk
        while f.read(1 << 24):
            pass
    names = ("inspector", "baseline")
    if args.floors:
        names += ("floor-json", "floor-rust", "floor-msgspec")
    print(f"file: {path.name}, {size_mb:.0f} MB, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for run in range(1, args.runs + 1):
        # Each run pairs the inspector with a baseline timed right after it, so a ratio
        # compares two measurements under about the same load on a shared machine.
        results = {which: _run(which, path) for which in names}
        base = results["baseline"]
        if args.runs > 1:
            print(f"run {run}, load average {os.getloadavg()[0]:.1f}:")
        for which, r in results.items():
            print(
                f"{which:>13}: {size_mb / r['seconds']:6.1f} MB/s wall ({r['seconds']:5.1f} s), "
                f"{size_mb / r['cpu_seconds']:6.1f} MB/s per CPU-s, "
                f"{base['cpu_seconds'] / r['cpu_seconds']:4.1f}x baseline per CPU-s, "
                f"peak RSS {r['peak_rss_mb']:5.1f} MB"
            )
        wall = base["seconds"] / results["inspector"]["seconds"]
        cpu = base["cpu_seconds"] / results["inspector"]["cpu_seconds"]
        print(f"throughput ratio inspector/baseline: {wall:.1f}x wall-clock, {cpu:.1f}x per CPU-second")


if __name__ == "__main__":
    main()
