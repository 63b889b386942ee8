"""The result channel carries untrusted data: whatever an evaluator writes on it costs an
example or the batch, and run_evaluator still returns an EvalRun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.evaluation.sandbox.batch import run_evaluator
from pipeline.evaluation.sandbox.protocol import LoadFailed, Ready, Result, decode, scored
from tests.pipeline.evaluation.sandbox_support import FAST, PROTOCOL_FD, examples, write

BOMB = b"[" * 100_000


@pytest.mark.parametrize(
    "line",
    [
        BOMB,  # RecursionError in json.loads
        b'{"t": "ready", "containment": 5}',  # TypeError in the old parent
        b'{"t": "result", "index": 0, "score": ' + BOMB + b"]" * 100_000 + b', "reason": "", "error": null}',
        b"5",
        b'"ready"',
        b"[]",
        b'{"t": "result", "index": 0, "score": "1", "reason": "", "error": null}',
        b'{"t": "result", "index": true, "score": 1, "reason": "", "error": null}',
        b'{"t": "result", "index": 0, "score": 1.5, "reason": "", "error": null}',
        b'{"t": "result", "index": 0, "score": NaN, "reason": "", "error": null}',
        b'{"t": "result", "index": 0, "score": 1, "reason": ""}',
        b'{"t": "result", "index": 0, "score": 1, "reason": "", "error": null, "extra": 1}',
        b'{"t": "fatal", "error": ["x"]}',
        b'{"t": "ready"} trailing',
        b"\xff\xfe",
    ],
)
def test_anything_but_an_exact_protocol_message_decodes_to_none(line: bytes) -> None:
    assert decode(line) is None


def test_the_three_messages_decode_and_texts_are_cut_to_the_limit() -> None:
    assert decode(b'{"t": "ready"}') == Ready()
    assert decode(b'{"t": "fatal", "error": "boom"}') == LoadFailed(error="boom")
    msg = decode(json.dumps({"t": "result", "index": 3, "score": 1, "reason": "r" * 10_000, "error": None}).encode())
    assert msg == Result(index=3, score=1.0, reason="r" * 10_000, error=None)
    score = scored(msg, 3, cap=100)
    assert score is not None and score.score == 1.0 and len(score.reason) == 100
    assert scored(msg, 4, cap=100) is None  # another example's result is not this one's
    failed = scored(Result(index=3, score=None, reason="", error="e" * 10_000), 3, cap=50)
    assert failed is not None and failed.score is None and failed.error is not None and len(failed.error) == 50
    assert scored(Result(index=3, score=None, reason="", error=None), 3, cap=50) is None  # neither a score nor an error


HOSTILE = (
    PROTOCOL_FD
    + """
import json

BOMB = b"[" * 100_000

def evaluate(messages, ground_truth=None, **kwargs):
    what, fd = messages[-1]["content"], protocol_fd()
    if what == "bomb":
        os.write(fd, BOMB + b"\\n")
    elif what == "giant":
        os.write(fd, b"x" * (3 << 20) + b"\\n")
    elif what == "list":
        os.write(fd, b"[1, 2]\\n")
    elif what == "wrong-type":
        os.write(fd, b'{"t": "result", "index": 0, "score": "1", "reason": "", "error": null}\\n')
    elif what == "long-reason":
        return {"score": 0.5, "reason": "r" * 500_000}
    elif what == "long-error":
        raise ValueError("e" * 500_000)
    elif what == "loud":
        print("p" * 2_000_000)
    elif what == "forged-long":  # a well-formed result with a reason the child would have cut
        os.write(fd, json.dumps({"t": "result", "index": 10, "score": 0.25, "reason": "f" * 500_000, "error": None}).encode() + b"\\n")
        os._exit(0)
    return 1.0
"""
)


async def test_hostile_lines_cost_only_their_example(tmp_path: Path) -> None:
    outputs = ("ok", "bomb", "ok", "giant", "list", "wrong-type", "long-reason", "long-error", "loud", "ok", "forged-long")
    limits = FAST.model_copy(update={"max_restarts": 10, "max_output_chars": 300})
    run = await run_evaluator(write(tmp_path, HOSTILE), examples(*outputs), limits=limits)
    by = {outputs[s.index] + str(s.index): s for s in run.scores}
    broken = "evaluate() corrupted the sandbox protocol (the evaluator wrote to its result channel)"
    for name in ("bomb1", "giant3", "list4", "wrong-type5"):
        assert by[name].error == f"example {by[name].index}: {broken}", by[name]
    assert [by[n].score for n in ("ok0", "ok2", "long-reason6", "loud8", "ok9")] == [1.0, 1.0, 0.5, 1.0, 1.0]
    assert len(by["long-reason6"].reason) <= 300 and len(by["long-error7"].error or "") <= 300
    assert by["forged-long10"].score == 0.25 and by["forged-long10"].reason == "f" * 299 + "…"  # cut by the parent
    assert len(run.output) <= 300 + 50  # the prints: head and tail, with a note of what was dropped
    assert run.fatal is None and run.errors == 5


@pytest.mark.parametrize(
    ("first_line", "fatal"),
    [
        (b'{"t": "ready", "containment": 5}', "broke the sandbox protocol before it was ready"),
        (BOMB, "broke the sandbox protocol before it was ready"),
        (b"x" * (3 << 20), "broke the sandbox protocol before it was ready"),
        (json.dumps({"t": "fatal", "error": "E" * 500_000}).encode(), "could not be loaded: EEEE"),
    ],
    ids=["forged-ready", "recursion-bomb", "giant-line", "huge-load-error"],
)
async def test_a_broken_first_line_is_fatal_not_an_exception(tmp_path: Path, first_line: bytes, fatal: str) -> None:
    source = (
        PROTOCOL_FD + f"\nos.write(protocol_fd(), {first_line!r} + b'\\n')\n\ndef evaluate(messages, **kw):\n    return 1.0\n"
    )
    run = await run_evaluator(write(tmp_path, source), examples("a", "b"), limits=FAST)
    assert run.fatal is not None and fatal in run.fatal and len(run.fatal) < FAST.max_output_chars + 100
    assert run.mean is None and run.errors == 2


async def test_run_evaluator_returns_an_evalrun_whatever_the_input(tmp_path: Path) -> None:
    run = await run_evaluator(tmp_path, examples("a"))  # a directory, not a file
    assert run.fatal is not None and "cannot be read" in run.fatal
