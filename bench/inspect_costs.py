"""Where the inspector's CPU time goes on the 200 MB chat JSONL, and what the routes not taken cost.

    python bench/inspect_costs.py                    # every probe, fastest of 7 passes each
    python bench/inspect_costs.py read typed skeleton --rounds 3

bench_inspect.py compares whole contenders in fresh processes; this splits the inspector into
its parts in one process, so the figures can be added up. Each probe runs the inspector's read
loop (one reused 256 KiB buffer, blocks of whole lines) with one piece of work per block; the
probes take turns, round after round, and the fastest pass of each counts. The last line is the
budget that 5x Together's ``check_file`` leaves, measured in the same run. The pysimdjson and
orjson probes run only where those packages are installed (they are not dependencies: see
bench/README.md for what they gave).
"""

from __future__ import annotations

import argparse
import codecs
import gc
import os
import time
from collections.abc import Callable
from importlib.util import find_spec
from itertools import accumulate, chain
from operator import attrgetter, countOf, itemgetter, sub
from pathlib import Path
from typing import Any, Literal

import msgspec

from pipeline.dataset.inspector import _BLOCK, inspect_dataset
from pipeline.dataset.rows import CHAT, ChatRow
from pipeline.dataset.tokens import estimate_tokens_many

FILE = Path(__file__).resolve().parent / "out" / "chat_200mb.jsonl"  # made by bench_inspect.py


# The happy path with message contents skipped: msgspec checks that each is a JSON value
# (escapes and surrogate pairs included) but builds no string and checks no UTF-8.
class _SkippedMessage(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    role: Literal["system", "user", "assistant"]
    content: msgspec.Raw
    weight: Literal[0, 1] = 1


class _SkippedRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    messages: list[_SkippedMessage]


SKELETON = msgspec.json.Decoder(_SkippedRow)
ARRAY = msgspec.json.Decoder(list[ChatRow])
MESSAGES, ROLE, CONTENT, WEIGHT = attrgetter("messages"), attrgetter("role"), attrgetter("content"), attrgetter("weight")
FIRST, LAST = itemgetter(0), itemgetter(-1)

Probe = Callable[[bytearray, memoryview, int], object]


def line_ends(buf: bytearray, stop: int) -> list[int] | None:
    """The inspector's proof that lines and rows correspond (every newline between "}" and
    "{"), keeping where each line ends; None if a block would take the line-by-line path."""
    find, ends = buf.find, []
    pos = find(b"\n", 0, stop)
    while 0 < pos < stop - 1:
        if buf[pos - 1] != 0x7D or buf[pos + 1] != 0x7B:
            return None
        ends.append(pos)
        pos = find(b"\n", pos + 1, stop)
    ends.append(stop)
    return ends


def utf8_block(buf: bytearray, view: memoryview, stop: int) -> object:
    return buf.isascii() or str(view[:stop], "utf-8")


def utf8_hop(buf: bytearray, view: memoryview, stop: int) -> object:
    """Validate only the lines with a non-ASCII byte: ASCII-decode (C, a word at a time) up to
    the first one, UTF-8-decode that line, go on after it."""
    if buf.isascii():
        return None
    pos = 0
    while True:
        try:
            return codecs.ascii_decode(view[pos:stop])
        except UnicodeDecodeError as exc:
            at = pos + exc.start
        end = buf.find(b"\n", at, stop)
        pos = stop if end < 0 else end
        codecs.utf_8_decode(view[buf.rfind(b"\n", 0, at) + 1 : pos], "strict", True)


def surrogate_find(buf: bytearray, view: memoryview, stop: int) -> object:
    """A byte-level pre-filter for lone surrogates: every \\ud800-\\udfff escape in the block
    found (emoji written as escapes are pairs of them), for a closer look at each."""
    found = 0
    for needle in (b"\\ud", b"\\uD"):
        pos = buf.find(needle, 0, stop)
        while pos >= 0:
            found += 1
            pos = buf.find(needle, pos + 6, stop)
    return found


def byte_route(buf: bytearray, view: memoryview, stop: int, *, per_row: bool = False) -> object:
    """The cheapest happy path left once contents are skipped: the line proof, the clean-row
    conditions the inspector checks, UTF-8 by ``utf8_hop``, and tokens from bytes as written
    (each content's JSON, or with ``per_row`` the whole line's) instead of characters. It still
    lacks a check that each content is a string or text parts (Raw takes any JSON value)."""
    ends = line_ends(buf, stop)
    if ends is None:
        return None
    rows = SKELETON.decode_lines(view[:stop])
    if len(rows) != len(ends):
        return None
    utf8_hop(buf, view, stop)
    msgs = list(map(MESSAGES, rows))
    counts = list(map(len, msgs))
    last = list(map(LAST, msgs)) if 0 not in counts else []
    if countOf(map(ROLE, last), "assistant") != len(rows) or 0 in map(WEIGHT, last):
        return None
    flat = list(chain.from_iterable(msgs))
    roles = list(map(ROLE, flat))
    system = roles.count("system")
    if system and countOf(map(ROLE, map(FIRST, msgs)), "system") != system:
        return None
    if per_row:
        sizes = list(map(sub, ends, [-1, *ends[:-1]]))
    else:
        running = list(accumulate(map(len, map(CONTENT, flat)), initial=0))
        at_end = list(map(running.__getitem__, accumulate(counts)))
        sizes = list(map(sub, at_end, [0, *at_end[:-1]]))
    tokens = estimate_tokens_many(sizes, counts)
    return sum(tokens), max(tokens), roles.count("assistant"), system


def array_decode(buf: bytearray, view: memoryview, stop: int) -> object:
    """A block as one JSON array (newlines made commas) in one typed decode."""
    return ARRAY.decode(b"[" + bytes(view[:stop]).replace(b"\n", b",") + b"]")


def _optional_probes() -> dict[str, Probe]:
    probes: dict[str, Probe] = {}
    if find_spec("simdjson") is not None:
        import simdjson

        parser = simdjson.Parser()
        roles = frozenset({"system", "user", "assistant"})

        def simdjson_parse(buf: bytearray, view: memoryview, stop: int) -> Any:
            return parser.parse(b"[" + bytes(view[:stop]).replace(b"\n", b",") + b"]")

        def simdjson_checks(buf: bytearray, view: memoryview, stop: int) -> object:
            chars = 0  # exact characters: simdjson's strings are built only here
            for row in simdjson_parse(buf, view, stop):
                last = None
                for m in row["messages"]:
                    last, content = m["role"], m["content"]
                    if last not in roles or (len(m) != 2 and m.get("weight") not in (0, 1)):
                        return None
                    chars += len(content) if type(content) is str else sum(len(p["text"]) for p in content)
                if len(row) != 1 or last != "assistant":
                    return None
            return chars

        probes |= {"simdjson-parse": simdjson_parse, "simdjson-checks": simdjson_checks}
    if find_spec("orjson") is not None:
        import orjson

        def orjson_lines(buf: bytearray, view: memoryview, stop: int) -> object:
            return [orjson.loads(line) for line in bytes(view[:stop]).split(b"\n")]

        probes["orjson-lines"] = orjson_lines
    return probes


PROBES: dict[str, Probe] = {
    "read": lambda buf, view, stop: None,
    "line-proof": lambda buf, view, stop: line_ends(buf, stop),
    "typed": lambda buf, view, stop: CHAT.decode_lines(view[:stop]),
    "skeleton": lambda buf, view, stop: SKELETON.decode_lines(view[:stop]),
    "utf8-block": utf8_block,
    "utf8-hop": utf8_hop,
    "surrogate-find": surrogate_find,
    "array": array_decode,
    "byte-route": byte_route,
    "byte-route-rows": lambda buf, view, stop: byte_route(buf, view, stop, per_row=True),
    **_optional_probes(),
}


def _blocks(path: Path, probe: Probe) -> None:
    """The inspector's read loop (pipeline/dataset/inspector.py ``_scan``) with ``probe`` per block."""
    buf = bytearray(_BLOCK)
    view = memoryview(buf)
    filled = 0
    with path.open("rb", buffering=0) as f:
        while got := f.readinto(view[filled:]):
            end = filled + got
            cut = buf.rfind(b"\n", filled, end)
            probe(buf, view, cut)
            filled = end - cut - 1
            buf[:filled] = buf[cut + 1 : end]
    view.release()


def _whole(path: Path) -> dict[str, Callable[[], object]]:
    def gc_off() -> object:  # the rows are gc=False structs, but their lists are tracked
        gc.disable()
        try:
            return inspect_dataset(path)
        finally:
            gc.enable()

    runs: dict[str, Callable[[], object]] = {"inspector": lambda: inspect_dataset(path), "inspector-gc-off": gc_off}
    if find_spec("together") is not None:
        from together.lib import check_file

        runs["check_file"] = lambda: check_file(path)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probes", nargs="*", help=f"some of: {', '.join(PROBES)}, inspector, inspector-gc-off, check_file")
    parser.add_argument("--rounds", type=int, default=7, help="passes per probe; the fastest counts")
    parser.add_argument("--file", type=Path, default=FILE)
    args = parser.parse_args()
    if not args.file.exists():
        raise SystemExit(f"{args.file} does not exist: run python bench/bench_inspect.py once to make it")
    runs = {name: (lambda p=probe: _blocks(args.file, p)) for name, probe in PROBES.items()} | _whole(args.file)
    names = args.probes or list(runs)
    best = dict.fromkeys(names, float("inf"))
    for _ in range(args.rounds):
        for name in names:
            cpu = time.process_time()
            runs[name]()
            best[name] = min(best[name], time.process_time() - cpu)
    mb = args.file.stat().st_size / 1e6
    print(f"{args.file.name}: {mb:.0f} MB, fastest of {args.rounds} passes, load average {os.getloadavg()[0]:.1f}")
    for name in names:
        extra = f"  ({best[name] - best['read']:+.3f} over read)" if "read" in best and name in PROBES else ""
        print(f"{name:>16}: {best[name]:.3f} CPU-s{extra}")
    if "check_file" in best:
        print(f"5x check_file leaves {best['check_file'] / 5:.3f} CPU-s for the whole inspection")


if __name__ == "__main__":
    main()
