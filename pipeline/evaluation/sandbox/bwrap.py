"""Start and end one evaluator sandbox with bubblewrap.

Outermost first (the flag-by-flag story, with the experiments behind it, is in the
bubblewrap research notes of issue 12):

  bwrap, started by the root bot with an empty environment in ``/``
    new user, mount, PID, network, IPC and UTS namespaces (+ cgroup where allowed)
    uid map written by us through --userns-block-fd: inside 0 -> host 0 (bwrap's own mount
      setup only), inside 1000 -> host uid U, a dedicated unused uid; nested user
      namespaces switched off in there before bwrap goes on (checked by bwrap itself)
    root: an empty tmpfs, read-only at the end; the interpreter's own files, the libraries
      it loads and setpriv/prlimit bound read-only (layout.py: not /usr whole); the child,
      the evaluator and a venv's pyvenv.cfg written into it (--file: no mount, so
      /proc/self/mountinfo names no host path of theirs); /tmp a size-capped tmpfs, the
      only writable place; a fresh /proc of the PID namespace; a minimal read-only /dev
    --clearenv, --new-session, --die-with-parent, NO_NEW_PRIVS (always), --seccomp
  setpriv: uid/gid 1000 (= host U), no groups, no capabilities, empty bounding set
  prlimit: CPU, AS, NPROC (counted per user namespace), NOFILE, FSIZE, CORE
  python -I -B /sandbox/child.py (the JSON-lines protocol on stdin/stdout)

Ending a sandbox is one SIGKILL to the PID namespace's init (through a pidfd, so no pid
can have been recycled): the kernel kills everything left in the namespace with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import random
import signal
from dataclasses import dataclass
from pathlib import Path

from pipeline.evaluation.eval_types import SandboxLimits
from pipeline.evaluation.sandbox import cgroup
from pipeline.evaluation.sandbox.layout import Layout
from pipeline.evaluation.sandbox.protocol import LINE_LIMIT
from pipeline.evaluation.sandbox.rlimits import prlimit_options
from pipeline.evaluation.sandbox.syscall_filter import memfd

CHILD = Path(__file__).with_name("child.py")
CHILD_INSIDE, EVALUATOR_INSIDE = "/sandbox/child.py", "/sandbox/evaluator.py"
SANDBOX_UID = 1000  # the evaluator's uid inside; mapped to a dedicated host uid
_HOST_UIDS = range(61000, 65000)  # above regular users, below nobody (65534)
_START_SECONDS = 10.0
_END_SECONDS = 10.0
_in_use: set[int] = set()


class StartError(RuntimeError):
    """The sandbox could not be built; nothing of the evaluator ran. The text is bwrap's, or our step's."""


class _GaveUp(StartError):
    """bwrap exited before it made the sandbox: what it printed says why."""


@dataclass(frozen=True)
class Tools:
    """Absolute paths of the programs a sandbox is made of."""

    bwrap: str
    setpriv: str
    prlimit: str
    nsenter: str


@dataclass(frozen=True)
class Spec:
    """Everything one sandbox is, decided before it starts."""

    tools: Tools
    layout: Layout
    limits: SandboxLimits
    host_uid: int
    evaluator: bytes | None  # the evaluator's source, written at EVALUATOR_INSIDE
    seccomp: bytes | None  # the compiled filter, or None for none
    # What runs inside after setpriv and prlimit; None: the evaluator child.
    command: tuple[str, ...] | None = None
    # Where the host delegates a cgroup: the sandbox gets one of its own under it (cgroup.py).
    cgroups: cgroup.Delegated | None = None


def _ancestors(paths: list[str], skip: set[str]) -> list[str]:
    found: set[str] = set()
    for path in paths:
        parent = os.path.dirname(path)
        while parent not in ("/", "") and parent not in skip:
            found.add(parent)
            parent = os.path.dirname(parent)
    return sorted(found, key=lambda p: (p.count("/"), p))


def _tops() -> list[tuple[str, str]]:
    """The merged-/usr symlinks (/bin -> usr/bin, /lib64 -> usr/lib64, ...) as (target, path)."""
    return [(os.readlink(t), t) for t in ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32") if os.path.islink(t)]


def options(spec: Spec, *, info_fd: int, block_fd: int, seccomp_fd: int | None, file_fds: list[tuple[int, str]]) -> list[str]:
    """bwrap's options (passed through --args, so the sandbox's /proc/1/cmdline shows no host paths).

    ``file_fds``: (fd, path inside) of the files written into the sandbox (the child, the
    evaluator, a venv's pyvenv.cfg), read-only for everyone."""
    mb = 1024 * 1024
    opts = [
        *("--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"),
        *("--userns-block-fd", str(block_fd), "--info-fd", str(info_fd)),
        *("--uid", "0", "--gid", "0"),  # bwrap's own setup; setpriv drops to SANDBOX_UID
        *("--hostname", "sandbox", "--die-with-parent", "--new-session"),
        # start() switches nested user namespaces off before bwrap goes on (--disable-userns
        # refuses --userns-block-fd); bwrap checks here that it took effect.
        "--assert-userns-disabled",
        # Only what setpriv needs to drop the uid and empty the bounding set.
        *("--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"),
        *("--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp"),
        *("--setenv", "TMPDIR", "/tmp", "--setenv", "LANG", "C.UTF-8"),
        # One thread per numeric library: its threads count against RLIMIT_NPROC, and its
        # buffers per thread against the memory each process may map.
        *("--setenv", "OPENBLAS_NUM_THREADS", "1", "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "MKL_NUM_THREADS", "1"),
    ]
    tops = _tops()
    for target, top in tops:
        opts += ["--symlink", target, top]
    inside = [i for _, i in spec.layout.binds] + [i for _, i in file_fds] + [i for _, i in spec.layout.symlinks]
    # bwrap would create the parents of a *file* mount point as 0700 root, which the
    # sandbox uid cannot traverse: make every ancestor 0755 first (not through a top symlink).
    for parent in _ancestors(inside, skip={t for _, t in tops}):
        opts += ["--perms", "0755", "--dir", parent]
    for source, dest in spec.layout.binds:
        opts += ["--ro-bind", source, dest]
    for target, dest in spec.layout.symlinks:
        opts += ["--symlink", target, dest]
    for fd, dest in file_fds:
        opts += ["--perms", "0444", "--file", str(fd), dest]
    opts += ["--dev", "/dev", "--proc", "/proc"]
    # --size only applies to the --tmpfs right after it (placed after, it is silently ignored).
    opts += ["--size", str(spec.limits.tmpfs_mb * mb), "--perms", "1777", "--tmpfs", "/tmp"]
    # bwrap's own / and /dev are writable tmpfs without a size cap: read-only for everyone.
    opts += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp"]
    if seccomp_fd is not None:
        opts += ["--seccomp", str(seccomp_fd)]
    return opts


def _files(spec: Spec) -> list[tuple[bytes, str]]:
    """What is written into the sandbox rather than bound: the child, the evaluator, the layout's files."""
    files = [*spec.layout.files, (CHILD.read_bytes(), CHILD_INSIDE)]
    return [*files, (spec.evaluator, EVALUATOR_INSIDE)] if spec.evaluator is not None else files


def command(spec: Spec) -> list[str]:
    """What bwrap runs: setpriv drops to the sandbox uid, prlimit sets the limits, then the child."""
    inner = spec.command or (spec.layout.python, "-I", "-B", CHILD_INSIDE)
    drop = [f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
    limits = prlimit_options(spec.limits, cgroup=spec.cgroups is not None)
    return [spec.tools.setpriv, *drop, spec.tools.prlimit, *limits, "--", *inner]


def allocate_host_uid() -> int:
    """A host uid no account and no process uses, for one batch (give it back with release_host_uid).

    Sharing one would be safe (RLIMIT_NPROC is counted per user namespace, and sandboxes
    cannot see each other), but a uid of its own makes "every process of that uid" mean
    exactly this batch, for the report and for anyone looking at the host. The /proc scan
    costs a few milliseconds.
    """
    busy = set(_in_use)
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, StopIteration, ValueError), open(f"/proc/{name}/status") as f:
                busy.add(int(next(line for line in f if line.startswith("Uid:")).split()[1]))
    for _ in range(100):
        uid = random.choice(_HOST_UIDS)
        if uid in busy:
            continue
        try:
            pwd.getpwuid(uid)
        except KeyError:
            _in_use.add(uid)
            return uid
    raise StartError(f"no free host uid in {_HOST_UIDS.start}-{_HOST_UIDS.stop - 1} for the sandbox")


def release_host_uid(uid: int) -> None:
    _in_use.discard(uid)


async def _read_to_eof(fd: int, timeout: float) -> bytes:
    """All of pipe ``fd`` (closed here) until its writers close it."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        transport.close()


def _write_maps(pid: int, host_uid: int) -> None:
    """The sandbox's uid and gid maps (two small procfs writes).

    bwrap's own setup needs a mapped uid 0 (host root: it must reach the bound files); the
    evaluator becomes SANDBOX_UID, which is ``host_uid`` outside, through setpriv.
    """
    for kind in ("uid", "gid"):
        with open(f"/proc/{pid}/{kind}_map", "w") as f:
            f.write(f"0 0 1\n{SANDBOX_UID} {host_uid} 1\n")


def _reap_if_ours(pidfd: int) -> None:
    """Reap the namespace's init if it became our child (WNOHANG: it has exited already).

    The outer bwrap may exit before the namespace's init, which is then re-parented to the
    nearest subreaper or to pid 1. When that is the bot (pid 1 of a container), nobody else
    would reap it and it would stay a zombie; otherwise this is ECHILD.
    """
    with contextlib.suppress(ChildProcessError):
        os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)


async def _readable(fd: int) -> None:
    """Wait until ``fd`` is readable (a pidfd is once its process has exited)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await done
    finally:
        loop.remove_reader(fd)


class Sandbox:
    """One running sandbox: the outer bwrap (``proc``) and the namespace init it made (``pidfd``)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pidfd: int | None = None  # the namespace init, once bwrap has made it
        self.cgroup: Path | None = None  # its own cgroup, where the host delegates one
        # Signals to the outer bwrap go through a pidfd, never proc.kill(): Popen polls
        # (and so reaps) an exited child before it signals, which steals the exit status
        # from asyncio's child watcher. ESRCH: it exited and was reaped already.
        self._bwrap_fd: int | None = None
        with contextlib.suppress(ProcessLookupError):
            self._bwrap_fd = os.pidfd_open(proc.pid)

    @classmethod
    async def start(cls, spec: Spec) -> Sandbox:
        """Build the sandbox and let it run its command. Raises StartError (the command never ran)."""
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        passed = [info_w, block_r]
        try:
            seccomp_fd = memfd(spec.seccomp) if spec.seccomp is not None else None
            if seccomp_fd is not None:
                passed.append(seccomp_fd)
            file_fds = [(memfd(data), inside) for data, inside in _files(spec)]
            passed += [fd for fd, _ in file_fds]
            args = options(spec, info_fd=info_w, block_fd=block_r, seccomp_fd=seccomp_fd, file_fds=file_fds)
            args_fd = memfd(b"".join(a.encode() + b"\0" for a in args))
            passed.append(args_fd)
            # An empty environment: the sandbox can read its pid 1's cmdline, and bwrap
            # needs nothing from ours.
            proc = await asyncio.create_subprocess_exec(
                spec.tools.bwrap,
                *("--args", str(args_fd), "--", *command(spec)),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=passed,
                env={},
                cwd="/",
                limit=LINE_LIMIT,
            )
        except BaseException:
            for fd in (info_r, block_w):
                os.close(fd)
            raise
        finally:
            for fd in passed:
                os.close(fd)
        box = cls(proc)
        try:
            await box._map_and_release(spec, info_r, block_w)
        except BaseException as exc:
            await box.stop(grace=0)
            if isinstance(exc, asyncio.CancelledError):
                raise
            said = await box._stderr_after_exit()
            if isinstance(exc, _GaveUp):
                raise StartError(said or str(exc)) from exc
            raise StartError(f"{type(exc).__name__}: {exc}" + (f" (bwrap said: {said})" if said else "")) from exc
        finally:
            os.close(block_w)
        return box

    async def _map_and_release(self, spec: Spec, info_r: int, block_w: int) -> None:
        """Map the uids, switch nested user namespaces off, then let bwrap go on."""
        raw = await _read_to_eof(info_r, _START_SECONDS)
        if not raw:
            raise _GaveUp("bwrap exited before it made the sandbox")
        info = json.loads(raw)
        pid = int(info["child-pid"])
        self.pidfd = os.pidfd_open(pid)
        # The pidfd is now bound to a process; make sure it is the one bwrap meant (its pid
        # cannot be recycled while the outer bwrap has not reaped it, but check anyway).
        if os.stat(f"/proc/{pid}/ns/pid").st_ino != info.get("pid-namespace"):
            raise StartError("the sandbox's init is not the process bwrap reported")
        _write_maps(pid, spec.host_uid)
        if spec.cgroups is not None:  # before anything of the sandbox runs: all of it is inside
            lim = spec.limits
            self.cgroup = cgroup.place(
                spec.cgroups, f"sandbox-{spec.host_uid}", pid, memory_mb=lim.memory_mb, max_processes=lim.max_processes
            )
        # No user namespaces below ours. nsenter, because entering a user namespace needs a
        # single-threaded process, which the bot is not.
        nsenter = await asyncio.create_subprocess_exec(
            spec.tools.nsenter,
            *(f"--user=/proc/{pid}/ns/user", "--", "/bin/sh", "-c", "echo 0 > /proc/sys/user/max_user_namespaces"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={},
            cwd="/",
        )
        try:
            _, err = await asyncio.wait_for(nsenter.communicate(), _START_SECONDS)
        finally:
            if nsenter.returncode is None:
                nsenter.kill()
                await nsenter.wait()
        if nsenter.returncode != 0:
            raise StartError(f"nsenter could not switch nested user namespaces off: {err.decode(errors='replace').strip()}")
        os.write(block_w, b"1")

    async def _stderr_after_exit(self) -> str:
        """What bwrap said before it gave up (nothing of the evaluator has run, so it is short)."""
        assert self.proc.stderr is not None
        with contextlib.suppress(TimeoutError):
            return (await asyncio.wait_for(self.proc.stderr.read(), 2))[-4000:].decode(errors="replace").strip()
        return ""

    async def stop(self, *, grace: float) -> None:
        """End the sandbox; on return nothing of it runs any more.

        ``grace``: seconds to let the command finish by itself first (its stdin is closed),
        so that what it printed is flushed rather than lost to the kill.
        """
        if grace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), grace)
        if self.pidfd is not None:
            # The kernel kills every process of a PID namespace when its init dies.
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_readable(self.pidfd), _END_SECONDS)
        elif self._bwrap_fd is not None:  # bwrap had not made the namespace yet: --die-with-parent ends the rest
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._bwrap_fd, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), _END_SECONDS)
        if self.pidfd is not None:
            _reap_if_ours(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        if self._bwrap_fd is not None:
            os.close(self._bwrap_fd)
            self._bwrap_fd = None
        if self.cgroup is not None:
            cgroup.remove(self.cgroup)
            self.cgroup = None

    @staticmethod
    def killed_by(code: int | None) -> int | None:
        """The signal that ended the command, from bwrap's exit status (128 + the signal, like a shell)."""
        if code is not None and code < 0:
            return -code
        return code - 128 if code is not None and 128 < code < 128 + 65 else None
