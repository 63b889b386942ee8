"""pipeline.domain.fsio: atomic writes leave the old file or the new one, never half; JSONL read leniently."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.domain.fsio import atomic_output, json_lines, write_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary_beside_it(tmp_path: Path) -> None:
    dest = tmp_path / "plan.json"
    write_atomic(dest, "old")
    with pytest.raises(RuntimeError), atomic_output(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert dest.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["plan.json"]


def test_json_lines_passes_over_what_it_cannot_read_and_stops_at_the_line_limit(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\nnot json\n{"b": "\xff"}\n\n[3]\n{"c": 4}\n')
    assert list(json_lines(path)) == [{"a": 1}, {"b": "\ufffd"}, [3], {"c": 4}]
    assert list(json_lines(path, lines=3)) == [{"a": 1}, {"b": "\ufffd"}]  # a bad line still counts as a line
    assert list(json_lines(tmp_path / "missing.jsonl")) == []
