"""The inspector's fast path (msgspec, whole blocks) gives exactly the slow path's verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.dataset.inspection import InspectionReport
from pipeline.dataset.inspector import CHAT, _report, _scan, check_row, inspect_dataset, row_stats
from pipeline.dataset.tokens import estimate_tokens, estimate_tokens_many
from tests.pipeline.dataset.inspect_cases import CASES, OK, group, msgs, write

# Hypothesis: rows close to the chat format, so both clean and slightly-off rows occur.
_text = st.text(max_size=30)
_role = st.one_of(st.sampled_from(["system", "user", "assistant", "tool", "bot", 7, None]), st.lists(st.just("user"), max_size=1))
_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": _text}),
    st.just({"type": "image_url"}),
    st.just({"type": "text", "text": "x", "extra": 1}),
)
_content = st.one_of(_text, st.none(), st.integers(), st.lists(_part, max_size=2))
_message = st.one_of(
    st.fixed_dictionaries({"role": _role, "content": _content}),
    st.fixed_dictionaries({"role": _role, "content": _content, "weight": st.sampled_from([0, 1, 2, 1.0, True])}),
    st.fixed_dictionaries({"role": _role, "content": _content, "reasoning_content": _text}),
    st.just("not a message"),
)
_row = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(_message, max_size=5)}),
    st.fixed_dictionaries({"messages": st.lists(_message, max_size=3), "weight": st.integers()}),
    st.fixed_dictionaries({"messages": st.lists(_message, max_size=3), "tools": st.just([])}),
)


def fast_stats(line: bytes) -> tuple[int, int, int, int] | None:
    """What the fast path makes of one line: its row's stats, or None for the slow path."""
    try:
        return row_stats(CHAT.decode(line))
    except ValueError:
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_row, st.booleans())
def test_fast_path_agrees_with_slow_path(row: dict[str, Any], compact: bool) -> None:
    line = json.dumps(row, ensure_ascii=compact, separators=(",", ":") if compact else None)
    fast = fast_stats(line.encode())
    found: list[tuple[str, str]] = []
    slow = check_row(json.loads(line), found)
    if fast is not None:  # the fast path may only accept rows the slow path finds clean
        assert slow is not None and found == [] and "weight" not in row and slow.conversions == []
        messages, assistant, system, chars = fast
        roles = {"assistant": assistant, "system": system, "user": messages - assistant - system}
        assert {r: n for r, n in roles.items() if n} == slow.roles
        assert (chars, messages) == (slow.chars, slow.messages)


_fragments = st.sampled_from(
    [
        b"{",
        b"}",
        b"[",
        b"]",
        b'"',
        b"\\",
        b"\\u",
        b"00e9",
        b"d800",
        b"dc00",
        b",",
        b":",
        b" ",
        b"\t",
        b"\n",
        b"\x00",
        b"\x7f",
        b"\xff",
        b"\xc3\xa9",
        b"\xed\xa0\x80",
        b"\xf0\x9f\x98\x80",
        b'"a"',
        b"1",
        b"-",
        b"e5",
        b".5",
        b"NaN",
        b"true",
        b"null",
        b'"role"',
    ]
)


@settings(max_examples=600, deadline=None)
@given(st.lists(_fragments, max_size=12))
def test_msgspec_is_never_more_lenient_than_stdlib(parts: list[bytes]) -> None:
    raw = b"".join(parts)
    try:
        value = msgspec.json.decode(raw)
    except ValueError:
        pass
    else:
        assert json.loads(raw.decode("utf-8")) == value
    # The same bytes as a message's content, through the typed decoder the inspector uses.
    line = b'{"messages":[{"role":"user","content":"' + raw + b'"},{"role":"assistant","content":"a"}]}'
    fast = fast_stats(line)
    if fast is not None:
        content = json.loads(line.decode("utf-8"))["messages"][0]["content"]
        assert fast == (2, 1, 0, len(content) + 1)


def test_duplicate_keys_count_the_last_one_as_stdlib_does() -> None:
    assert fast_stats(b'{"messages":[{"role":"user","content":"q","role":"assistant"}]}') == (1, 1, 0, 1)
    assert fast_stats(b'{"messages":[],"messages":[{"role":"assistant","content":"ab"}]}') == (1, 1, 0, 2)
    assert fast_stats(b'{"messages":[{"role":"assistant","content":"ab"}],"messages":[]}') is None


def test_token_estimates_in_bulk_are_the_same_numbers() -> None:
    chars = [0, 1, 3, 4, 5, 399, 400, 401, 10**9 + 7]
    messages = [0, 1, 2, 3, 1, 2, 9, 1, 400]
    assert estimate_tokens_many(chars, messages) == [estimate_tokens(c, n) for c, n in zip(chars, messages, strict=False)]


def report_both_ways(path: Path, block: int, **kw: int) -> tuple[InspectionReport, InspectionReport]:
    size = path.stat().st_size
    limit, context = kw.get("limit", 5), kw.get("context", 32768)
    fast = _report(path, size, _scan(path, limit, context, block=block))
    slow = _report(path, size, _scan(path, limit, context, fast=False))
    return fast, slow


def pretty(row: Any) -> bytes:
    """One row over several lines, as json.dumps(indent=...) writes it: invalid JSONL."""
    return json.dumps(row, indent=1).encode()


U, A, S = ("user", "q"), ("assistant", "a"), ("system", "s")


# Lines for the whole-file test: clean rows of each shape the fast path takes, rows it must
# leave to the slow path, blank lines, CRLF, and lines that are not one row each.
_LINES: list[bytes] = [
    json.dumps(OK).encode(),
    json.dumps(OK, separators=(",", ":")).encode(),
    json.dumps(msgs(S, U, A, U, A)).encode(),
    json.dumps(msgs(S, U, ("assistant", "x" * 300))).encode(),
    json.dumps(msgs(U, ("assistant", [{"type": "text", "text": "ab"}, {"type": "text", "text": "c\u00e9"}]))).encode(),
    json.dumps(
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a", "weight": 0},
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "b", "weight": 1},
            ]
        }
    ).encode(),
    json.dumps(msgs(U, A, U)).encode(),  # clean, but does not end with the assistant
    json.dumps(msgs(("user", "caf\u00e9 \U0001f600"), A), ensure_ascii=False).encode(),
    json.dumps(OK).encode() + b"\r",
    b"  " + json.dumps(OK).encode() + b" ",
    *(
        json.dumps(row).encode() if not isinstance(row, (str, bytes)) else row if isinstance(row, bytes) else row.encode()
        for row, _, _ in CASES
    ),
    json.dumps(msgs(U, A, ground_truth="x")).encode(),
    json.dumps({**OK, "weight": 1}).encode(),
    json.dumps(msgs(U, A)).encode() + b" " + json.dumps(OK).encode(),  # two rows on one line
    pretty(OK),  # one row over four lines
    b'{"messages":[{"role":"user","content":"\\ud800"},{"role":"assistant","content":"a"}]}',  # lone surrogate
    b"",
    b"   ",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(range(len(_LINES))), min_size=1, max_size=40),
    st.sampled_from([1, 7, 64, 300, 1 << 18]),
    st.booleans(),
    st.sampled_from([(5, 32768), (2, 40)]),
)
@example(picks=[0, 30], block=1, newline_at_end=False, kw=(5, 32768))  # equally long rows on both paths: the first is the longest
def test_fast_and_slow_path_give_identical_reports(
    tmp_path_factory: pytest.TempPathFactory, picks: list[int], block: int, newline_at_end: bool, kw: tuple[int, int]
) -> None:
    path = tmp_path_factory.mktemp("mixed") / "data.jsonl"
    path.write_bytes(b"\n".join(_LINES[i] for i in picks) + (b"\n" if newline_at_end else b""))
    fast, slow = report_both_ways(path, block, limit=kw[0], context=kw[1])
    assert fast == slow


def test_rows_that_do_not_fill_one_line_each_are_invalid_lines(tmp_path: Path) -> None:
    # Two rows on line 3 and one row over lines 4-5: as many rows as lines in the file, but
    # neither line 3 nor lines 4 and 5 are JSON lines, whatever a whole-block decode makes of them.
    one = json.dumps(OK).encode()
    lines = [one, one, one + b" " + one, one.replace(b"[{", b"[\n{"), one, one]
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = inspect_dataset(path)
    assert group(report, "invalid_json") == (3, [3, 4, 5], True)
    assert report.samples == 4
    assert report == report_both_ways(path, 1 << 18)[1]


def test_long_lines_and_tiny_blocks(tmp_path: Path) -> None:
    rows = [msgs(U, ("assistant", "x" * n)) for n in (1, 5000, 3, 70000, 2)]
    path = write(tmp_path, rows)
    for block in (1, 16, 4096):
        fast, slow = report_both_ways(path, block)
        assert fast == slow and fast.samples == 5 and fast.problems == []
        assert fast.max_sample_tokens == estimate_tokens(70001, 2)
