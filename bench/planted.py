"""Errors planted at known lines of a generated chat JSONL, for bench_inspect.py to look for.

Each bad row replaces one good row, so line numbers stay those of the clean file. Every kind
is planted twice at seeded random lines; blank lines and CRLF endings are planted as well
(harmless, but they take the inspector off its fast path for their block). The expected
kind of each bad row is written here by hand from the chat format's rules, not read back
from the inspector.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

_OK = {"role": "assistant", "content": "ok"}
_LONG = "word " * 140_000  # ~175k estimated tokens: past the 32,768-token context budget

BAD_ROWS: dict[str, bytes] = {
    "invalid_json": b'{"messages": [{"role": "user", "content": "cut off here',
    "non_utf8": b'{"messages": [{"role": "user", "content": "caf\xe9"}, {"role": "assistant", "content": "ok"}]}',
    "not_object": b"[1, 2, 3]",
    "lone_surrogate": b'{"messages": [{"role": "user", "content": "half \\ud800 a pair"}, {"role": "assistant", "content": "ok"}]}',
    "missing_messages": json.dumps({"note": "no messages here"}).encode(),
    "messages_not_list": json.dumps({"messages": "hello"}).encode(),
    "empty_messages": json.dumps({"messages": []}).encode(),
    "message_not_object": json.dumps({"messages": ["hi", _OK]}).encode(),
    "unknown_role": json.dumps({"messages": [{"role": "robot", "content": "hi"}, _OK]}).encode(),
    "system_not_first": json.dumps(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "be brief"}, _OK]}
    ).encode(),
    "bad_content": json.dumps({"messages": [{"role": "user", "content": 42}, _OK]}).encode(),
    "bad_message_weight": json.dumps(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok", "weight": 2}]}
    ).encode(),
    "no_assistant": json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(),
    "tool_calls_without_tools": json.dumps(
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]},
            ]
        }
    ).encode(),
    "over_context": json.dumps({"messages": [{"role": "user", "content": _LONG}, _OK]}).encode(),
}
PER_KIND = 2
HARMLESS = 3  # blank lines, and rows ending in CRLF


def plant(src: Path, dest: Path, *, seed: int = 11) -> list[tuple[int, str]]:
    """Copy ``src`` to ``dest`` with bad rows at seeded lines; the (line, kind) of each, by line."""
    lines = sum(1 for _ in src.open("rb"))
    rng = random.Random(seed)
    picked = rng.sample(range(1, lines + 1), len(BAD_ROWS) * PER_KIND + 2 * HARMLESS)
    at: dict[int, tuple[str, bytes | None]] = {}
    kinds = [k for k in BAD_ROWS for _ in range(PER_KIND)]
    for line, kind in zip(picked[: len(kinds)], kinds, strict=True):
        at[line] = (kind, BAD_ROWS[kind])
    for line in picked[len(kinds) : len(kinds) + HARMLESS]:
        at[line] = ("blank", b"")
    for line in picked[len(kinds) + HARMLESS :]:
        at[line] = ("crlf", None)
    tmp = dest.with_name(dest.name + ".part")
    with src.open("rb") as r, tmp.open("wb") as w:
        for n, row in enumerate(r, 1):
            kind, bad = at.get(n, ("", None))
            if kind == "crlf":
                w.write(row.rstrip(b"\n") + b"\r\n")
            else:
                w.write(row if bad is None else bad + b"\n")
    tmp.replace(dest)
    return sorted((line, kind) for line, (kind, bad) in at.items() if kind in BAD_ROWS)


def missed(planted: list[tuple[int, str]], found: dict[str, list[int]]) -> list[tuple[int, str]]:
    """The planted errors the inspector did not report at their line (``found``: kind -> lines)."""
    return [(line, kind) for line, kind in planted if line not in found.get(kind, [])]
