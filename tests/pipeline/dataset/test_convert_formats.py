"""ShareGPT (`conversations` of `from`/`value`) and Alpaca (`instruction`/`input`/`output`) files:
`sftbot inspect` offers their conversion like the other shapes, names each problem by line
and by the file's own fields, and the conversion writes the chat rows the platforms train on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.dataset.convert import convert_dataset
from pipeline.dataset.inspection import Shape
from pipeline.dataset.inspector import inspect_dataset
from tests.bot.cli_support import clean_env, sftbot

SYSTEM = "Answer in one word."


def sharegpt(i: int) -> dict[str, Any]:
    return {
        "system": SYSTEM,
        "conversations": [{"from": "human", "value": f"Capital {i}?"}, {"from": "gpt", "value": f"City{i}"}],
        "id": f"row-{i}",
    }


def alpaca(i: int) -> dict[str, Any]:
    return {"instruction": "Add the numbers.", "input": f"{i} {i}", "output": str(2 * i)}


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def problems(report: Any) -> dict[str, list[tuple[int, str]]]:
    return {g.kind: [(p.line, p.message) for p in g.examples] for g in report.problems}


def test_sharegpt_rows_become_chat_with_the_system_first_and_other_fields_kept(tmp_path: Path) -> None:
    src = write(tmp_path / "sg.jsonl", [sharegpt(i) for i in range(4)])
    report = inspect_dataset(src)
    assert report.shape is Shape.SHAREGPT and report.trainable and report.samples == 4
    assert [(c.kind, c.rows) for c in report.conversions] == [("sharegpt_to_chat", 4)]
    assert report.role_counts == {"assistant": 4, "system": 4, "user": 4}
    result = convert_dataset(src, tmp_path / "out.jsonl")
    assert result.converted == {"sharegpt_to_chat": 4}
    first = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first == {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Capital 0?"},
            {"role": "assistant", "content": "City0"},
        ],
        "id": "row-0",
    }
    assert inspect_dataset(tmp_path / "out.jsonl").conversions == []  # the output is plain chat


def test_sharegpt_problems_name_the_line_the_turn_and_the_field(tmp_path: Path) -> None:
    bad_from = {"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "{}"}]}
    no_text = {"system": SYSTEM, "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": 7}]}
    rows = [sharegpt(1), bad_from, {"conversations": "hi"}, no_text, {"conversations": []}, sharegpt(2), sharegpt(3)]
    report = inspect_dataset(write(tmp_path / "sg.jsonl", rows))
    found = problems(report)
    assert found["unknown_role"] == [(2, "conversations turn 2 has from 'function_call'")]
    assert found["messages_not_list"] == [(3, "`conversations` is a string")]
    assert found["bad_content"] == [(4, "conversations turn 2 content is a number (7)")]
    assert found["empty_messages"] == [(5, "`conversations` is empty")]
    assert not report.trainable and report.samples == 3


def test_sharegpt_tool_results_are_converted_like_chat_tool_messages(tmp_path: Path) -> None:
    row = {
        "conversations": [{"from": "human", "value": "q"}, {"from": "observation", "value": "42"}, {"from": "gpt", "value": "a"}]
    }
    src = write(tmp_path / "sg.jsonl", [row] * 3)
    assert [c.kind for c in inspect_dataset(src).conversions] == ["sharegpt_to_chat", "tool_role"]
    convert_dataset(src, tmp_path / "out.jsonl")
    messages = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()[0])["messages"]
    assert [m["role"] for m in messages] == ["user", "user", "assistant"] and messages[1]["content"] == "Tool result:\n42"


def test_alpaca_rows_become_a_user_and_an_assistant_turn_with_history_and_ground_truth(tmp_path: Path) -> None:
    with_history = {**alpaca(5), "system": SYSTEM, "history": [["Hi", "Hello"]], "input": ""}
    src = write(tmp_path / "al.jsonl", [alpaca(1), alpaca(2), with_history])
    report = inspect_dataset(src)
    assert report.shape is Shape.ALPACA and report.trainable and report.samples == 3
    assert [(c.kind, c.rows) for c in report.conversions] == [("alpaca_to_chat", 3)]
    convert_dataset(src, tmp_path / "out.jsonl")
    first, _, last = (json.loads(ln) for ln in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines())
    assert first == {
        "messages": [{"role": "user", "content": "Add the numbers.\n\n1 1"}, {"role": "assistant", "content": "2"}],
        "ground_truth": "2",
    }
    assert [m["role"] for m in last["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert last["messages"][3]["content"] == "Add the numbers." and last["ground_truth"] == "10"


def test_alpaca_problems_name_the_line_and_the_field(tmp_path: Path) -> None:
    rows = [
        alpaca(1),
        {"instruction": "x", "output": None},
        {**alpaca(2), "history": [["only a question"]]},
        alpaca(3),
        alpaca(4),
    ]
    report = inspect_dataset(write(tmp_path / "al.jsonl", rows))
    assert problems(report)["bad_content"] == [
        (2, "`output` is null"),
        (3, "`history` item 1 is not a [question, answer] pair of texts"),
    ]
    assert not report.trainable and report.samples == 3


async def test_sftbot_inspect_offers_both_conversions(tmp_path: Path) -> None:
    for name, rows, kind in (
        ("sg", [sharegpt(i) for i in range(3)], "ShareGPT"),
        ("al", [alpaca(i) for i in range(3)], "Alpaca"),
    ):
        code, out, err = await sftbot("inspect", str(write(tmp_path / f"{name}.jsonl", rows)), env=clean_env())
        assert code == 0, err
        assert f"conversion offered: each {kind}" in out and "(3 rows)" in out and "=> can be trained on" in out
        code, out, _ = await sftbot("inspect", str(tmp_path / f"{name}.jsonl"), "--json", env=clean_env())
        shown = json.loads(out)
        assert code == 0 and shown["trainable"] and shown["conversions"][0]["rows"] == 3
