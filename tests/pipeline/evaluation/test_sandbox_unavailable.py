"""Fail closed: where the sandbox cannot be built, an evaluator does not run, unless an admin says so.

"Cannot be built" is simulated the way it happens, without touching the host: bubblewrap
that is not installed; bubblewrap started where user namespaces are switched off
(user.max_user_namespaces=0, set inside a throwaway user namespace); bubblewrap under a
seccomp filter that refuses namespace system calls, as Docker's default profile does.
"""

from __future__ import annotations

import errno
import json
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.evaluation.sandbox.batch import run_evaluator
from pipeline.evaluation.sandbox.probe import sandbox_problem
from pipeline.evaluation.sandbox.syscall_filter import CLONE_NAMESPACE_BITS, MASKED_EQ, Arg, Rule, compile_rules
from tests.pipeline.evaluation.sandbox_support import CONNECTOR, FAST, READER, examples, write


def no_userns_bwrap(tmp_path: Path) -> Path:
    """bwrap on a host with user.max_user_namespaces=0 (util-linux only; the host's value is untouched)."""
    script = tmp_path / "bwrap-no-userns"
    script.write_text(
        "#!/bin/sh\n"
        "exec unshare --user --map-root-user /bin/sh -c "
        """'echo 0 > /proc/sys/user/max_user_namespaces && exec /usr/bin/bwrap "$@"' sh "$@"\n"""
    )
    script.chmod(0o755)
    return script


def docker_like_bwrap(tmp_path: Path) -> Path:
    """bwrap under a filter that refuses unshare, setns and clone with namespace flags (EPERM), like Docker's."""
    rules = [Rule("unshare"), Rule("setns"), Rule("clone3", errno.ENOSYS)]
    rules += [Rule("clone", errno.EPERM, (Arg(0, MASKED_EQ, bit, bit),)) for bit in CLONE_NAMESPACE_BITS]
    program = tmp_path / "deny-namespaces.bpf"
    program.write_bytes(compile_rules(rules))
    script = tmp_path / "bwrap-docker-like"
    # An outer bwrap only to install the filter: it binds the whole host and unshares nothing but mounts.
    script.write_text(f'#!/bin/sh\nexec 9< {program}\nexec /usr/bin/bwrap --dev-bind / / --seccomp 9 -- /usr/bin/bwrap "$@"\n')
    script.chmod(0o755)
    return script


REFUSED = {
    "no-user-namespaces": (no_userns_bwrap, "max_*_namespaces exceeded"),
    "docker-like-seccomp": (docker_like_bwrap, "No permissions to create new namespace"),
}


def marking_evaluator(tmp_path: Path, marker: Path) -> Path:
    """An evaluator that leaves ``marker`` on the host the moment any of it runs."""
    source = f"""
    open({str(marker)!r}, "a").write("loaded\\n")

    def evaluate(messages, ground_truth=None, **kwargs):
        open({str(marker)!r}, "a").write("scored\\n")
        return 1.0
    """
    return write(tmp_path, source)


@pytest.fixture
def marker() -> Iterator[Path]:
    path = Path(f"/tmp/sftbot-test-ran-{secrets.token_hex(6)}")
    yield path
    path.unlink(missing_ok=True)


@pytest.mark.parametrize("how", REFUSED)
async def test_where_the_kernel_refuses_namespaces_the_evaluator_does_not_run(
    tmp_path: Path, marker: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    make, said = REFUSED[how]
    bwrap = str(make(tmp_path))
    problem = sandbox_problem(bwrap)
    assert problem is not None and problem.startswith("the kernel refused a new user namespace") and said in problem
    run = await run_evaluator(
        marking_evaluator(tmp_path, marker), examples("a", "b"), limits=FAST.model_copy(update={"bwrap": bwrap})
    )
    assert not marker.exists(), "the evaluator ran without its sandbox"
    assert run.fatal == f"The evaluator was not run, because the sandbox cannot be set up here: {problem}"
    assert run.mean is None and run.errors == 2 and all(s.score is None for s in run.scores)
    assert run.containment == {"sandbox": f"unavailable, evaluator refused: {problem}"}
    # bwrap gave up at once; ending it must not reap it behind asyncio's child watcher
    assert not [r for r in caplog.records if "Unknown child process" in r.getMessage()]


async def test_without_bubblewrap_the_evaluator_does_not_run(tmp_path: Path, marker: Path) -> None:
    limits = FAST.model_copy(update={"bwrap": "bwrap-not-installed-here"})
    run = await run_evaluator(marking_evaluator(tmp_path, marker), examples("a"), limits=limits)
    assert not marker.exists()
    assert run.fatal is not None and run.fatal.endswith(": bubblewrap is not installed: apt-get install bubblewrap")


async def test_the_unsafe_switch_runs_it_without_isolation_and_says_so(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bwrap = str(no_userns_bwrap(tmp_path))
    unsafe = FAST.model_copy(update={"bwrap": bwrap, "unsafe": True})
    run = await run_evaluator(marking_evaluator(tmp_path, marker), examples("a"), limits=unsafe)
    assert marker.read_text() == "loaded\nscored\n" and run.fatal is None and run.mean == 1.0
    problem = sandbox_problem(bwrap)
    assert run.containment["unsafe"].startswith("SFTBOT_UNSAFE_EVALUATORS is on and the sandbox is unavailable")
    assert problem is not None and problem in run.containment["unsafe"]
    assert run.containment["network"].startswith("none") and run.containment["filesystem"].startswith("none")

    # And it really is unsafe: the attack evaluators that the sandbox stops (test_sandbox_isolation.py) get through.
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=SECRET-token\n")
    monkeypatch.chdir(tmp_path)
    read = await run_evaluator(
        write(tmp_path, READER, "reader.py"), examples("x", truth=json.dumps({"paths": [str(tmp_path / ".env")]})), limits=unsafe
    )
    seen = json.loads(read.scores[0].reason)
    assert "SECRET-token" in seen[str(tmp_path / ".env")] and seen["found_by_walking"] != []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        truth = json.dumps({"port": server.getsockname()[1]})
        tcp = await run_evaluator(write(tmp_path, CONNECTOR, "connector.py"), examples("x", truth=truth), limits=unsafe)
        assert json.loads(tcp.scores[0].reason)["socket"] == "CONNECTED"
        server.settimeout(0)
        server.accept()[0].close()  # queued on the host's side: the evaluator reached the bot's loopback


async def test_when_the_sandbox_works_the_unsafe_switch_changes_nothing(tmp_path: Path) -> None:
    run = await run_evaluator(
        write(tmp_path, "def evaluate(messages, ground_truth=None, **kw):\n    return 1.0\n"),
        examples("a"),
        limits=FAST.model_copy(update={"unsafe": True}),
    )
    assert run.fatal is None and "unsafe" not in run.containment
    assert run.containment["sandbox"].startswith("bubblewrap ")
