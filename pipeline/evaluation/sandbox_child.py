"""Child entry point of the evaluator sandbox: harden this process, load the evaluator, score.

Started by ``pipeline/evaluation/sandbox.py`` as ``python -I -B sandbox_child.py`` with a scrubbed
environment, in its own session, inside a scratch directory. Stdlib only: isolated mode keeps
the bot off ``sys.path`` and the evaluator must not be able to reach the bot's objects.

Protocol (JSON lines): the parent writes one config line, one line per example, then EOF.
The child answers ``{"t": "ready", "containment": {...}}`` or ``{"t": "fatal", "error": ...}``,
then one ``{"t": "result", ...}`` per example, in order. Results go out on a private duplicate
of the original stdout and examples come in on a private duplicate of stdin; fds 0/1 are
pointed at /dev/null and stderr, so the evaluator's prints (even from C code) and reads cannot
corrupt the protocol.

What is enforced by the kernel and what only by this prelude is reported in ``containment``.
The prelude guards are monkeypatches: they stop ordinary code, not code that calls libc
through ctypes, which is why the OS mechanisms come first wherever the machine allows them.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import math
import numbers
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
PR_SET_DUMPABLE = 4
_EXPECTED = "expected a number in [0, 1] or a dict with 'score'"


class _Timeout(BaseException):
    """Raised by SIGALRM; a BaseException so an evaluator's ``except Exception`` cannot eat it."""


class SandboxError(Exception):
    """The sandbox itself cannot be set up safely; nothing of the evaluator has run."""


class BadReturn(ValueError):
    """evaluate() returned something that is not a score."""


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _limit(which: int, soft: int, hard: int | None = None) -> None:
    # Never above the current hard limit: only root may raise it, and lower is what we want.
    ceiling = resource.getrlimit(which)[1]
    hard = soft if hard is None else hard
    if ceiling != resource.RLIM_INFINITY:
        hard = min(hard, ceiling)
    resource.setrlimit(which, (min(soft, hard), hard))


def _tasks_of(uid: int) -> int:
    """Tasks (threads count: RLIMIT_NPROC counts them) the user already runs."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if int(fields.get("Uid", "-1 0").split()[0]) == uid:
            total += int(fields.get("Threads", "1").strip() or 1)
    return total


def _isolate_network(libc: ctypes.CDLL | None, root: bool) -> bool:
    # Root can enter a fresh network namespace directly; other users need a user namespace
    # too, which some kernels/containers forbid. Either way the new namespace has only a
    # loopback that is down, so even 127.0.0.1 is unreachable.
    if libc is None or not hasattr(libc, "unshare"):
        return False
    flags = CLONE_NEWNET if root else CLONE_NEWUSER | CLONE_NEWNET
    return bool(libc.unshare(flags) == 0)


def _drop_root(libc: ctypes.CDLL | None, uid: int) -> bool:
    """Become a dedicated unprivileged uid, keeping the interpreter's own library importable.

    The stdlib may live where that uid cannot look (e.g. pyenv under /root, mode 700). Open
    those sys.path directories while still root and import through /proc/self/fd/N: the
    magic link skips the ancestors' permission checks, and nothing else becomes readable.
    """
    held = {p: os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in sys.path if os.path.isdir(p)}
    try:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    except OSError:
        for fd in held.values():
            os.close(fd)
        return False
    if libc is not None:
        # Changing uid made us non-dumpable, which hands /proc/self to root; take it back.
        libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    moved: dict[str, str] = {}
    for i, p in enumerate(sys.path):
        if p not in held:
            continue
        fd = held.pop(p)
        if os.access(p, os.R_OK | os.X_OK):
            os.close(fd)
        else:
            sys.path[i] = moved[p] = f"/proc/self/fd/{fd}"
    # Packages imported during start-up (encodings, importlib, ...) find their submodules
    # through their own __path__, not sys.path; point those at the held directories too.
    for module in list(sys.modules.values()):
        search = getattr(module, "__path__", None)
        if isinstance(search, list):
            for j, entry in enumerate(search):
                for old, new in moved.items():
                    if entry == old or entry.startswith(old + os.sep):
                        search[j] = new + entry[len(old) :]
    sys.path_importer_cache.clear()
    return True


def _refuse(what: str) -> Callable[..., NoReturn]:
    def refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
        raise PermissionError(f"{what} is disabled in the evaluator sandbox")

    return refuse


def _guard_sockets() -> None:
    # Wrapping an existing descriptor (socketpair, which asyncio needs) stays allowed.
    class _NoNetwork(socket.socket):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            fileno = kwargs.get("fileno", args[3] if len(args) > 3 else None)
            if fileno is None:
                raise PermissionError("network access is disabled in the evaluator sandbox")
            super().__init__(*args, **kwargs)

    socket.socket = _NoNetwork  # type: ignore[misc]
    socket.SocketType = _NoNetwork


def _guard_processes() -> None:
    import _posixsubprocess

    refuse = _refuse("starting processes")
    for name in (
        "fork",
        "forkpty",
        "system",
        "popen",
        "posix_spawn",
        "posix_spawnp",
        "execv",
        "execve",
        "execl",
        "execle",
        "execlp",
        "execlpe",
        "execvp",
        "execvpe",
    ):
        if hasattr(os, name):
            setattr(os, name, refuse)
    _posixsubprocess.fork_exec = refuse


def _harden(cfg: dict[str, Any]) -> dict[str, str]:
    mb = 1024 * 1024
    cpu = int(cfg["cpu_seconds"])
    _limit(resource.RLIMIT_CPU, cpu, cpu + 1)  # SIGXCPU at the soft limit, SIGKILL at hard
    _limit(resource.RLIMIT_AS, int(cfg["memory_mb"]) * mb)
    _limit(resource.RLIMIT_FSIZE, int(cfg["max_file_mb"]) * mb)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, int(cfg["max_open_files"]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails with EFBIG instead
    out = {
        "limits": f"os: RLIMIT_CPU {cpu} s, RLIMIT_AS {cfg['memory_mb']} MB, "
        f"RLIMIT_FSIZE {cfg['max_file_mb']} MB, RLIMIT_NOFILE {cfg['max_open_files']}",
        "environment": "os: scrubbed to PATH, LANG and HOME (the scratch directory)",
    }
    libc, root = _libc(), os.geteuid() == 0
    existing = 0 if root else _tasks_of(os.getuid())
    net = _isolate_network(libc, root)
    _guard_sockets()  # belt and braces even with a namespace: also covers AF_UNIX sockets
    out["network"] = ("os: empty network namespace; " if net else "") + "prelude: socket guard"
    uid = cfg.get("uid")
    dropped = root and uid is not None and _drop_root(libc, int(uid))
    if dropped:
        out["identity"] = f"os: dedicated unprivileged uid {uid} (no access to the bot's /proc)"
    else:
        out["identity"] = "none: runs as root" if root else "os: runs as the bot's own user"
    if root and not dropped:
        if not cfg.get("allow_root_fallback"):
            raise SandboxError(
                "could not switch to an unprivileged user, and running an untrusted evaluator "
                "as root is refused (allow_root_fallback is off)"
            )
        # RLIMIT_NPROC never binds uid 0, so the prelude is all there is (plus the parent
        # killing the process group at the end).
        _guard_processes()
        out["processes"] = "prelude: fork/exec/subprocess refused (RLIMIT_NPROC ignores root)"
    else:
        _limit(resource.RLIMIT_NPROC, existing + int(cfg["max_processes"]))
        out["processes"] = f"os: RLIMIT_NPROC allows {cfg['max_processes']} tasks"
    os.chdir(cfg["scratch"])
    return out


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
        containment = _harden(cfg)
    except (SandboxError, OSError) as exc:
        _send(out_fd, {"t": "fatal", "stage": "sandbox", "error": str(exc)})
        return 0
    try:
        fn = _load(cfg["evaluator"], float(cfg["import_seconds"]))
    except _Timeout:
        _send(out_fd, {"t": "fatal", "error": f"loading it took longer than {cfg['import_seconds']} s"})
        return 0
    except BaseException as exc:
        _send(out_fd, {"t": "fatal", "error": _describe(exc)[: int(cfg["max_output_chars"])]})
        return 0
    _send(out_fd, {"t": "ready", "containment": containment})
    for line in inp:
        row = _score(fn, json.loads(line), cfg)
        if os.getpid() != main_pid:
            os._exit(0)
        _send(out_fd, row)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
