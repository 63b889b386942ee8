"""The evaluator's resource limits as ``prlimit`` options, and the sentence that reports them.

prlimit (util-linux) sets them on itself and then execs the interpreter, so they hold before
any Python runs, and nothing has to run between fork and exec in the threaded bot.

Memory is budgeted per sandbox, all its processes together (``SandboxLimits.memory_mb``).
Where a cgroup holds the sandbox (cgroup.py) its memory.max is that budget and each process
may map all of it; otherwise each of the ``max_processes`` processes it may hold gets an
equal share of address space, so together they never map more than the budget.
"""

from __future__ import annotations

from pipeline.evaluation.eval_types import SandboxLimits

_MB = 1024 * 1024
MIN_PROCESS_MB = 64  # the interpreter with the standard library starts in this much address space (measured: 3.11)


def per_process_mb(limits: SandboxLimits, *, cgroup: bool) -> int:
    """The address space each evaluator process may map."""
    return limits.memory_mb if cgroup else limits.memory_mb // max(limits.max_processes, 1)


def budget_problem(limits: SandboxLimits, *, cgroup: bool) -> str | None:
    """Why the memory budget cannot be enforced as set (one sentence), or None."""
    share = per_process_mb(limits, cgroup=cgroup)
    if share >= MIN_PROCESS_MB and limits.max_sandboxes >= 1:
        return None
    return (
        f"the evaluator memory budget cannot be enforced: {limits.memory_mb} MB per sandbox split over "
        f"{limits.max_processes} processes leaves {share} MB each, and the interpreter needs {MIN_PROCESS_MB} MB; "
        "raise SFTBOT_EVALUATOR_MEMORY_MB or lower SFTBOT_MAX_SANDBOXES"
    )


def prlimit_options(limits: SandboxLimits, *, cgroup: bool = False) -> list[str]:
    cpu = limits.cpu_seconds
    return [
        f"--cpu={cpu}:{cpu + 1}",  # SIGXCPU at the soft limit, SIGKILL one second later
        f"--as={per_process_mb(limits, cgroup=cgroup) * _MB}",
        f"--nproc={limits.max_processes}",
        f"--nofile={limits.max_open_files}",
        f"--fsize={limits.max_file_mb * _MB}",  # the child ignores SIGXFSZ: an oversized write fails with EFBIG
        "--core=0",
    ]


def describe(limits: SandboxLimits, *, cgroup: bool = False) -> str:
    whole = (
        f"cgroup memory.max {limits.memory_mb} MB and pids.max {limits.max_processes} for the sandbox"
        if cgroup
        else f"{limits.memory_mb} MB for the sandbox as {limits.max_processes} x RLIMIT_AS {per_process_mb(limits, cgroup=False)} MB"
    )
    return (
        f"{whole}; at most {limits.max_sandboxes} sandboxes at once; RLIMIT_CPU {limits.cpu_seconds} s, "
        f"RLIMIT_FSIZE {limits.max_file_mb} MB, RLIMIT_NOFILE {limits.max_open_files}, no core dumps"
    )
