"""The containment report of a batch: what the parent set up, in words, per concern.

Written from the parent's own decisions (the argv it built, the uid it mapped, the filter
it compiled), never from anything the child says: the evaluator runs in the child and
could claim whatever it likes.
"""

from __future__ import annotations

from pipeline.evaluation.eval_types import SandboxLimits
from pipeline.evaluation.sandbox.rlimits import describe


def isolated(limits: SandboxLimits, *, bwrap: str, host_uid: int, seccomp: str | None, cgroup: bool = False) -> dict[str, str]:
    """The report of a batch run in the bubblewrap sandbox (``seccomp``: the filter's note, None when off)."""
    sockets = "; seccomp: socket families other than AF_UNIX refused" if seccomp and seccomp.startswith("os:") else ""
    return {
        "sandbox": f"bubblewrap {bwrap}: new user, mount, PID, network, IPC and UTS namespaces; no nested user namespaces",
        "network": f"os: own network namespace with only a loopback, no route out, no host or abstract sockets{sockets}",
        "filesystem": (
            "os: read-only, the interpreter's own files, its site-packages, the libraries they load, setpriv, prlimit "
            "and the evaluator, nothing else of the host (not /usr whole, no /etc, /home, data or working directory); "
            "the only writable place is a "
            f"{limits.tmpfs_mb} MB tmpfs at /tmp, discarded with the sandbox"
        ),
        "identity": f"os: host uid {host_uid}, no capabilities, NO_NEW_PRIVS (setuid binaries gain nothing)",
        "processes": f"os: PID namespace, killed whole when the batch ends; RLIMIT_NPROC {limits.max_processes}",
        "limits": f"os: {describe(limits, cgroup=cgroup)}",
        "seccomp": seccomp or "off (SandboxLimits.seccomp is false)",
        "environment": "os: PATH, HOME, TMPDIR, LANG, PWD and one-thread settings for numeric libraries only",
        "cleanup": "parent: per-example watchdog, batch timeout, SIGKILL of the sandbox's PID namespace",
    }


def unsandboxed(limits: SandboxLimits, *, problem: str, user: str) -> dict[str, str]:
    """The report of a batch run without the sandbox (the admin's unsafe switch)."""
    return {
        "unsafe": (
            f"SFTBOT_UNSAFE_EVALUATORS is on and the sandbox is unavailable, so the evaluator (an admin's) ran WITHOUT isolation ({problem})"
        ),
        "network": "none: the bot's own network",
        "filesystem": f"none: every file {user} can read or write; the working directory is a scratch directory",
        "identity": f"none: runs as the bot's user, {user}, without capabilities, NO_NEW_PRIVS; the bot is not dumpable, so its environment and memory stay out of reach",
        "processes": "parent: SIGKILL of its process group at the end (setsid() escapes it; RLIMIT_NPROC does not bind root)",
        "limits": f"os: {describe(limits)}",
        "seccomp": "none",
        "environment": "os: PATH, LANG and HOME only",
        "cleanup": "parent: per-example watchdog, batch timeout, SIGKILL of the process group",
    }
