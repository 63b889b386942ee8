"""The dataset inspector on real files: every problem kind by line, shapes, the bundled
datasets, fast path == slow path (per row and as whole reports), and flat memory."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from pipeline.dataset.inspection import InspectionReport, Shape
from pipeline.dataset.inspector import KINDS, inspect_dataset
from pipeline.dataset.tokens import estimate_tokens
from tests.paths import DATASETS
from tests.pipeline.dataset.inspect_cases import CASES, OK, group, msgs, write


def run(tmp_path: Path, rows: list[Any], **kw: Any) -> InspectionReport:
    return inspect_dataset(write(tmp_path, rows), **kw)


@pytest.mark.parametrize("row,kind,blocking", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_each_problem_kind_is_found_on_its_line(tmp_path: Path, row: Any, kind: str, blocking: bool) -> None:
    report = run(tmp_path, [OK, row, OK, OK])
    count, lines, is_blocking = group(report, kind)
    assert (count, lines, is_blocking) == (1, [2], blocking)
    assert KINDS[kind][1] == blocking
    assert report.blocking and not report.trainable
    assert report.samples == 3  # the bad row is not a sample


def test_sample_weight_rules(tmp_path: Path) -> None:
    report = run(tmp_path, [{**OK, "weight": 1.5}, {**OK, "weight": "x"}, OK, {**OK, "weight": -1}, OK])
    assert group(report, "bad_sample_weight") == (1, [2], True)
    # Some rows have a weight, so all must: lines 3 and 5 are the ones without.
    assert group(report, "partial_sample_weight") == (2, [3, 5], True)
    all_weighted = run(tmp_path, [{**OK, "weight": w} for w in (1, 0.5, -2.0)])
    assert all_weighted.trainable and all_weighted.samples == 3


def test_over_context_is_a_warning_with_its_line(tmp_path: Path) -> None:
    long = msgs(("user", "x" * 400), ("assistant", "y"))
    report = run(tmp_path, [OK, OK, long, OK], context_tokens=50)
    assert group(report, "over_context") == (1, [3], False)
    assert report.trainable and report.samples == 4
    assert report.max_sample_tokens == estimate_tokens(401, 2)


def test_valid_variants_are_not_problems(tmp_path: Path) -> None:
    rows = [
        msgs(("system", "s"), ("user", "q"), ("assistant", "a")),
        msgs(("user", [{"type": "text", "text": "q1"}, {"type": "text", "text": "q2"}]), ("assistant", "a")),
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 1}]},
        {
            "messages": [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "assistant", "content": "done", "reasoning_content": "think"},
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
        },
        '{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}\r',
    ]
    report = run(tmp_path, rows)
    assert report.problems == [] and report.samples == 5
    assert report.role_counts == {"assistant": 6, "system": 1, "user": 5}
    assert report.avg_turns == pytest.approx(6 / 5)


def test_blank_lines_are_ignored_but_keep_line_numbers(tmp_path: Path) -> None:
    report = run(tmp_path, ["", OK, "   ", "\t\r", "{bad", OK, OK])
    assert report.lines == 4 and report.samples == 3
    assert group(report, "invalid_json")[1] == [5]


def test_examples_are_capped_but_counted(tmp_path: Path) -> None:
    report = run(tmp_path, [OK, OK, OK] + ["nope"] * 12, max_examples_per_kind=3)
    assert group(report, "invalid_json") == (12, [4, 5, 6], True)


def test_empty_and_too_small_files(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    empty = inspect_dataset(tmp_path / "empty.jsonl")
    assert empty.shape is Shape.EMPTY and [g.kind for g in empty.problems] == ["empty_file"]
    blank = run(tmp_path, ["", "  "])
    assert blank.shape is Shape.EMPTY and blank.blocking
    two = run(tmp_path, [OK, OK])
    assert [g.kind for g in two.problems] == ["too_few_examples"] and two.blocking


def test_shapes_and_conversion_offers(tmp_path: Path) -> None:
    qa = run(tmp_path, [{"question": f"q{i}", "answer": i} for i in range(4)])
    assert (qa.shape, qa.samples, qa.trainable) == (Shape.QUESTION_ANSWER, 4, True)
    assert [(c.kind, c.rows) for c in qa.conversions] == [("question_answer_to_chat", 4)]
    assert qa.role_counts == {"assistant": 4, "user": 4}
    pc = run(tmp_path, [{"prompt": "p", "completion": "c"}] * 3)
    assert pc.shape is Shape.PROMPT_COMPLETION and pc.conversions[0].kind == "prompt_completion_to_chat"
    truth = run(tmp_path, [msgs(("user", "2+2?"), ground_truth="4"), msgs(("user", "q"), answer=7), OK])
    assert truth.trainable and truth.samples == 3
    assert [(c.kind, c.rows) for c in truth.conversions] == [("ground_truth_to_assistant", 2)]
    tool = {
        "messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "42"}, {"role": "assistant", "content": "a"}]
    }
    tools = run(tmp_path, [tool, OK, OK])
    assert tools.trainable and [(c.kind, c.rows) for c in tools.conversions] == [("tool_role", 1)]
    junk = run(tmp_path, ["1", "2", "3"])
    assert junk.shape is Shape.UNKNOWN and junk.blocking


def test_bundled_datasets() -> None:
    sql = inspect_dataset(DATASETS / "text2sql_dataset.jsonl")
    assert (sql.shape, sql.samples, sql.trainable, sql.problems) == (Shape.CHAT, 100, True, [])
    assert sql.role_counts == {"assistant": 100, "system": 100, "user": 100}
    assert sql.tokens > 0 and sql.token_method.startswith("estimate")
    gsm = inspect_dataset(DATASETS / "gsm8k_200.jsonl")
    assert (gsm.shape, gsm.samples, gsm.trainable) == (Shape.QUESTION_ANSWER, 200, True)
    assert [(c.kind, c.rows) for c in gsm.conversions] == [("question_answer_to_chat", 200)]
    small = inspect_dataset(DATASETS / "chat_minimal.jsonl")
    assert (small.samples, small.blocking) == (2, True)
    assert [g.kind for g in small.problems] == ["too_few_examples"]


def test_memory_stays_flat_on_a_large_file(tmp_path: Path) -> None:
    row = json.dumps(msgs(("system", "s" * 200), ("user", "q " * 400), ("assistant", "a " * 800))).encode()
    path = tmp_path / "big.jsonl"
    with path.open("wb") as f:
        chunk = (row + b"\n") * 1000
        while f.tell() < 50_000_000:
            f.write(chunk)
    tracemalloc.start()
    try:
        report = inspect_dataset(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.trainable and report.samples > 10_000
    assert peak < 30_000_000, f"peak {peak / 1e6:.1f} MB"


def test_a_byte_order_mark_at_the_start_is_not_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(OK) + "\n").encode() * 3)
    report = inspect_dataset(path)
    assert report.problems == [] and report.samples == 3


def test_lone_surrogates_and_infinite_weights_are_named_by_line(tmp_path: Path) -> None:
    lines = [json.dumps(OK)] * 3 + [
        '{"messages": [{"role": "user", "content": "a\\ud800"}, {"role": "assistant", "content": "b"}]}'
    ]
    lines.append('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 1e400}]}')
    path = tmp_path / "odd.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = inspect_dataset(path)
    assert group(report, "lone_surrogate") == (1, [4], True)
    assert group(report, "bad_message_weight")[:2] == (1, [5])


def test_a_line_without_end_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "blob.jsonl"
    with path.open("wb") as f:
        f.write((json.dumps(OK) + "\n").encode() * 3)
        f.write(b'{"messages": "' + b"x" * (40 << 20) + b'"}\n')  # 40 MB on one line
        f.write((json.dumps(OK) + "\n").encode())
    tracemalloc.start()
    try:
        report = inspect_dataset(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert group(report, "line_too_long") == (1, [4], True) and report.samples == 4
    assert peak < 32 << 20  # the 40 MB line was never held whole (the buffer stops growing at 16 MB)
