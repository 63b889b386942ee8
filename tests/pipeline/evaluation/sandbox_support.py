"""Helpers shared by the sandbox tests: evaluator files, examples, and looking at /proc from the host."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from pipeline.evaluation.eval_types import EvalExample, SandboxLimits

FAST = SandboxLimits(
    cpu_seconds=10, memory_mb=1024, per_example_seconds=1.0, batch_seconds=20.0, import_seconds=2.0, max_processes=8
)

# Evaluator code: the host uid this process really is (the kernel's uid map, not os.getuid()).
HOST_UID = """
import os

def host_uid():
    for line in open("/proc/self/uid_map"):
        inside, outside, count = map(int, line.split())
        if inside <= os.getuid() < inside + count:
            return outside + os.getuid() - inside
    return -1
"""

# Evaluator code: the fd of the result channel (the child's private copy of its stdout),
# found the way a hostile evaluator would: the one writable pipe besides fds 1 and 2.
PROTOCOL_FD = """
import fcntl, os, stat

def protocol_fd():
    for fd in range(3, 64):
        try:
            st, flags = os.fstat(fd), fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            continue
        if stat.S_ISFIFO(st.st_mode) and flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
            return fd
    raise RuntimeError("no protocol channel found")
"""


def write(tmp_path: Path, source: str, name: str = "user_eval.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def examples(*outputs: str, truth: str = "42") -> list[EvalExample]:
    return [
        EvalExample(
            index=i, messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": out}], ground_truth=truth
        )
        for i, out in enumerate(outputs)
    ]


def _status(pid: str) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def live_processes(*, uid: int | None = None, marker: str | None = None) -> list[int]:
    """Host pids (zombies left out) running as host ``uid`` or with ``marker`` in their command line."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = _status(pid)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if status.get("State", "").startswith("Z"):
            continue
        if (uid is not None and int(status["Uid"].split()[0]) == uid) or (marker is not None and marker.encode() in cmdline):
            found.append(int(pid))
    return found


# An evaluator that tries to reach a TCP listener (ground truth: {"port": N}) three ways:
# Python's socket, the C module under it, and libc through ctypes; it reports what happened.
CONNECTOR = """
import ctypes, json, socket, struct, _socket

def evaluate(messages, ground_truth=None, **kwargs):
    port, out = json.loads(ground_truth)["port"], {}
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        out["socket"] = "CONNECTED"
    except OSError as exc:
        out["socket"] = f"{type(exc).__name__}: {exc}"
    try:
        s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        out["_socket"] = "CONNECTED"
    except OSError as exc:
        out["_socket"] = f"{type(exc).__name__}: {exc}"
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    addr = struct.pack("=H", socket.AF_INET) + struct.pack(">H", port) + bytes([127, 0, 0, 1]) + bytes(8)
    if fd < 0:
        out["libc"] = f"socket errno {ctypes.get_errno()}"
    elif libc.connect(fd, addr, len(addr)) != 0:
        out["libc"] = f"connect errno {ctypes.get_errno()}"
    else:
        out["libc"] = "CONNECTED"
    with open("/proc/net/route") as f:
        out["routes"] = len(f.readlines()) - 1
    return {"score": 1.0, "reason": json.dumps(out)}
"""

# An evaluator that hunts for files (ground truth: {"paths": [...]}): directly, through
# /proc/<pid>/root and /cwd of every process it can see, and through the directories
# behind every open fd (the old sandbox's /proc/self/fd/N/../.. escape).
READER = """
import glob, json, os

def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read(200)
    except OSError as exc:
        return type(exc).__name__

def evaluate(messages, ground_truth=None, **kwargs):
    paths = json.loads(ground_truth)["paths"]
    out = {p: _read(p) for p in paths}
    bases = glob.glob("/proc/*/root") + glob.glob("/proc/*/cwd") + [f + "/../.." for f in glob.glob("/proc/*/fd/*")]
    found = [base + p for base in bases for p in paths if "SECRET" in _read(base + p)]
    out["found_by_walking"] = found[:3]
    out["cwd"] = os.getcwd()
    out["root"] = sorted(os.listdir("/"))
    return {"score": 1.0, "reason": json.dumps(out)}
"""
