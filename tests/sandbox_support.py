"""Helpers shared by the sandbox tests: evaluator files, examples, and looking at /proc from the host."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from pipeline.evaluation.models import EvalExample, SandboxLimits

FAST = SandboxLimits(
    cpu_seconds=10, memory_mb=512, per_example_seconds=1.0, batch_seconds=20.0, import_seconds=2.0, max_processes=8
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
