"""Can the evaluator sandbox be built on this machine? One probe, cached, and what to do if not.

The probe builds the real sandbox (same binds, uid map, nested-namespace switch, seccomp
program and limits) and runs the sandboxed interpreter with ``-c pass`` in it: about 60 ms
the first time. Success is cached for the life of the process; a failure is not, so
installing bubblewrap or allowing namespaces takes effect without a restart.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pipeline.evaluation.eval_types import SandboxLimits
from pipeline.evaluation.sandbox.bwrap import Sandbox, Spec, StartError, Tools, allocate_host_uid, release_host_uid
from pipeline.evaluation.sandbox.layout import layout
from pipeline.evaluation.sandbox.protocol import clip
from pipeline.evaluation.sandbox.syscall_filter import evaluator_program

# Where util-linux lives, whatever PATH the bot was started with.
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MIN_VERSION = (0, 8)  # --size (0.7) and --assert-userns-disabled (0.8)
_PROBE_SECONDS = 15.0


@dataclass(frozen=True)
class Host:
    """What the probe found: the tools and bubblewrap's version, or the problem."""

    tools: Tools | None
    version: str
    problem: str | None


_working: dict[tuple[str, str], Host] = {}


def explain(said: str) -> str:
    """The sentence for an administrator, from what bwrap (or the uid mapping) said when it failed."""
    quote = f"(bwrap said: {clip(said.removeprefix('bwrap: ').strip(), 300)})"
    if re.search(r"new namespace|max_\*_namespaces|user namespace", said, re.IGNORECASE):
        return (
            f"the kernel refused a new user namespace {quote}; run the bot as root on a host that allows user "
            "namespaces (sysctl user.max_user_namespaces above 0), or in a container that may create them "
            "(Docker: a seccomp profile that allows unshare and clone with namespace flags)"
        )
    if "Unknown option" in said:
        return f"bubblewrap is too old {quote}; the sandbox needs bubblewrap 0.8 or newer (Debian 12: apt-get install bubblewrap)"
    if "uid_map" in said or "gid_map" in said or "Operation not permitted" in said:
        return f"the sandbox's user ids could not be mapped {quote}; run the bot as root (it needs CAP_SETUID and CAP_SETGID)"
    return f"bubblewrap could not build the evaluator sandbox {quote}"


def _version(bwrap: str) -> tuple[str, tuple[int, ...]]:
    out = subprocess.run([bwrap, "--version"], capture_output=True, text=True, env={}, timeout=10).stdout
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    if not found:
        return out.strip() or "unknown", ()
    return found.group(0), tuple(int(x) for x in found.groups() if x is not None)


async def _attempt(spec: Spec) -> str | None:
    try:
        box = await Sandbox.start(spec)
    except StartError as exc:
        return explain(str(exc))
    except OSError as exc:  # bwrap could not even be started (e.g. out of processes)
        return f"bubblewrap could not be started: {exc}"
    try:
        assert box.proc.stdin is not None and box.proc.stderr is not None
        box.proc.stdin.close()
        err = await asyncio.wait_for(box.proc.stderr.read(), _PROBE_SECONDS)
        code = await box.proc.wait()
    except TimeoutError:
        return f"the evaluator sandbox did not finish a trial run within {_PROBE_SECONDS:.0f} s"
    finally:
        await box.stop(grace=0)
    if code != 0:
        said = err[-300:].decode(errors="replace").strip() or f"exit status {code}"
        return f"the evaluator sandbox starts, but the interpreter in it does not ({said})"
    return None


def _find(bwrap: str, python: str) -> Host:
    path = shutil.which(bwrap) or shutil.which(bwrap, path=_SYSTEM_PATH)
    if path is None:
        return Host(None, "", "bubblewrap is not installed: apt-get install bubblewrap")
    util = {name: shutil.which(name, path=_SYSTEM_PATH) for name in ("setpriv", "prlimit", "nsenter")}
    missing = [name for name, where in util.items() if where is None]
    if missing:
        return Host(None, "", f"{missing[0]} is not installed: apt-get install util-linux")
    tools = Tools(bwrap=path, setpriv=str(util["setpriv"]), prlimit=str(util["prlimit"]), nsenter=str(util["nsenter"]))
    if os.geteuid() != 0:
        return Host(
            None,
            "",
            "the bot does not run as root, which the sandbox needs to give the evaluator a host uid of its own: run it as root",
        )
    try:
        version, numbers = _version(path)
    except (OSError, subprocess.SubprocessError) as exc:
        return Host(None, "", f"bubblewrap ({path}) does not run: {exc}")
    if numbers < _MIN_VERSION:
        return Host(
            None,
            version,
            f"bubblewrap {version} is too old; the sandbox needs 0.8 or newer (Debian 12: apt-get install bubblewrap)",
        )
    try:
        lay = layout(python, (tools.setpriv, tools.prlimit))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return Host(None, version, f"the interpreter {python} could not say where its files are: {exc}")
    try:
        uid = allocate_host_uid()
    except StartError as exc:
        return Host(None, version, str(exc))
    spec = Spec(tools, lay, SandboxLimits(), uid, None, evaluator_program().bpf, (lay.python, "-I", "-B", "-c", "pass"))
    try:
        # A loop of its own in a thread of its own: callable from sync code and from inside
        # the bot's running loop alike.
        with ThreadPoolExecutor(1, thread_name_prefix="sandbox-probe") as pool:
            problem = pool.submit(asyncio.run, _attempt(spec)).result()
    finally:
        release_host_uid(uid)
    return Host(tools if problem is None else None, version, problem)


def host(bwrap: str = "bwrap", python: str = sys.executable) -> Host:
    """The probe's findings for this bubblewrap and interpreter (cached once they work)."""
    key = (bwrap, python)
    if key in _working:
        return _working[key]
    found = _find(bwrap, python)
    if found.problem is None:
        _working[key] = found
    return found


def sandbox_problem(bwrap: str = "bwrap") -> str | None:
    """None when evaluators can be isolated here; otherwise one sentence naming what is missing and how to enable it."""
    return host(bwrap).problem
