"""Child entry point of the evaluator sandbox: load the evaluator and score the examples.

Runs inside the sandbox (``bwrap.py``; bound read-only at /sandbox/child.py) as
``python -I -B child.py``, after bwrap, setpriv, prlimit and seccomp have contained the
process, so there is nothing left to harden here. Stdlib only: the bot's own packages are
not in the sandbox, and the evaluator must not be able to reach the bot's objects.

Protocol (JSON lines): the parent writes one config line, one line per example, then EOF.
The child answers ``{"t": "ready"}`` or ``{"t": "fatal", "error": ...}``, then one
``{"t": "result", ...}`` per example, in order. Results go out on a private duplicate of the
original stdout and examples come in on a private duplicate of stdin; fds 0/1 are pointed at
/dev/null and stderr, so the evaluator's prints (even from C code) cannot corrupt the
protocol by accident. On purpose they can (the evaluator runs in this process), which is why
the parent decodes every line as untrusted data (``protocol.py``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import numbers
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_EXPECTED = "expected a number in [0, 1] or a dict with 'score'"


class _Timeout(BaseException):
    """Raised by SIGALRM; a BaseException so an evaluator's ``except Exception`` cannot eat it."""


class BadReturn(ValueError):
    """evaluate() returned something that is not a score."""


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def fire(_sig: int, _frame: FrameType | None) -> None:
        raise _Timeout()

    signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    try:
        text = str(exc)
    except Exception:
        text = "<unprintable>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def coerce(value: object) -> tuple[float, str]:
    """A score in [0, 1] and a reason from any accepted return shape, else BadReturn."""
    result = getattr(value, "evaluation_result", None)  # an Eval Protocol EvaluationRow
    if result is not None:
        value = result
    reason: object = ""
    if isinstance(value, dict):
        if "score" not in value:
            raise BadReturn(f"returned {_short(value)}, {_EXPECTED}")
        score, reason = value["score"], value.get("reason") or ""
    elif isinstance(value, numbers.Real):  # bools count: `return pred == gold` means 1 or 0
        score = value
    elif hasattr(value, "score"):  # EvaluateResult and look-alikes
        if getattr(value, "is_score_valid", True) is False:
            raise BadReturn(f"marked its score invalid ({getattr(value, 'reason', '')})")
        score, reason = value.score, getattr(value, "reason", "") or ""
    else:
        raise BadReturn(f"returned {_short(value)}, {_EXPECTED}")
    if not isinstance(score, numbers.Real):
        raise BadReturn(f"returned score {_short(score)}, {_EXPECTED}")
    number = float(score)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise BadReturn(f"returned score {_short(score)}, outside [0, 1]")
    return number, str(reason)


def _send(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _load(path: str, seconds: float) -> Callable[..., object]:
    spec = importlib.util.spec_from_file_location("user_evaluator", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["user_evaluator"] = module
    with _alarm(seconds):
        spec.loader.exec_module(module)
    fn = getattr(module, "evaluate", None)
    if not callable(fn):
        raise AttributeError("the file defines no evaluate(messages, ground_truth=None, **kwargs)")
    return fn  # type: ignore[no-any-return]


def _score(fn: Callable[..., object], ex: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    i, cap = ex["index"], int(cfg["max_output_chars"])
    row: dict[str, Any] = {"t": "result", "index": i, "score": None, "reason": "", "error": None}
    try:
        # The reply is inspected under the same alarm: a property on a returned object is
        # evaluator code too.
        with _alarm(float(cfg["per_example_seconds"])):
            value = fn(ex["messages"], ground_truth=ex.get("ground_truth"))
            try:
                score, reason = coerce(value)
                row["score"], row["reason"] = score, reason[:cap]
            except BadReturn as exc:
                row["error"] = f"example {i}: evaluate() {exc}"
    except _Timeout:
        row["error"] = f"example {i}: evaluate() did not finish within {cfg['per_example_seconds']} s"
    except BaseException as exc:
        row["error"] = f"example {i}: evaluate() raised {_describe(exc)}"[:cap]
    return row


def main() -> int:
    # bwrap hands on every fd it inherited (the read end of its --userns-block-fd among
    # them): close all but the standard three before any evaluator code exists.
    os.closerange(3, 1 << 16)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over RLIMIT_FSIZE: EFBIG, not death
    inp = os.fdopen(os.dup(0), "rb")
    out_fd = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    cfg: dict[str, Any] = json.loads(inp.readline())
    main_pid = os.getpid()

    def orphan_protocol() -> None:
        # A forked copy of the evaluator must never read examples or write results.
        for fd in (inp.fileno(), out_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    os.register_at_fork(after_in_child=orphan_protocol)
    try:
        fn = _load(cfg["evaluator"], float(cfg["import_seconds"]))
    except _Timeout:
        _send(out_fd, {"t": "fatal", "error": f"loading it took longer than {cfg['import_seconds']} s"})
        return 0
    except BaseException as exc:
        _send(out_fd, {"t": "fatal", "error": _describe(exc)[: int(cfg["max_output_chars"])]})
        return 0
    _send(out_fd, {"t": "ready"})
    for line in inp:
        row = _score(fn, json.loads(line), cfg)
        if os.getpid() != main_pid:
            os._exit(0)
        _send(out_fd, row)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
