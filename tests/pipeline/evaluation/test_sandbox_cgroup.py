"""Where the host delegates a cgroup v2, the sandboxes get one each under one for all of them;
checked against a cgroupfs laid out in a folder (files only: the kernel's own rules, such as
no processes in an inner node, are not modelled; a host with a delegated cgroup runs them)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.evaluation.sandbox import cgroup

MB = 1024 * 1024


def _cgroupfs(root: Path, own: str, *, controllers: str = "cpu memory pids") -> Path:
    """A cgroup v2 hierarchy as the kernel shows a delegated one (files only: the kernel's own
    rules are not modelled)."""
    folder = root / own.lstrip("/")
    folder.mkdir(parents=True)
    (folder / "cgroup.controllers").write_text(controllers + "\n")
    (folder / "cgroup.subtree_control").write_text("\n")
    (folder / "cgroup.procs").write_text(f"{os.getpid()}\n")
    return folder


def test_a_delegated_cgroup_bounds_every_sandbox_and_all_of_them(tmp_path: Path) -> None:
    own = _cgroupfs(tmp_path, "/system.slice/sftbot.service")
    found = cgroup.delegate(2048, root=tmp_path, self_cgroup="0::/system.slice/sftbot.service\n")
    assert found is not None and found.parent == own / "sftbot-sandboxes"
    assert (own / "sftbot-bot" / "cgroup.procs").read_text() == str(os.getpid())  # the bot left the inner node
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (found.parent / "memory.max").read_text() == str(2048 * MB)  # every sandbox at once
    box = cgroup.place(found, "sandbox-61234", 4321, memory_mb=1024, max_processes=4)
    assert (box / "memory.max").read_text() == str(1024 * MB) and (box / "pids.max").read_text() == "5"
    assert (box / "cgroup.procs").read_text() == "4321"


def test_without_a_delegated_cgroup_v2_the_rlimits_hold_instead(tmp_path: Path) -> None:
    assert cgroup.delegate(2048, root=tmp_path, self_cgroup="4:memory:/docker/abc\n1:cpu:/\n") is None  # cgroup v1
    _cgroupfs(tmp_path, "/a", controllers="cpu io")
    assert cgroup.delegate(2048, root=tmp_path, self_cgroup="0::/a\n") is None  # no memory controller to use
