"""The evaluator's resource limits as ``prlimit`` options, and the sentence that reports them.

prlimit (util-linux) sets them on itself and then execs the interpreter, so they hold before
any Python runs, and nothing has to run between fork and exec in the threaded bot.
"""

from __future__ import annotations

from pipeline.evaluation.eval_types import SandboxLimits

_MB = 1024 * 1024


def prlimit_options(limits: SandboxLimits) -> list[str]:
    cpu = limits.cpu_seconds
    return [
        f"--cpu={cpu}:{cpu + 1}",  # SIGXCPU at the soft limit, SIGKILL one second later
        f"--as={limits.memory_mb * _MB}",
        f"--nproc={limits.max_processes}",
        f"--nofile={limits.max_open_files}",
        f"--fsize={limits.max_file_mb * _MB}",  # the child ignores SIGXFSZ: an oversized write fails with EFBIG
        "--core=0",
    ]


def describe(limits: SandboxLimits) -> str:
    return (
        f"RLIMIT_CPU {limits.cpu_seconds} s, RLIMIT_AS {limits.memory_mb} MB, RLIMIT_FSIZE {limits.max_file_mb} MB, "
        f"RLIMIT_NOFILE {limits.max_open_files}, no core dumps"
    )
