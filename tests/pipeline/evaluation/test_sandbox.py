"""The evaluator sandbox: every way a user's evaluator can misbehave is contained and named."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from pipeline.evaluation.sandbox.batch import run_evaluator, validate_evaluator
from tests.pipeline.evaluation.sandbox_support import FAST, HOST_UID, examples, live_processes, write


async def test_scores_every_accepted_return_shape_and_keeps_prints_out_of_the_protocol(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        import os, sys

        class Result:  # the shape of Eval Protocol's EvaluateResult
            def __init__(self, score, reason):
                self.score, self.reason = score, reason

        def evaluate(messages, ground_truth=None, **kwargs):
            out = messages[-1]["content"]
            print('{"t": "result", "index": 99, "score": 1}')  # must not be taken as a result
            os.write(1, b"raw write to fd 1\\n")
            if out == "float":
                return 0.25
            if out == "bool":
                return out == "bool"
            if out == "object":
                return Result(0.5, "half")
            return {"score": float(out == ground_truth), "reason": "compared"}
        """,
    )
    run = await run_evaluator(path, examples("42", "41", "float", "bool", "object"), limits=FAST)
    assert run.fatal is None and run.errors == 0
    assert [s.score for s in run.scores] == [1.0, 0.0, 0.25, 1.0, 0.5]
    assert run.scores[4].reason == "half" and run.scores[0].reason == "compared"
    assert run.mean == pytest.approx(2.75 / 5)
    assert "raw write to fd 1" in run.output and '"index": 99' in run.output


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("None", "example 0: evaluate() returned None, expected a number in [0, 1] or a dict with 'score'"),
        ("'yes'", "example 0: evaluate() returned 'yes', expected a number in [0, 1] or a dict with 'score'"),
        ("float('nan')", "example 0: evaluate() returned score nan, outside [0, 1]"),
        ("1.5", "example 0: evaluate() returned score 1.5, outside [0, 1]"),
        ("{'reason': 'no score'}", "example 0: evaluate() returned {'reason': 'no score'}, expected"),
        ("{'score': '0.5'}", "example 0: evaluate() returned score '0.5', expected a number"),
    ],
)
async def test_garbage_return_values_are_errors_naming_the_example(tmp_path: Path, value: str, message: str) -> None:
    path = write(tmp_path, f"def evaluate(messages, ground_truth=None, **kwargs):\n    return {value}\n")
    run = await run_evaluator(path, examples("x"), limits=FAST)
    assert run.scores[0].score is None
    assert run.scores[0].error is not None and run.scores[0].error.startswith(message)
    assert run.fatal is not None and "Every example failed" in run.fatal and message in run.fatal


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("def evaluate(messages, ground_truth=None:\n    return 1\n", "SyntaxError"),
        (
            "import no_such_module_xyz\ndef evaluate(messages, ground_truth=None, **kw):\n    return 1\n",
            "No module named 'no_such_module_xyz'",
        ),
        ("def score(messages):\n    return 1\n", "defines no evaluate("),
        ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
        ("while True:\n    pass\n", "loading it took longer than 1.0 s"),
    ],
)
async def test_an_evaluator_that_does_not_load_is_fatal_with_the_reason(tmp_path: Path, source: str, error: str) -> None:
    limits = FAST.model_copy(update={"import_seconds": 1.0})
    run = await run_evaluator(write(tmp_path, source), examples("a", "b"), limits=limits)
    assert run.fatal is not None and run.fatal.startswith("The evaluator user_eval.py could not be loaded")
    assert error in run.fatal
    assert run.mean is None and run.errors == 2
    assert all(s.error and s.error.startswith(f"example {s.index}: not scored") for s in run.scores)


async def test_raising_hanging_and_crashing_examples_cost_only_themselves(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        import os, signal, time

        def evaluate(messages, ground_truth=None, **kwargs):
            out = messages[-1]["content"]
            if out == "raise":
                raise ValueError("cannot parse " + out)
            if out == "loop":  # interruptible: the child's own alarm stops it
                while True:
                    pass
            if out == "stubborn":  # eats the alarm: only the parent's watchdog can stop it
                while True:
                    try:
                        time.sleep(10)
                    except BaseException:
                        pass
            if out == "crash":
                os.kill(os.getpid(), signal.SIGKILL)
            if out == "exit":
                raise SystemExit(3)
            return 1.0
        """,
    )
    run = await run_evaluator(path, examples("raise", "ok", "loop", "stubborn", "ok", "crash", "exit", "ok"), limits=FAST)
    by = {s.index: s for s in run.scores}
    assert by[0].error == "example 0: evaluate() raised ValueError: cannot parse raise"
    assert by[2].error == "example 2: evaluate() did not finish within 1.0 s"
    assert by[3].error == "example 3: evaluate() did not finish within 1.0 s and was killed"
    assert by[5].error == "example 5: evaluate() crashed the evaluator process, which was killed by SIGKILL"
    assert by[6].error == "example 6: evaluate() raised SystemExit: 3"
    assert [by[i].score for i in (1, 4, 7)] == [1.0, 1.0, 1.0]
    assert run.fatal is None and run.errors == 5
    assert run.mean == pytest.approx(3 / 8)  # an errored example counts as 0


async def test_cpu_memory_and_disk_limits(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        def evaluate(messages, ground_truth=None, **kwargs):
            out = messages[-1]["content"]
            if out == "memory":
                block = bytearray(4 * 1024 ** 3)  # 4 GB
            if out == "disk":
                with open("big.bin", "wb") as f:
                    f.write(b"x" * (3 * 1024 * 1024))
            if out == "cpu":
                while True:
                    try:
                        sum(range(10 ** 6))
                    except BaseException:  # swallows the alarm too; only the CPU limit remains
                        pass
            return 1.0
        """,
    )
    limits = FAST.model_copy(update={"memory_mb": 512, "cpu_seconds": 1, "per_example_seconds": 4.0, "max_file_mb": 1})
    run = await run_evaluator(path, examples("memory", "ok", "disk", "cpu", "ok"), limits=limits)
    by = {s.index: s for s in run.scores}
    assert by[0].error == "example 0: evaluate() raised MemoryError"
    assert by[2].error is not None and "File too large" in by[2].error
    assert by[3].error == "example 3: evaluate() crashed the evaluator process, which exceeded its CPU limit (1 s)"
    assert by[1].score == 1.0 and by[4].score == 1.0


async def test_a_fork_bomb_is_bounded_and_nothing_survives_the_run(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HOST_UID
        + """
import os, time

def evaluate(messages, ground_truth=None, **kwargs):
    if messages[-1]["content"] == "where":
        return {"score": 1.0, "reason": str(host_uid())}
    children = 0
    try:
        for _ in range(500):
            if os.fork() == 0:
                while True:  # every child keeps forking too
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(0.01)
            children += 1
    except OSError as exc:
        raise RuntimeError(f"fork refused after {children} children: {exc}")
    return 1.0
""",
    )
    started = time.monotonic()
    run = await run_evaluator(path, examples("where", "bomb", "where"), limits=FAST)
    assert time.monotonic() - started < 10
    error = run.scores[1].error or ""
    assert error.startswith("example 1: evaluate() raised RuntimeError: fork refused after")
    assert int(error.split("after ")[1].split()[0]) < FAST.max_processes
    assert run.scores[2].score == 1.0
    uid = int(run.scores[0].reason)
    assert f"host uid {uid}," in run.containment["identity"] and uid >= 61000
    assert live_processes(uid=uid) == []


async def test_the_evaluator_cannot_see_the_bots_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREWORKS_API_KEY", "fw-secret-0123456789")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret-0123456789")
    path = write(
        tmp_path,
        """
        import glob, os

        def evaluate(messages, ground_truth=None, **kwargs):
            print(dict(os.environ))
            known = ("PATH", "LANG", "HOME", "TMPDIR", "PWD", "LC_CTYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
            leaks = [k for k in os.environ if k not in known]
            for environ in glob.glob("/proc/*/environ"):  # the bot's own process included
                try:
                    with open(environ, "rb") as f:
                        if b"secret-0123456789" in f.read():
                            leaks.append(environ)
                except OSError:
                    pass
            return {"score": 0.0 if leaks else 1.0, "reason": f"leaks={leaks} env={sorted(os.environ)}"}
        """,
    )
    run = await run_evaluator(path, examples("x"), limits=FAST)
    assert run.scores[0].score == 1.0, run.scores[0].reason
    assert "secret-0123456789" not in run.model_dump_json()
    assert str(os.getpid()) not in run.scores[0].reason


async def test_no_network_not_even_loopback(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        path = write(
            tmp_path,
            f"""
            import ctypes, socket, struct

            def evaluate(messages, ground_truth=None, **kwargs):
                if messages[-1]["content"] == "python":
                    socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"leak")
                    return 1.0
                # Straight to libc, around any Python-level guard: only the OS can stop this.
                libc = ctypes.CDLL(None, use_errno=True)
                fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
                addr = struct.pack("=H", socket.AF_INET) + struct.pack(">H", {port}) + bytes([127, 0, 0, 1]) + bytes(8)
                if libc.connect(fd, addr, len(addr)) != 0:
                    raise OSError(ctypes.get_errno(), "connect failed")
                return 1.0
            """,
        )
        run = await run_evaluator(path, examples("python", "libc"), limits=FAST)
        first = run.scores[0].error or ""
        assert first.startswith("example 0: evaluate() raised OSError: [Errno 97] Address family not supported")
        assert run.containment["network"].startswith("os: own network namespace")
        assert (run.scores[1].error or "").startswith("example 1: evaluate() raised OSError: [Errno")
        with pytest.raises(BlockingIOError):  # a connection, had one been made, would be queued by now
            server.accept()


async def test_a_batch_that_runs_too_long_is_stopped_and_fatal(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        import time
        def evaluate(messages, ground_truth=None, **kwargs):
            time.sleep(0.6)
            return 1.0
        """,
    )
    limits = FAST.model_copy(update={"batch_seconds": 1.5})
    run = await run_evaluator(path, examples(*"abcdef"), limits=limits)
    assert run.fatal is not None and run.fatal.startswith("The evaluator did not finish the batch within 1.5 s")
    assert run.mean is None
    assert [s.score for s in run.scores[:2]] == [1.0, 1.0]
    assert run.scores[-1].error == f"example 5: not scored: {run.fatal}"


async def test_validate_rejects_an_evaluator_that_fails_on_a_sample(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        def evaluate(messages, ground_truth=None, **kwargs):
            return int(messages[-1]["content"]) / 100
        """,
    )
    good = await validate_evaluator(path, examples("10", "20", "30", "oops"))
    assert good.fatal is None and len(good.scores) == 3 and good.mean == pytest.approx(0.2)
    bad = await validate_evaluator(path, examples("10", "oops", "30"))
    assert bad.fatal == (
        "The evaluator failed on a sample example: example 1: evaluate() raised "
        "ValueError: invalid literal for int() with base 10: 'oops'"
    )
    missing = await validate_evaluator(tmp_path / "nope.py", examples("1"))
    assert missing.fatal is not None and "cannot be read" in missing.fatal
