"""Run an evaluator WITHOUT the sandbox: an administrator's explicit choice, never a fallback.

Used only when ``SandboxLimits.unsafe`` is set (SFTBOT_UNSAFE_EVALUATORS=true, with which only
admins supply evaluator files) and the probe found that the sandbox cannot be built here. The
evaluator then runs as the bot's user, with the bot's network and every file that user can
read or write. What remains is what the containment report says: prlimit's limits
(RLIMIT_NPROC does not bind root), an environment cut to PATH, LANG and HOME, no
capabilities and NO_NEW_PRIVS (setpriv), a scratch working directory, the parent's timeouts,
and a SIGKILL of its process group at the end, which a process that calls setsid() escapes.

The bot's secrets are in its environment, which ``/proc/<bot>/environ`` shows to any process of
the same user. So the bot makes itself non-dumpable first (``PR_SET_DUMPABLE`` 0): its
environ, memory and fds then need CAP_SYS_PTRACE, which the evaluator does not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path

from pipeline.evaluation.eval_types import SandboxLimits
from pipeline.evaluation.sandbox.bwrap import CHILD
from pipeline.evaluation.sandbox.protocol import LINE_LIMIT
from pipeline.evaluation.sandbox.rlimits import prlimit_options


class Unsandboxed:
    """The evaluator's process, in a process group of its own."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, *, setpriv: str, prlimit: str, scratch: Path, limits: SandboxLimits) -> Unsandboxed:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": os.environ.get("LANG") or "C.UTF-8", "HOME": str(scratch)}
        not_dumpable()
        # Root's capabilities go with an empty bounding set; other users have none to drop.
        drop = ["--bounding-set=-all", "--inh-caps=-all"] if os.geteuid() == 0 else []
        proc = await asyncio.create_subprocess_exec(
            setpriv,
            *drop,
            "--no-new-privs",
            prlimit,
            *prlimit_options(limits),
            "--",
            *(sys.executable, "-I", "-B", str(CHILD)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=scratch,
            start_new_session=True,
            limit=LINE_LIMIT,
        )
        return cls(proc)

    async def stop(self, *, grace: float) -> None:
        if grace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 5)

    @staticmethod
    def killed_by(code: int | None) -> int | None:
        return -code if code is not None and code < 0 else None


_PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def not_dumpable() -> None:
    """Make this process non-dumpable (idempotent): /proc/<pid>/environ, mem and fd of it then
    need CAP_SYS_PTRACE (proc(5), ptrace(2) "ptrace access mode checking"). The standard
    library has no prctl, and this is the one call needed."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")
