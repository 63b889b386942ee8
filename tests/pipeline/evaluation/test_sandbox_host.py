"""What of the host an evaluator reaches, through the sandbox API: only the interpreter's own
files (no canary planted under /usr/src or /usr/local/etc comes back), no host path of the bot
in /proc/self/mountinfo, and never the bot's secrets, sandboxed or not. The tests run as root
(the sandbox needs it), so they may plant files under /usr; each removes what it planted.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.evaluation.sandbox.batch import run_evaluator
from tests.pipeline.evaluation.sandbox_support import FAST, READER, examples, write

ROOT = Path(__file__).resolve().parents[3]
CANARY = "SECRET-canary-" + secrets.token_hex(4)


@pytest.fixture
def planted() -> Iterator[list[str]]:
    """World-readable canaries where an official Python image keeps the app (and its .env) and
    where /usr/local keeps configuration; removed afterwards."""
    app = Path("/usr/src") / f"sftbot-test-{secrets.token_hex(4)}"
    etc = Path("/usr/local/etc") / f"sftbot-test-{secrets.token_hex(4)}.env"
    app.mkdir(parents=True)
    etc.parent.mkdir(parents=True, exist_ok=True)
    try:
        (app / ".env").write_text(f"SLACK_BOT_TOKEN={CANARY}\n")
        etc.write_text(f"FIREWORKS_API_KEY={CANARY}\n")
        for path in (app, app / ".env", etc):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield [str(app / ".env"), str(etc)]
    finally:
        shutil.rmtree(app, ignore_errors=True)
        etc.unlink(missing_ok=True)


async def test_nothing_under_usr_src_or_usr_local_etc_is_readable(tmp_path: Path, planted: list[str]) -> None:
    assert all(CANARY in Path(p).read_text() for p in planted)  # there for anyone on the host to read
    run = await run_evaluator(write(tmp_path, READER), examples("x", truth=json.dumps({"paths": planted})), limits=FAST)
    assert run.fatal is None, run
    out = json.loads(run.scores[0].reason)
    assert {p: out[p] for p in planted} == dict.fromkeys(planted, "FileNotFoundError"), out
    assert out["found_by_walking"] == [] and CANARY not in run.model_dump_json()


async def test_no_setuid_binary_is_there_and_none_could_give_privilege(tmp_path: Path) -> None:
    # The sandbox holds the interpreter and nothing else of the host's programs: no setuid
    # binary (the host's mount is one) to run at all. Had one slipped in, NO_NEW_PRIVS, an
    # empty bounding set and no capabilities would keep it from elevating anything.
    source = """
    import json, os, stat

    def evaluate(messages, ground_truth=None, **kwargs):
        elevating = []
        for top in ("/",):
            for folder, dirs, files in os.walk(top):
                # site-packages is pip's (it never keeps a setuid bit); /proc and /dev are the sandbox's own
                dirs[:] = [d for d in dirs if os.path.join(folder, d) not in ("/proc", "/dev", "/sys") and d != "site-packages"]
                for name in files:
                    try:
                        if os.stat(os.path.join(folder, name)).st_mode & (stat.S_ISUID | stat.S_ISGID):
                            elevating.append(os.path.join(folder, name))
                    except OSError:
                        pass
        with open("/proc/self/status") as f:
            status = {k: v.strip() for k, v in (line.split(":", 1) for line in f)}
        keep = ("CapEff", "CapBnd", "NoNewPrivs", "Seccomp")
        out = {"setuid": sorted(set(elevating)), "mount": os.path.exists("/usr/bin/mount")} | {k: status[k] for k in keep}
        return {"score": 1.0, "reason": json.dumps(out)}
    """
    assert os.stat("/usr/bin/mount").st_mode & stat.S_ISUID, "the host's mount is not setuid: the test would prove less"
    run = await run_evaluator(
        write(tmp_path, source), examples("x"), limits=FAST.model_copy(update={"per_example_seconds": 15.0})
    )
    assert json.loads(run.scores[0].reason) == {
        "setuid": [],
        "mount": False,
        "CapEff": "0000000000000000",
        "CapBnd": "0000000000000000",
        "NoNewPrivs": "1",
        "Seccomp": "2",
    }, run


MOUNTS = """
def evaluate(messages, ground_truth=None, **kwargs):
    with open("/proc/self/mountinfo") as f:
        return {"score": 1.0, "reason": f.read()}
"""


def _host_roots(mountinfo: str) -> list[str]:
    """Mount roots (the source's path in its filesystem) that differ from where they are mounted."""
    pairs = [(line.split()[3], line.split()[4]) for line in mountinfo.splitlines() if line.strip()]
    return [root for root, at in pairs if root not in ("/", at)]


async def test_mountinfo_names_no_host_path_but_the_libraries_and_the_venvs_site_packages(tmp_path: Path) -> None:
    limits = FAST.model_copy(update={"max_output_chars": 50_000})
    run = await run_evaluator(write(tmp_path, MOUNTS), examples("x"), limits=limits)
    mountinfo = run.scores[0].reason
    assert "/proc" in mountinfo, run
    for leak in (str(ROOT / "pipeline"), "sftbot-eval-", str(tmp_path), "/usr/src", "/etc/"):
        assert leak not in mountinfo, leak
    roots = _host_roots(mountinfo)
    site = [r for r in roots if r.endswith("/site-packages")]
    # What bubblewrap cannot hide: a library bound under its lookup name shows its real file
    # (libz.so.1 -> libz.so.1.2.13), /dev and /proc nodes their names, bwrap its own root,
    # and a venv's site-packages (bound, never copied) the folder it lives in.
    others = [
        r for r in roots if r not in site and r != "/newroot" and not r.startswith(("/usr/lib/", "/lib/")) and r.count("/") != 1
    ]
    assert others == [] and len(site) <= 1, roots
    if site:
        assert sys.prefix != sys.base_prefix and site[0] == os.path.realpath(
            next(p for p in sys.path if p.endswith("site-packages"))
        )


# The bot's secrets are in its environment; an evaluator looks for them in its own, in every
# process's it can see (the bot's included, when it runs unsandboxed) and in their memory.
PEEK = """
import glob, json, os

def evaluate(messages, ground_truth=None, **kwargs):
    found = [k for k, v in os.environ.items() if "CANARY" in v]
    for pid in {os.getppid(), 1, *(int(p.split("/")[2]) for p in glob.glob("/proc/[0-9]*/environ"))}:
        for name in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    if b"CANARY" in f.read():
                        found.append(f"/proc/{pid}/{name}")
            except OSError:
                pass
    return {"score": 1.0, "reason": json.dumps({"found": found, "ppid": os.getppid()})}
"""


@pytest.mark.parametrize("mode", ["sandboxed", "unsafe"])
def test_the_bots_secrets_are_out_of_reach_in_either_mode(tmp_path: Path, mode: str) -> None:
    """A bot process of its own (its secrets in its environment from the start, as `sftbot serve`
    has them) runs the evaluator; ``unsafe``: without the sandbox (SFTBOT_UNSAFE_EVALUATORS=true
    where bubblewrap is missing)."""
    bwrap = "bwrap" if mode == "sandboxed" else str(tmp_path / "no-bwrap")
    script = tmp_path / "bot.py"
    script.write_text(f"""
import asyncio, pipeline
assert pipeline.__file__.startswith({str(ROOT)!r}), pipeline.__file__
from pipeline.evaluation.eval_types import EvalExample, SandboxLimits
from pipeline.evaluation.sandbox.batch import run_evaluator

ex = [EvalExample(index=0, messages=[], ground_truth="x")]
limits = SandboxLimits(bwrap={bwrap!r}, unsafe=True, per_example_seconds=10)
print(asyncio.run(run_evaluator({str(write(tmp_path, PEEK))!r}, ex, limits=limits)).model_dump_json())
""")
    canaries = {"SLACK_BOT_TOKEN": "xoxb-CANARY-1", "FIREWORKS_API_KEY": "fw-CANARY-2", "SLACK_SIGNING_SECRET": "CANARY-3"}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path), **canaries}
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads(done.stdout.strip().splitlines()[-1])
    assert run["fatal"] is None, run
    assert ("WITHOUT isolation" in json.dumps(run["containment"])) is (mode == "unsafe")
    out = json.loads(run["scores"][0]["reason"])
    assert out["found"] == [] and "CANARY" not in done.stdout, out
