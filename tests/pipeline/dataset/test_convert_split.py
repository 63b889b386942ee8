"""Conversion into chat and the deterministic train/test/HP split, on real temp files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.dataset.convert import convert_dataset
from pipeline.dataset.inspection import Shape
from pipeline.dataset.inspector import inspect_dataset
from pipeline.dataset.split import SplitRule, split_dataset, split_sizes
from tests.paths import DATASETS


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_gsm8k_converts_to_valid_chat_deterministically(tmp_path: Path) -> None:
    src = DATASETS / "gsm8k_200.jsonl"
    before = digest(src)
    first = convert_dataset(src, tmp_path / "a.jsonl")
    second = convert_dataset(src, tmp_path / "b.jsonl")
    assert digest(src) == before  # the original is never touched
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (first.rows_written, first.rows_skipped) == (200, 0) and first == dataclasses.replace(second, dst=first.dst)
    assert first.converted == {"question_answer_to_chat": 200}
    report = inspect_dataset(tmp_path / "a.jsonl")
    assert (report.shape, report.samples, report.problems, report.conversions) == (Shape.CHAT, 200, [], [])
    row = read(tmp_path / "a.jsonl")[0]
    original = json.loads(src.read_text().splitlines()[0])
    assert row["messages"] == [
        {"role": "user", "content": original["question"]},
        {"role": "assistant", "content": str(original["answer"])},
    ]
    assert row["ground_truth"] == str(original["answer"])


def test_each_conversion(tmp_path: Path) -> None:
    rows = [
        {"question": "2+2?", "answer": 4, "id": "q1"},
        {"prompt": "Say hi", "completion": "hi"},
        {"messages": [{"role": "user", "content": "3+3?"}], "ground_truth": "6"},
        {"messages": [{"role": "user", "content": "1+1?"}], "answer": 2},
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": "{}"}}],
                },
                {"role": "tool", "name": "w", "content": "sunny"},
                {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "20C"}]},
                {"role": "assistant", "content": "Sunny, 20C."},
            ],
            "tools": [{"type": "function", "function": {"name": "w"}}],
        },
        "not json",
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        '{"question": "q", "answer": NaN}',
        '{"question": "q", "answer": 1e400}',
    ]
    result = convert_dataset(write(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl")
    assert (result.rows_written, result.rows_skipped, result.skipped_lines) == (6, 3, [6, 8, 9])
    assert result.converted == {
        "question_answer_to_chat": 1,
        "prompt_completion_to_chat": 1,
        "ground_truth_to_assistant": 2,
        "tool_role": 1,
    }
    qa, pc, gt, ans, tool, plain = read(tmp_path / "out.jsonl")
    assert qa == {
        "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
        "ground_truth": "4",
        "id": "q1",
    }
    assert pc["messages"][1] == {"role": "assistant", "content": "hi"} and pc["ground_truth"] == "hi"
    assert gt["messages"][-1] == {"role": "assistant", "content": "6"} and gt["ground_truth"] == "6"
    assert ans["messages"][-1] == {"role": "assistant", "content": "2"} and ans["ground_truth"] == "2"
    assert [m["role"] for m in tool["messages"]] == ["user", "assistant", "user", "assistant"]
    assert tool["messages"][2]["content"] == "Tool result (w):\nsunny\n\nTool result (c2):\n20C"
    assert plain == rows[6]
    report = inspect_dataset(tmp_path / "out.jsonl")
    assert report.trainable and report.samples == 6 and report.conversions == []


def test_only_the_chosen_conversions_apply(tmp_path: Path) -> None:
    rows = [
        {"question": "q", "answer": "a"},
        {"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]},
    ]
    result = convert_dataset(write(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl", ["tool_role"])
    assert result.converted == {"tool_role": 1}
    assert read(tmp_path / "out.jsonl")[0] == rows[0]
    with pytest.raises(ValueError, match="unknown conversion"):
        convert_dataset(tmp_path / "in.jsonl", tmp_path / "x.jsonl", ["nope"])
    with pytest.raises(ValueError, match="dst must differ"):
        convert_dataset(tmp_path / "in.jsonl", tmp_path / "in.jsonl")


@pytest.mark.parametrize(
    "n,expected",
    [
        (0, (0, 0, 0)),
        (2, (2, 0, 2)),
        (3, (3, 0, 3)),
        (4, (3, 1, 3)),
        (15, (14, 1, 14)),
        (100, (90, 10, 90)),
        (1_111, (1_000, 111, 1_000)),
        (5_000, (4_500, 500, 1_000)),
        (50_000, (49_000, 1_000, 1_000)),
    ],
)
def test_split_sizes_rule(n: int, expected: tuple[int, int, int]) -> None:
    assert split_sizes(n) == expected


def test_split_sizes_options() -> None:
    assert split_sizes(5_000, hp_samples=None) == (4_500, 500, 4_500)
    assert split_sizes(30, test_fraction=0.1) == (27, 3, 27)  # 0.1 * 30 is 3, not 2.999…
    assert split_sizes(100, test_fraction=0.5, max_test=20) == (80, 20, 80)
    with pytest.raises(ValueError):
        split_sizes(10, test_fraction=1.0)


def _rows(n: int) -> list[str]:
    return [
        json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]})
        for i in range(n)
    ]


def test_split_is_deterministic_disjoint_and_counted(tmp_path: Path) -> None:
    rows = _rows(2_500)
    src = write(tmp_path / "data.jsonl", [*rows[:10], "", *rows[10:]])  # a blank line is no sample
    a = split_dataset(src, out_dir=tmp_path / "a")
    split_dataset(src, out_dir=tmp_path / "b")
    for name in ("train", "test", "hp_train"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (tmp_path / "b" / f"{name}.jsonl").read_bytes()
    assert (a.samples, a.train, a.test, a.hp_train, a.hp_subsampled) == (2_500, 2_250, 250, 1_000, True)
    train = Path(a.train_path).read_text().splitlines()
    test = Path(a.test_path).read_text().splitlines()
    hp = Path(a.hp_train_path).read_text().splitlines()
    assert (len(train), len(test), len(hp)) == (2_250, 250, 1_000)
    assert not set(train) & set(test) and set(train) | set(test) == set(rows)
    assert set(hp) <= set(train)
    assert train == [r for r in rows if r in set(train)]  # file order is kept
    other = split_dataset(src, out_dir=tmp_path / "c", rule=SplitRule(seed=7))
    assert set(Path(other.test_path).read_text().splitlines()) != set(test)


def test_small_split_has_no_hp_file(tmp_path: Path) -> None:
    src = tmp_path / "data.jsonl"
    src.write_bytes("".join(r + "\r\n" for r in _rows(40)).encode())
    result = split_dataset(src, out_dir=tmp_path / "out")
    assert (result.train, result.test, result.hp_train, result.hp_subsampled) == (36, 4, 36, False)
    assert result.hp_train_path == result.train_path
    assert not (tmp_path / "out" / "hp_train.jsonl").exists()
    assert b"\r" not in Path(result.train_path).read_bytes()
    assert "10%" in result.rule and "seed 42" in result.rule
