"""Cgroup v2 limits for a whole sandbox, where the host delegates a writable cgroup to the bot.

A cgroup's ``memory.max`` bounds every process of a sandbox together (what RLIMIT_AS, per
process, cannot), and ``pids.max`` their number. The bot can use one only when the unified
hierarchy is mounted writable and its own cgroup offers the memory and pids controllers
(systemd's ``Delegate=yes``, a container with its own writable cgroup namespace). Then, once:

  <own cgroup>/sftbot-bot          the bot itself, moved here (cgroup v2 lets a cgroup
                                   either hold processes or hand controllers to children)
  <own cgroup>/sftbot-sandboxes    memory.max = every sandbox at once (the total budget)
  <own cgroup>/sftbot-sandboxes/<name>   one per sandbox: memory.max, memory.swap.max 0, pids.max

and a sandbox's init is moved into its cgroup before it starts anything. Everywhere else
(cgroup v1, a read-only /sys/fs/cgroup, no delegated controllers) ``delegated`` is None and
rlimits.py splits the budget over the processes instead. The layout follows the kernel's
cgroup-v2 documentation (Documentation/admin-guide/cgroup-v2.rst: "no internal process
constraint", "Delegation"); file writes, because there is no library for a handful of them.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
_NEEDED = {"memory", "pids"}
_MB = 1024 * 1024


@dataclass(frozen=True)
class Delegated:
    """The cgroup sandboxes' cgroups are made in (its memory.max is the total budget)."""

    parent: Path


def own_cgroup(proc_self_cgroup: str) -> str | None:
    """This process's cgroup v2 path from /proc/self/cgroup ("0::/path"), or None (v1 only)."""
    for line in proc_self_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def _read(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def delegate(total_mb: int, *, root: Path = ROOT, self_cgroup: str | None = None) -> Delegated | None:
    """Set the sandboxes' cgroup up under this process's own (idempotent); None where the host
    delegates none. ``self_cgroup``: /proc/self/cgroup's text (read when None)."""
    if self_cgroup is None:
        try:
            self_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return None
    path = own_cgroup(self_cgroup)
    if path is None:
        return None
    own = root / path.lstrip("/")
    writable = os.access(own / "cgroup.subtree_control", os.W_OK) and os.access(own, os.W_OK)
    if not writable or not _NEEDED <= _read(own / "cgroup.controllers"):
        return None
    try:
        if not _NEEDED <= _read(own / "cgroup.subtree_control"):
            leaf = own / "sftbot-bot"
            leaf.mkdir(exist_ok=True)
            (leaf / "cgroup.procs").write_text(str(os.getpid()))
            (own / "cgroup.subtree_control").write_text("+memory +pids")
        parent = own / "sftbot-sandboxes"
        parent.mkdir(exist_ok=True)
        (parent / "memory.max").write_text(str(total_mb * _MB))
        (parent / "cgroup.subtree_control").write_text("+memory +pids")
    except OSError:
        return None  # e.g. EBUSY: other processes share our cgroup; the rlimits hold instead
    return Delegated(parent)


def place(d: Delegated, name: str, pid: int, *, memory_mb: int, max_processes: int) -> Path:
    """A cgroup of its own for one sandbox, with ``pid`` (its init, nothing started yet) in it."""
    cg = d.parent / name
    cg.mkdir(exist_ok=True)
    (cg / "memory.max").write_text(str(memory_mb * _MB))
    if (cg / "memory.swap.max").exists():
        (cg / "memory.swap.max").write_text("0")  # the budget is memory, not memory plus swap
    (cg / "pids.max").write_text(str(max_processes + 1))  # + the sandbox's init (bwrap)
    (cg / "cgroup.procs").write_text(str(pid))
    return cg


def remove(cg: Path) -> None:
    """Remove a sandbox's cgroup once its processes are gone (a busy one stays, named for its uid)."""
    with contextlib.suppress(OSError):
        cg.rmdir()
