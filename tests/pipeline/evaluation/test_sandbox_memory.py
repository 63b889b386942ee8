"""Sandboxes are bounded as a whole, before any work: one sandbox's processes together never map
more than its budget, no more sandboxes run at once than allowed, and a budget that cannot be
enforced refuses the evaluator in one line. Through the sandbox API (the test host has no
delegated cgroup v2: the address-space split is what holds here; test_sandbox_cgroup.py checks
the cgroup set-up)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pipeline.evaluation.sandbox.batch import run_evaluator
from tests.pipeline.evaluation.sandbox_support import FAST, examples, write

MB = 1024 * 1024
# Forks until it may not, then every process (itself included) takes all the memory it can
# get and holds it until all have reported: the sandbox's total at one moment.
HOG = """
import json, os

def grab():
    held, step = [], 4 * 1024 * 1024
    while True:
        try:
            held.append(b"x" * step)  # written, not just reserved
        except MemoryError:
            return held, sum(len(b) for b in held)

def evaluate(messages, ground_truth=None, **kwargs):
    report_r, report_w = os.pipe()
    hold_r, hold_w = os.pipe()
    children = []
    while len(children) < 16:
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            held, got = grab()
            os.write(report_w, f"{got}\\n".encode())
            os.read(hold_r, 1)  # hold it until the parent has its own
            os._exit(0)
        children.append(pid)
    got = []
    with os.fdopen(report_r) as reports:
        while len(got) < len(children):
            got.append(int(reports.readline()))
    held, mine = grab()
    os.write(hold_w, b"x" * len(children))
    for pid in children:
        os.waitpid(pid, 0)
    return {"score": 1.0, "reason": json.dumps({"processes": len(children) + 1, "bytes": sum(got) + mine})}
"""


async def test_a_sandbox_holds_no_more_than_its_budget_in_all_its_processes(tmp_path: Path) -> None:
    limits = FAST.model_copy(update={"memory_mb": 256, "max_processes": 4, "per_example_seconds": 20.0})
    run = await run_evaluator(write(tmp_path, HOG), examples("x"), limits=limits)
    assert run.fatal is None, run
    out = json.loads(run.scores[0].reason)
    assert out["processes"] == 4  # as many as it may hold...
    assert 100 * MB < out["bytes"] <= 256 * MB, out  # ...and together within the sandbox's budget
    assert "256 MB for the sandbox as 4 x RLIMIT_AS 64 MB" in run.containment["limits"]


SLOW = """
import json, time

def evaluate(messages, ground_truth=None, **kwargs):
    start = time.monotonic()  # CLOCK_MONOTONIC: one clock for the host and every sandbox
    time.sleep(1.5)
    return {"score": 1.0, "reason": json.dumps([start, time.monotonic()])}
"""


async def test_no_more_sandboxes_run_at_once_than_the_limit(tmp_path: Path) -> None:
    limits = FAST.model_copy(update={"max_sandboxes": 2, "per_example_seconds": 5.0})
    path = write(tmp_path, SLOW)
    runs = await asyncio.gather(*(run_evaluator(path, examples("x"), limits=limits) for _ in range(3)))
    spans = [json.loads(r.scores[0].reason) for r in runs]
    assert all(r.fatal is None for r in runs), runs
    at_once = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert at_once == 2, spans  # two ran together; the third waited for a free slot
    assert "at most 2 sandboxes at once" in runs[0].containment["limits"]


async def test_a_budget_that_cannot_be_enforced_refuses_the_evaluator_in_one_line(tmp_path: Path) -> None:
    limits = FAST.model_copy(update={"memory_mb": 100, "max_processes": 8})
    run = await run_evaluator(write(tmp_path, SLOW), examples("x"), limits=limits)
    assert run.fatal is not None and "\n" not in run.fatal and run.scores[0].score is None
    assert "leaves 12 MB each" in run.fatal and "SFTBOT_EVALUATOR_MEMORY_MB" in run.fatal, run.fatal
