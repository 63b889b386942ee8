"""Stream a JSONL dataset once and report its shape, size and every problem by line.

Memory stays flat: the file is read into one reused buffer of whole lines, and nothing per
line is kept beyond a few example line numbers per problem kind.

Speed (see bench/README.md): rows are decoded by msgspec straight into typed structs of the
clean chat shape (``ChatRow``: only ``messages``, each with a known role, string or
text-part content and an optional 0/1 weight), which checks JSON, UTF-8 and types in C and
builds no dicts. A block of lines is decoded in one ``decode_lines`` call once a scan of its
newlines proves that lines and rows correspond one to one, and its rows are then summed and
checked with C-level ``map`` calls over the whole block instead of Python code per row. Any
line that does not decode into that shape, or whose row the fast checks do not find clean,
takes the slow path: stdlib ``json`` and full checks, which is the reference for what is
valid and what each problem says. msgspec is never more lenient than stdlib ``json`` (tests
hold it to that), so the fast path only skips work and never changes a verdict.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import accumulate, chain
from operator import countOf, sub
from pathlib import Path
from typing import Any

from pipeline.dataset.convert import CONVERSIONS
from pipeline.dataset.inspection import Conversion, InspectionReport, Problem, ProblemGroup, Shape, excerpt
from pipeline.dataset.rows import (
    CHAT,
    CONTENT,
    DECODE,
    FIRST,
    KINDS,
    LAST,
    MESSAGES,
    ROLE,
    WEIGHT,
    ChatRow,
    Part,
    check_row,
    has_lone_surrogate,
    kind_of,
    row_stats,
    shape_of,
    text_chars,
)
from pipeline.dataset.tokens import (
    TOKEN_METHOD,
    estimate_tokens,
    estimate_tokens_many,
)
from pipeline.domain.limits import MAX_SAMPLES, MIN_SAMPLES

_BLANK = b" \t\r"
_BOM = b"\xef\xbb\xbf"
# The longest line read: a chat row of a 256k-token context is ~1 MB; anything far longer
# is not a row (a file without line breaks) and must not be held in memory whole.
MAX_LINE = 16 << 20
# 256 KiB: the strings decoded from one block are still in the CPU cache when the block's
# rows are summed; 1 to 4 MiB blocks measured 8 to 25% slower to decode.
_BLOCK = 1 << 18


@dataclass
class _Totals:
    """Running totals of one scan; the fast path adds to them in bulk, the slow path per row."""

    limit: int
    context_tokens: int
    nonblank: int = 0
    problems: dict[str, ProblemGroup] = field(default_factory=dict)
    roles: dict[str, int] = field(default_factory=dict)
    shapes: dict[Shape, int] = field(default_factory=dict)
    conversions: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    assistant: int = 0
    tokens: int = 0
    max_tokens: int = 0
    longest_line: int | None = None  # where the longest sample is (for the context-length warning)
    weighted: int = 0
    unweighted: int = 0
    unweighted_lines: list[int] = field(default_factory=list)

    def problem(self, kind: str, line: int, message: str, *, text: str | None = None, pos: int | None = None) -> None:
        group = self.problems.get(kind)
        if group is None:
            title, blocking = KINDS[kind]
            group = ProblemGroup(kind=kind, title=title, blocking=blocking, count=0)
            self.problems[kind] = group
        group.count += 1
        if len(group.examples) < self.limit:
            shown, caret = excerpt(text, pos) if text is not None and pos is not None else (None, None)
            group.examples.append(Problem(line=line, message=message, excerpt=shown, caret=caret))

    def add(self, line: int, roles: dict[str, int], chars: int, messages: int) -> None:
        self.samples += 1
        for role, n in roles.items():
            self.roles[role] = self.roles.get(role, 0) + n
        self.assistant += roles.get("assistant", 0)
        tokens = estimate_tokens(chars, messages)
        self.tokens += tokens
        if tokens > self.max_tokens:
            self.max_tokens, self.longest_line = tokens, line
        if tokens > self.context_tokens:
            self.problem("over_context", line, f"~{tokens} tokens > {self.context_tokens}")

    def slow(self, line: int, raw: bytes) -> None:
        """A line the fast path did not take: decode it with the reference decoder and name every problem."""
        obj = self._decode(line, raw)
        if obj is None:
            return
        shape = shape_of(obj)
        self.shapes[shape] = self.shapes.get(shape, 0) + 1
        self._weight(line, obj)
        found: list[tuple[str, str]] = []
        row = check_row(obj, found)
        kinds = dict(found)  # one problem per kind per line, so counts are rows
        for kind, message in found:
            if kinds.pop(kind, None) is not None:
                self.problem(kind, line, message)
        if row is not None and not any(KINDS[kind][1] for kind, _ in found):
            for kind in row.conversions:
                self.conversions[kind] = self.conversions.get(kind, 0) + 1
            self.add(line, row.roles, row.chars, row.messages)

    def _decode(self, line: int, raw: bytes) -> dict[str, Any] | None:
        """The line as a JSON object, or None with its problem recorded."""
        try:
            obj = DECODE(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            where = f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
            self.problem("non_utf8", line, where)
            return None
        except json.JSONDecodeError as exc:
            self.problem("invalid_json", line, f"{exc.msg} at column {exc.colno}", text=exc.doc, pos=exc.pos)
            return None
        except (ValueError, RecursionError) as exc:  # NaN, huge ints, absurd nesting
            self.problem("invalid_json", line, str(exc) or type(exc).__name__)
            return None
        if not isinstance(obj, dict):
            self.problem("not_object", line, f"the line is {kind_of(obj)}")
            return None
        if has_lone_surrogate(obj):
            self.problem("lone_surrogate", line, "an escape such as \\ud800 without its pair")
            return None
        return obj

    def _weight(self, line: int, obj: dict[str, Any]) -> None:
        """Count the row as weighted or not (a file must be one or the other), and check the weight."""
        if "weight" not in obj:
            self.unweighted += 1
            if len(self.unweighted_lines) < self.limit:
                self.unweighted_lines.append(line)
            return
        self.weighted += 1
        w = obj["weight"]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            self.problem("bad_sample_weight", line, f"weight is {kind_of(w)}")


class _Scan:
    """The fast path of one scan: clean rows are summed here, everything else goes to ``t.slow``."""

    def __init__(self, t: _Totals, fast: bool) -> None:
        self.t, self.fast = t, fast
        self.nonblank = self.clean = self.system = self.user = self.assistant = 0
        self.tokens = self.max_tokens = 0
        self.longest_line: int | None = None

    def block(self, buf: bytearray, view: memoryview, stop: int, lineno: int) -> int:
        """Check the lines of ``buf[:stop]`` (the first is line ``lineno + 1``); return the
        number of the last one."""
        if not self.fast:
            return self.lines(buf, view, stop, lineno)
        # decode_lines takes any whitespace between rows, so first prove that every newline
        # sits between "}" and "{": inside a JSON value "}" is never followed by "{", so
        # then no row spans lines, and as many rows as lines means one row per line.
        find, startswith = buf.find, buf.startswith
        newlines = 0
        pos = find(b"\n", 0, stop)
        while 0 < pos < stop - 1:
            if buf[pos - 1] != 0x7D or buf[pos + 1] != 0x7B:  # not "}\n{": maybe "}\r\n{"
                if pos < 2 or not startswith(b"}\r\n{", pos - 2, stop):
                    return self.lines(buf, view, stop, lineno)
            newlines += 1
            pos = find(b"\n", pos + 1, stop)
        if pos >= 0:  # an empty line first or last
            return self.lines(buf, view, stop, lineno)
        try:
            rows = CHAT.decode_lines(view[:stop])
        except ValueError:  # msgspec.DecodeError and UnicodeDecodeError are ValueErrors
            return self.lines(buf, view, stop, lineno)
        if len(rows) != newlines + 1:
            return self.lines(buf, view, stop, lineno)
        self.nonblank += len(rows)
        if not self.bulk(rows, lineno + 1):
            self.careful(rows, buf, view, stop, lineno + 1)
        return lineno + len(rows)

    def bulk(self, rows: list[ChatRow], first: int) -> bool:
        """Add a block of decoded rows if every one is clean; False (nothing added) if not.

        Each step is one C-level pass over the block; Python code runs only for messages
        with text parts and rows over the context budget. Rows that end with a trainable
        assistant turn (weight 1) and have a system message only first are clean, which is
        the common case; a block with any other row is checked row by row.
        """
        msgs = list(map(MESSAGES, rows))
        counts = list(map(len, msgs))
        if 0 in counts:
            return False
        last = list(map(LAST, msgs))
        if countOf(map(ROLE, last), "assistant") != len(last) or 0 in map(WEIGHT, last):
            return False
        flat = list(chain.from_iterable(msgs))
        roles = list(map(ROLE, flat))
        system = roles.count("system")
        if system and countOf(map(ROLE, map(FIRST, msgs)), "system") != system:
            return False
        chars = _chars(list(map(CONTENT, flat)))
        # Characters per row: running totals over the messages, read at each row's end.
        running = list(accumulate(chars, initial=0))
        ends = list(map(running.__getitem__, accumulate(counts)))
        tokens = estimate_tokens_many(list(map(sub, ends, [0, *ends[:-1]])), counts)
        assistant = roles.count("assistant")
        self.clean += len(rows)
        self.assistant += assistant
        self.system += system
        self.user += len(roles) - assistant - system
        self.tokens += sum(tokens)
        top = max(tokens)
        if top > self.max_tokens:
            self.max_tokens, self.longest_line = top, first + tokens.index(top)
        t = self.t
        if top > t.context_tokens:
            for line, n in enumerate(tokens, first):
                if n > t.context_tokens:
                    t.problem("over_context", line, f"~{n} tokens > {t.context_tokens}")
        room = t.limit - len(t.unweighted_lines)
        if room > 0:  # rows without a sample weight, for the report
            t.unweighted_lines.extend(range(first, first + min(room, len(rows))))
        return True

    def careful(self, rows: list[ChatRow], buf: bytearray, view: memoryview, stop: int, first: int) -> None:
        """Add decoded rows one by one; a row that is not clean goes to the slow path."""
        starts = [0]
        pos = buf.find(b"\n", 0, stop)
        while pos >= 0:
            starts.append(pos + 1)
            pos = buf.find(b"\n", pos + 1, stop)
        starts.append(stop + 1)
        for i, row in enumerate(rows):
            stats = row_stats(row)
            if stats is None:
                self.t.slow(first + i, bytes(view[starts[i] : starts[i + 1] - 1]))
            else:
                self.add(first + i, *stats)

    def lines(self, buf: bytearray, view: memoryview, stop: int, lineno: int) -> int:
        """Check the lines of ``buf[:stop]`` one at a time (blank lines, a bad line, or
        ``fast`` off); return the number of the last one."""
        find, t, fast = buf.find, self.t, self.fast
        pos = 0
        while True:
            end = find(b"\n", pos, stop)
            if end < 0:
                end = stop
            lineno += 1
            if (pos == end or buf[pos] != 0x7B) and not buf[pos:end].strip(_BLANK):
                pass  # blank lines are harmless and not counted
            else:
                self.nonblank += 1
                raw = view[pos:end]
                stats = None
                if fast:
                    try:
                        stats = row_stats(CHAT.decode(raw))
                    except ValueError:
                        pass
                if stats is None:
                    t.slow(lineno, bytes(raw))
                else:
                    self.add(lineno, *stats)
            if end == stop:
                return lineno
            pos = end + 1

    def add(self, line: int, messages: int, assistant: int, system: int, chars: int) -> None:
        self.clean += 1
        self.assistant += assistant
        self.system += system
        self.user += messages - assistant - system
        tokens = estimate_tokens(chars, messages)
        self.tokens += tokens
        if tokens > self.max_tokens:
            self.max_tokens, self.longest_line = tokens, line
        t = self.t
        if tokens > t.context_tokens:
            t.problem("over_context", line, f"~{tokens} tokens > {t.context_tokens}")
        if len(t.unweighted_lines) < t.limit:  # rows without a sample weight, for the report
            t.unweighted_lines.append(line)


def _chars(contents: list[str | list[Part]]) -> list[int]:
    """The characters of each message's content: one C-level pass, and Python code only for
    the contents that are text parts (they count their texts' characters)."""
    chars = list(map(len, contents))
    if list in map(type, contents):
        kinds = list(map(type, contents))
        i = -1
        for _ in range(kinds.count(list)):
            i = kinds.index(list, i + 1)
            chars[i] = text_chars(contents[i])
    return chars


def _drop_long_line(buf: bytearray, end: int) -> int:
    """While skipping a line longer than MAX_LINE: move what follows its end to the front of
    ``buf[:end]`` and return its length, or -1 when ``buf[:end]`` is still inside the line."""
    nl = buf.find(b"\n", 0, end)
    if nl < 0:
        return -1
    end -= nl + 1
    buf[:end] = buf[nl + 1 : nl + 1 + end]
    return end


def _full_buffer(scan: _Scan, buf: bytearray, view: memoryview, lineno: int) -> tuple[memoryview, int, bool]:
    """``buf`` is full and holds no line end: (the view, the line number, whether to skip the
    rest of the line). A line over MAX_LINE is a problem and skipped; a shorter one doubles the buffer."""
    if len(buf) >= MAX_LINE:
        scan.nonblank += 1
        scan.t.problem("line_too_long", lineno + 1, f"more than {MAX_LINE // (1 << 20)} MB without a line break")
        return view, lineno + 1, True
    view.release()
    buf.extend(bytes(len(buf)))
    return memoryview(buf), lineno, False


def _scan(path: Path, limit: int, context_tokens: int, *, fast: bool = True, block: int = _BLOCK) -> _Totals:
    """Read ``path`` once into one reused buffer; ``fast=False`` sends every line to the
    slow path (the reference the fast path is tested against)."""
    t = _Totals(limit=limit, context_tokens=context_tokens)
    scan = _Scan(t, fast)
    buf = bytearray(block)
    view = memoryview(buf)
    filled = lineno = 0  # buf[:filled] holds the start of a line that has not ended yet
    skipping = False  # inside a line longer than MAX_LINE: dropped as it is read, never held
    with path.open("rb", buffering=0) as f:
        while got := f.readinto(view[filled:]):
            end = filled + got
            if lineno == 0 and filled == 0 and buf.startswith(_BOM):
                buf[:3] = b"   "  # Windows editors start UTF-8 files with a BOM: it is not data
            if skipping:
                end = _drop_long_line(buf, end)
                if end < 0:
                    continue  # still inside the long line: what was read is dropped
                filled, skipping = 0, False
            cut = buf.rfind(b"\n", filled, end)
            if cut < 0:
                filled = end
                if filled == len(buf):
                    view, lineno, skipping = _full_buffer(scan, buf, view, lineno)
                    filled = 0 if skipping else filled
                continue
            lineno = scan.block(buf, view, cut, lineno)
            filled = end - cut - 1
            buf[:filled] = buf[cut + 1 : end]
    if filled:  # the last line has no newline
        scan.block(buf, view, filled, lineno)
    view.release()
    _merge(t, scan)
    return t


def _merge(t: _Totals, scan: _Scan) -> None:
    """Add what the fast path summed to the slow path's totals."""
    t.nonblank = scan.nonblank
    t.samples += scan.clean
    t.unweighted += scan.clean
    t.assistant += scan.assistant
    t.tokens += scan.tokens
    first = (scan.max_tokens, -(scan.longest_line or 0)) > (t.max_tokens, -(t.longest_line or 0))
    if scan.longest_line is not None and first:  # the longest, and on a tie the earliest line
        t.max_tokens, t.longest_line = scan.max_tokens, scan.longest_line
    t.shapes[Shape.CHAT] = t.shapes.get(Shape.CHAT, 0) + scan.clean
    for role, count in (("system", scan.system), ("user", scan.user), ("assistant", scan.assistant)):
        if count:
            t.roles[role] = t.roles.get(role, 0) + count


def inspect_dataset(path: str | Path, *, max_examples_per_kind: int = 5, context_tokens: int = 32768) -> InspectionReport:
    """Read ``path`` once; report samples, roles, estimated tokens and problems by line."""
    p = Path(path)
    return _report(p, p.stat().st_size, _scan(p, max_examples_per_kind, context_tokens))


def _report(p: Path, size: int, t: _Totals) -> InspectionReport:
    def file_problem(kind: str, title: str, count: int = 1, lines: list[int] | None = None) -> None:
        examples = [Problem(line=n, message="no `weight`") for n in lines or []]
        t.problems[kind] = ProblemGroup(kind=kind, title=title, blocking=KINDS[kind][1], count=count, examples=examples)

    if t.weighted and t.unweighted:  # all or none, so the rows without one are the wrong ones
        title = KINDS["partial_sample_weight"][0]
        file_problem("partial_sample_weight", title, t.unweighted, t.unweighted_lines)
    known = [(n, s is Shape.CHAT, s) for s, n in t.shapes.items() if s is not Shape.UNKNOWN and n]
    shape = max(known)[2] if known else Shape.UNKNOWN  # most rows win; ties go to chat
    if t.nonblank == 0:
        shape = Shape.EMPTY
        file_problem("empty_file", KINDS["empty_file"][0])
    elif t.samples < MIN_SAMPLES:
        file_problem(
            "too_few_examples",
            f"fewer than {MIN_SAMPLES} examples ({t.samples} trainable; the platform minimum is {MIN_SAMPLES})",
        )
    elif t.samples > MAX_SAMPLES:
        file_problem(
            "too_many_examples",
            f"more than {MAX_SAMPLES:,} examples ({t.samples:,}; the platform maximum)",
        )
    return InspectionReport(
        path=str(p),
        bytes=size,
        lines=t.nonblank,
        samples=t.samples,
        shape=shape,
        role_counts=dict(sorted(t.roles.items())),
        avg_turns=round(t.assistant / t.samples, 3) if t.samples else 0.0,
        tokens=t.tokens,
        token_method=TOKEN_METHOD,
        max_sample_tokens=t.max_tokens,
        longest_line=t.longest_line,
        problems=[t.problems[k] for k in KINDS if k in t.problems],
        conversions=[
            Conversion(kind=k, description=CONVERSIONS[k], rows=t.conversions[k]) for k in CONVERSIONS if t.conversions.get(k)
        ],
    )
