"""The evaluator sandbox's seccomp program: a deny list that libseccomp compiles to classic BPF.

bwrap installs the program (``--seccomp FD``) just before it starts the evaluator's process.
It is a second layer: the namespaces already keep the evaluator off the network and the
host's files, and the filter shrinks the kernel surface it can poke at (mounts, nested
namespaces, ptrace, bpf, io_uring, keyrings, ...) and refuses every socket family but
AF_UNIX even if a namespace were missing.

libseccomp does the compiling (architecture checks, the x32 bit, argument comparisons);
writing BPF by hand is how filters get those wrong. It is reached through the five
functions below with ctypes rather than a Python package because the two bindings there are
don't fit: Debian's ``python3-seccomp`` imports only into the system interpreter, not the
bot's venv, and PyPI's ``pyseccomp`` is an unmaintained (2021), untyped ctypes wrapper of
the same library. ``libseccomp2`` itself is on every Debian machine (apt depends on it).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

_ALLOW = 0x7FFF0000  # SCMP_ACT_ALLOW
_NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name(): no such system call
NE, MASKED_EQ = 1, 7  # enum scmp_compare

AF_UNIX = 1
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
CLONE_NAMESPACE_BITS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C


@dataclass(frozen=True)
class Arg:
    """A condition on argument ``index`` of the call: ``op`` is NE (value != a) or MASKED_EQ ((value & a) == b)."""

    index: int
    op: int
    a: int
    b: int = 0


@dataclass(frozen=True)
class Rule:
    """Fail ``syscall`` with ``errno`` (when every ``args`` condition holds)."""

    syscall: str
    errno: int = errno.EPERM
    args: tuple[Arg, ...] = field(default_factory=tuple)


# System calls an evaluator has no business making. The capabilities are already gone, so
# most would fail anyway; refusing them here also closes the kernel code behind them.
_DENIED = (
    # namespaces, mounts, root changes
    *("unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount"),
    *("fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"),
    # reading or steering other processes
    *("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"),
    # large attack surface that Python evaluators never need
    *("bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register"),
    *("keyctl", "add_key", "request_key", "personality", "uselib", "open_by_handle_at", "name_to_handle_at"),
    *("lookup_dcookie", "quotactl", "quotactl_fd", "kexec_load", "kexec_file_load", "init_module"),
    *("finit_module", "delete_module", "acct", "swapon", "swapoff", "reboot", "syslog", "settimeofday"),
    *("clock_settime", "clock_adjtime", "adjtimex", "vhangup", "iopl", "ioperm", "fanotify_init"),
    *("mbind", "migrate_pages", "move_pages", "set_mempolicy"),
)

EVALUATOR_RULES: tuple[Rule, ...] = (
    *(Rule(name) for name in _DENIED),
    # Only AF_UNIX sockets (socketpair, which asyncio and multiprocessing use): no network
    # family even if the network namespace were missing.
    Rule("socket", errno.EAFNOSUPPORT, (Arg(0, NE, AF_UNIX),)),
    # clone with any namespace flag (one rule per bit: a masked compare with the whole mask
    # would match only all bits at once). clone3 passes its flags in memory, where a filter
    # cannot look: ENOSYS makes glibc fall back to clone (what Docker and Flatpak do).
    *(Rule("clone", errno.EPERM, (Arg(0, MASKED_EQ, bit, bit),)) for bit in CLONE_NAMESPACE_BITS),
    Rule("clone3", errno.ENOSYS),
    # Typing into a terminal (bwrap --new-session already takes the terminal away).
    Rule("ioctl", errno.EPERM, (Arg(1, MASKED_EQ, 0xFFFFFFFF, _TIOCSTI),)),
    Rule("ioctl", errno.EPERM, (Arg(1, MASKED_EQ, 0xFFFFFFFF, _TIOCLINUX),)),
)


class _ArgCmp(ctypes.Structure):
    _fields_ = (("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64))


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint))


@cache
def _libseccomp() -> ctypes.CDLL:
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_init.argtypes, lib.seccomp_init.restype = (ctypes.c_uint32,), ctypes.c_void_p
    lib.seccomp_release.argtypes, lib.seccomp_release.restype = (ctypes.c_void_p,), None
    lib.seccomp_syscall_resolve_name.argtypes, lib.seccomp_syscall_resolve_name.restype = (ctypes.c_char_p,), ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp))
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_export_bpf.argtypes, lib.seccomp_export_bpf.restype = (ctypes.c_void_p, ctypes.c_int), ctypes.c_int
    lib.seccomp_version.argtypes, lib.seccomp_version.restype = (), ctypes.POINTER(_Version)
    return lib


def compile_rules(rules: Iterable[Rule]) -> bytes:
    """A BPF program (bytes for ``bwrap --seccomp``) that allows everything but ``rules``.

    Raises OSError when libseccomp is missing or refuses a rule. A system call this
    libseccomp does not know for the machine's architecture is skipped: there is nothing to deny.
    """
    lib = _libseccomp()
    ctx = lib.seccomp_init(_ALLOW)
    if not ctx:
        raise OSError(errno.ENOMEM, "seccomp_init failed")
    try:
        for rule in rules:
            number = lib.seccomp_syscall_resolve_name(rule.syscall.encode())
            if number == _NR_SCMP_ERROR:
                continue
            conditions = (_ArgCmp * len(rule.args))(*(_ArgCmp(a.index, a.op, a.a, a.b) for a in rule.args))
            rc = lib.seccomp_rule_add_array(ctx, 0x00050000 | (rule.errno & 0xFFFF), number, len(rule.args), conditions)
            if rc < 0:
                raise OSError(-rc, f"libseccomp refused the rule for {rule.syscall}: {os.strerror(-rc)}")
        out = os.memfd_create("sftbot-seccomp-export")
        try:
            rc = lib.seccomp_export_bpf(ctx, out)
            if rc < 0:
                raise OSError(-rc, f"seccomp_export_bpf: {os.strerror(-rc)}")
            size = os.lseek(out, 0, os.SEEK_END)
            return os.pread(out, size, 0)
        finally:
            os.close(out)
    finally:
        lib.seccomp_release(ctx)


@dataclass(frozen=True)
class Program:
    """The evaluator's filter, or why there is none (``bpf`` None, ``note`` says why)."""

    bpf: bytes | None
    note: str


@cache
def evaluator_program() -> Program:
    """The compiled deny list for evaluators, built once per process.

    Without libseccomp the sandbox runs without the filter, and the containment report
    says so. That is a weaker mode, accepted on purpose: the namespaces are the containment
    and keep the network and the host's files out without the filter, and nested user
    namespaces stay off (the tests run with the filter off too). Refusing evaluators here
    would push administrators to the unsafe switch, which keeps nothing.
    """
    try:
        bpf = compile_rules(EVALUATOR_RULES)
        v = _libseccomp().seccomp_version().contents
    except OSError as exc:
        return Program(None, f"off: libseccomp could not build the filter ({exc}); apt-get install libseccomp2")
    return Program(
        bpf,
        f"os: deny list of {len(EVALUATOR_RULES)} rules ({len(bpf) // 8} BPF instructions, libseccomp {v.major}.{v.minor}.{v.micro})",
    )


def memfd(program: bytes) -> int:
    """A fresh fd holding ``program`` at offset 0, for ``bwrap --seccomp FD`` (bwrap reads it to EOF)."""
    fd = os.memfd_create("sftbot-seccomp")
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
