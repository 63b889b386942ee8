"""What the bubblewrap sandbox keeps from an evaluator, checked from the host side wherever possible.

Each evaluator here really attacks (tests/pipeline/evaluation/test_sandbox_unavailable.py runs the same ones
without isolation and sees them succeed), so a containment that stopped holding would fail
these tests rather than pass them quietly.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.evaluation.eval_types import SandboxLimits
from pipeline.evaluation.sandbox.batch import run_evaluator
from tests.pipeline.evaluation.sandbox_support import (
    CONNECTOR,
    FAST,
    HOST_UID,
    PROTOCOL_FD,
    READER,
    examples,
    live_processes,
    write,
)

ROOT = Path(__file__).resolve().parents[3]


def reason(run_reason: str) -> dict[str, Any]:
    """The evaluator's report, which these evaluators send as their reason."""
    out: dict[str, Any] = json.loads(run_reason)
    return out


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory anyone may enter (0755), so only the sandbox's view can keep a file in it unread."""
    path = Path(tempfile.mkdtemp(prefix="sftbot-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("seccomp", [True, False], ids=["seccomp", "namespaces-alone"])
async def test_no_tcp_connection_reaches_a_listener_on_the_host(tmp_path: Path, seccomp: bool) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        truth = json.dumps({"port": server.getsockname()[1]})
        run = await run_evaluator(
            write(tmp_path, CONNECTOR), examples("x", truth=truth), limits=FAST.model_copy(update={"seccomp": seccomp})
        )
        assert run.fatal is None, run
        out = reason(run.scores[0].reason)
        with pytest.raises(BlockingIOError):  # a connection, had one been made, would be queued by now
            server.accept()
    assert "CONNECTED" not in json.dumps(out)
    if seccomp:  # the filter refuses every socket family but AF_UNIX
        assert "Errno 97" in str(out["socket"]) and "Errno 97" in str(out["_socket"]) and out["libc"] == "socket errno 97"
    else:  # the network namespace alone: its own loopback, no route anywhere
        assert "Connection refused" in str(out["socket"]) and "Connection refused" in str(out["_socket"])
        assert out["libc"] == "connect errno 111" and out["routes"] == 0
    assert run.containment["seccomp"].startswith("os: deny list" if seccomp else "off")


async def test_no_unix_socket_reaches_the_host(tmp_path: Path, open_dir: Path) -> None:
    path = open_dir / "bot.sock"
    name = f"sftbot-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX) as on_disk, socket.socket(socket.AF_UNIX) as abstract:
        on_disk.bind(str(path))
        path.chmod(0o777)
        abstract.bind("\0" + name)
        for s in (on_disk, abstract):
            s.listen()
            s.setblocking(False)
        source = """
        import json, socket

        def evaluate(messages, ground_truth=None, **kwargs):
            out = {}
            for key, address in json.loads(ground_truth).items():
                try:
                    socket.socket(socket.AF_UNIX).connect(address)
                    out[key] = "CONNECTED"
                except OSError as exc:
                    out[key] = type(exc).__name__
            return {"score": 1.0, "reason": json.dumps(out)}
        """
        truth = json.dumps({"path": str(path), "abstract": "\0" + name})
        run = await run_evaluator(write(tmp_path, source), examples("x", truth=truth), limits=FAST)
        for s in (on_disk, abstract):
            with pytest.raises(BlockingIOError):
                s.accept()
    # No host /tmp in the sandbox; abstract sockets belong to the network namespace.
    assert reason(run.scores[0].reason) == {"path": "FileNotFoundError", "abstract": "ConnectionRefusedError"}


async def test_no_read_of_the_data_dir_the_working_directory_or_the_host(
    tmp_path: Path, open_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, cwd = open_dir / "data", open_dir / "cwd"
    for d in (data, cwd):
        d.mkdir(mode=0o755)
    (data / "runs.sqlite3").write_text("SECRET rows")
    (cwd / ".env").write_text("SLACK_BOT_TOKEN=SECRET-token\n")
    monkeypatch.setenv("SFTBOT_DATA_DIR", str(data))
    monkeypatch.chdir(cwd)
    paths = [str(data / "runs.sqlite3"), str(cwd / ".env"), ".env", "/etc/passwd", "/etc/shadow", "/root/.bashrc"]
    run = await run_evaluator(write(tmp_path, READER), examples("x", truth=json.dumps({"paths": paths})), limits=FAST)
    out = reason(run.scores[0].reason)
    assert "SECRET" not in run.model_dump_json()
    assert all(out[p] == "FileNotFoundError" for p in paths), out
    assert out["found_by_walking"] == []  # nor through /proc/*/root, /proc/*/cwd or /proc/*/fd/*/../..
    assert out["cwd"] == "/tmp"
    assert set(out["root"]) <= set("bin dev lib lib32 lib64 libx32 proc root sandbox sbin tmp usr venv".split()), out


async def test_writes_land_only_in_its_own_tmpfs_which_the_next_batch_does_not_see(tmp_path: Path, open_dir: Path) -> None:
    evaluator_dir = open_dir / "evaluators"
    evaluator_dir.mkdir()
    evaluator_dir.chmod(0o777)  # even a world-writable folder of the original file is out of reach
    marker = f"sftbot-test-{secrets.token_hex(6)}"
    source = """
    import json, os, sys

    def evaluate(messages, ground_truth=None, **kwargs):
        t = json.loads(ground_truth)
        if messages[-1]["content"] == "look":
            return {"score": 1.0, "reason": json.dumps(os.path.exists("/tmp/" + t["marker"]))}
        dirs = ["/tmp", "/var/tmp", "/dev/shm", "/", "/sandbox", "/dev", t["evaluator_dir"], *sys.path[1:]]
        out = {}
        for d in dirs:
            try:
                with open(os.path.join(d, t["marker"]), "w") as f:
                    f.write("x")
                out[d] = "WROTE"
            except OSError as exc:
                out[d] = type(exc).__name__
        try:
            with open(__file__, "a") as f:
                f.write("# appended")
            out["itself"] = "WROTE"
        except OSError as exc:
            out["itself"] = type(exc).__name__
        st = os.statvfs("/tmp")
        out["tmpfs_mb"] = st.f_blocks * st.f_frsize // 2**20
        written = 0
        try:
            while written < 64:
                with open(f"/tmp/fill{written}", "wb") as f:
                    f.write(b"x" * 2**20)
                written += 1
        except OSError as exc:
            out["fill"] = [written, exc.strerror]
        return {"score": 1.0, "reason": json.dumps(out)}
    """
    path = write(evaluator_dir, source)
    before = path.read_bytes()
    truth = json.dumps({"marker": marker, "evaluator_dir": str(evaluator_dir)})
    limits = FAST.model_copy(update={"tmpfs_mb": 8})
    run = await run_evaluator(path, examples("write", truth=truth), limits=limits)
    out = reason(run.scores[0].reason)
    assert [d for d, what in out.items() if what == "WROTE"] == ["/tmp"], out
    assert out["tmpfs_mb"] == 8 and out["fill"][0] <= 8 and out["fill"][1] == "No space left on device", out
    for d in ("/tmp", "/var/tmp", "/dev/shm", str(evaluator_dir), str(tmp_path)):
        assert not os.path.exists(os.path.join(d, marker)), d
    assert path.read_bytes() == before
    again = await run_evaluator(path, examples("look", truth=truth), limits=limits)
    assert again.scores[0].reason == "false"  # a fresh tmpfs: the first batch's files are gone


SLEEPER = "signal.pause()"  # on the sleeper's command line, before the tag
ESCAPER = (
    HOST_UID
    + """
import json, os, signal, sys

def evaluate(messages, ground_truth=None, **kwargs):
    tag = json.loads(ground_truth)["tag"]
    r, w = os.pipe()  # close-on-exec: EOF once the grandchild has become the sleeper
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)
            # The interpreter is the only program in the sandbox: it sleeps, with the tag on its command line.
            os.execv(sys.executable, [sys.executable, "-I", "-c", "import signal; signal.pause()", tag])
        os._exit(0)
    os.close(w)
    os.read(r, 1)
    os.wait()
    return {"score": 1.0, "reason": json.dumps({"uid": host_uid()})}
"""
)


async def test_nothing_outlives_the_batch_not_even_a_setsid_double_fork(tmp_path: Path) -> None:
    tag = f"{secrets.randbelow(10**6) + 10**6}.5"  # the sleeper's last argument: unique on this machine
    run = await run_evaluator(write(tmp_path, ESCAPER), examples("x", truth=json.dumps({"tag": tag})), limits=FAST)
    assert run.fatal is None, run
    uid = int(reason(run.scores[0].reason)["uid"])
    assert uid >= 61000 and f"host uid {uid}," in run.containment["identity"]
    assert live_processes(uid=uid) == [] and live_processes(marker=f"{SLEEPER}\0{tag}") == []


def test_as_pid_1_the_bot_is_left_no_zombies(tmp_path: Path) -> None:
    """In a container the bot may be pid 1, and every orphan is then its child to reap."""
    tag = f"{secrets.randbelow(10**6) + 10**6}.5"
    path = write(tmp_path, ESCAPER)
    script = f"""
import asyncio, json, os, pipeline
assert pipeline.__file__.startswith({str(ROOT)!r}), pipeline.__file__
from pipeline.evaluation.eval_types import EvalExample
from pipeline.evaluation.sandbox.batch import run_evaluator

ex = [EvalExample(index=0, messages=[], ground_truth=json.dumps({{"tag": {tag!r}}}))]
run = asyncio.run(run_evaluator({str(path)!r}, ex))
states = {{}}
for pid in filter(str.isdigit, os.listdir("/proc")):
    with open(f"/proc/{{pid}}/stat") as f:
        states[pid] = f.read().rsplit(")", 1)[1].split()[0]
print(json.dumps({{"pid": os.getpid(), "fatal": run.fatal, "processes": states}}))
"""
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["pid"] == 1 and out["fatal"] is None, out
    assert out["processes"] == {"1": "R"}, out  # no zombie, nothing left running


def test_if_the_bot_is_killed_mid_batch_the_sandbox_dies_with_it(tmp_path: Path) -> None:
    tag = f"{secrets.randbelow(10**6) + 10**6}.5"
    hang = ESCAPER.replace("    return {", "    signal.pause()\n    return {")
    script = tmp_path / "bot.py"  # a file, so that the tag is on no command line but the sleeper's
    script.write_text(f"""
import asyncio, json, pipeline
assert pipeline.__file__.startswith({str(ROOT)!r}), pipeline.__file__  # this checkout's sandbox, not an installed one
from pipeline.evaluation.eval_types import EvalExample, SandboxLimits
from pipeline.evaluation.sandbox.batch import run_evaluator

ex = [EvalExample(index=0, messages=[], ground_truth=json.dumps({{"tag": {tag!r}}}))]
asyncio.run(run_evaluator({str(write(tmp_path, hang))!r}, ex, limits=SandboxLimits(per_example_seconds=60)))
""")
    sleeper = f"{SLEEPER}\0{tag}"
    # TMPDIR: the killed bot cannot remove its scratch directory; let pytest do it.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    bot = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=env)
    pidfds: list[int] = []
    uid: int | None = None
    try:
        # Nothing crosses the sandbox's boundary to say the sleeper has started (that is the
        # point of it), so look for it, a few times a second.
        deadline = time.monotonic() + 20
        while not (found := live_processes(marker=sleeper)) and time.monotonic() < deadline and bot.poll() is None:
            time.sleep(0.02)
        assert found, "the evaluator's sleeper never started"
        pidfds = [os.pidfd_open(pid) for pid in found]
        uid = os.stat(f"/proc/{found[0]}").st_uid
        bot.send_signal(signal.SIGKILL)
        bot.wait()
        # A pidfd becomes readable when its process has exited.
        assert [fd for fd in pidfds if not select.select([fd], [], [], 5)[0]] == [], "the sandbox outlived the bot"
    finally:
        bot.kill()
        bot.wait()
        for fd in pidfds:  # after a failure: leave nothing of the sandbox behind
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            os.close(fd)
        for pid in live_processes(uid=uid) if uid is not None else []:  # its init exits with its last child
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def test_no_nested_namespaces_ptrace_or_mounts(tmp_path: Path) -> None:
    source = """
    import ctypes, json, os

    def evaluate(messages, ground_truth=None, **kwargs):
        libc = ctypes.CDLL(None, use_errno=True)
        def call(fn, *args):
            return "ok" if fn(*args) == 0 else os.strerror(ctypes.get_errno())
        out = {
            "unshare(NEWUSER)": call(libc.unshare, 0x10000000),
            "unshare(NEWNET)": call(libc.unshare, 0x40000000),
            "ptrace(ATTACH, 1)": call(libc.ptrace, 16, 1, 0, 0),
            "mount tmpfs": call(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None),
            "kill(1)": call(libc.kill, 1, 9),
        }
        return {"score": 1.0, "reason": json.dumps(out)}
    """
    path = write(tmp_path, source)
    with_filter = reason((await run_evaluator(path, examples("x"), limits=FAST)).scores[0].reason)
    assert set(with_filter.values()) == {"Operation not permitted"}, with_filter
    # Without the filter the nested-namespace switch holds on its own: no user namespace left to make.
    alone = reason((await run_evaluator(path, examples("x"), limits=FAST.model_copy(update={"seccomp": False}))).scores[0].reason)
    assert alone["unshare(NEWUSER)"] == "No space left on device", alone
    assert {k: v for k, v in alone.items() if "NEWUSER" not in k} == dict.fromkeys(
        ("unshare(NEWNET)", "ptrace(ATTACH, 1)", "mount tmpfs", "kill(1)"), "Operation not permitted"
    ), alone


async def test_the_containment_report_is_the_parents_not_the_evaluators(tmp_path: Path) -> None:
    forger = (
        PROTOCOL_FD
        + """
import json
fd = protocol_fd()
os.write(fd, json.dumps({"t": "ready", "containment": {"network": "FORGED: all isolated"}}).encode() + b"\\n")

def evaluate(messages, ground_truth=None, **kwargs):
    return 1.0
"""
    )
    honest = await run_evaluator(
        write(tmp_path, "def evaluate(messages, ground_truth=None, **kw):\n    return 1.0\n"), examples("x")
    )
    forged = await run_evaluator(write(tmp_path, forger, "forger.py"), examples("x"))
    assert (
        forged.fatal == "The evaluator forger.py broke the sandbox protocol before it was ready (it wrote to its result channel)"
    )
    assert "FORGED" not in forged.model_dump_json()

    def without_uid(report: dict[str, str]) -> dict[str, str]:
        return {k: v.split("host uid")[0] for k, v in report.items()}

    assert without_uid(forged.containment) == without_uid(honest.containment) != {}
    assert honest.containment["network"].startswith("os: own network namespace")


async def test_limits_reach_the_sandbox(tmp_path: Path) -> None:
    source = """
    import json, resource

    def evaluate(messages, ground_truth=None, **kwargs):
        names = ("CPU", "AS", "NPROC", "NOFILE", "FSIZE", "CORE")
        return {"score": 1.0, "reason": json.dumps({n: resource.getrlimit(getattr(resource, "RLIMIT_" + n)) for n in names})}
    """
    # 900 MB for the sandbox, 9 processes: each may map 100 MB (no cgroup on the test host)
    limits = SandboxLimits(cpu_seconds=7, memory_mb=900, max_processes=9, max_open_files=99, max_file_mb=3)
    run = await run_evaluator(write(tmp_path, source), examples("x"), limits=limits)
    mb = 2**20
    share = 900 if "cgroup memory.max" in run.containment["limits"] else 100  # a delegated cgroup bounds the whole
    assert reason(run.scores[0].reason) == {
        "CPU": [7, 8],
        "AS": [share * mb, share * mb],
        "NPROC": [9, 9],
        "NOFILE": [99, 99],
        "FSIZE": [3 * mb, 3 * mb],
        "CORE": [0, 0],
    }
