"""Orchestration overhead: N concurrent runs x 6 candidates on one process, fake Fireworks.

Jobs finish almost instantly on the fake, so what is measured is the engine's own cost:
control-plane requests per job (polling must back off) and wall time, each printed next
to its theoretical minimum. Run: `.venv/bin/python -m bench.bench_orchestration [--runs 50]`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from pathlib import Path

from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import EventLog, drive_to_end
from pipeline.domain.machine import Phase
from pipeline.domain.records import Actor
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.run.context import RunnerConfig
from pipeline.run.runner import Runner
from pipeline.store.db import Database

# The repository's bundled datasets (read as data: bench code imports nothing from tests/).
DATASETS = Path(__file__).resolve().parents[1] / "tests" / "data" / "datasets"

USER = Actor(id="U_BENCH", name="bench")
GRID = "lr=1.5e-4,1e-4,5e-5 rank=8,16"  # 6 candidates per run


async def main(runs: int, poll: float, job_seconds: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sftbot-bench-"))
    async with FakeFireworks(job_seconds=job_seconds, deployment_seconds=0.01) as fake:
        db = await Database.open(tmp / "bench.sqlite3")
        platform = FireworksPlatform(fake.api_key, fake.account, base_url=fake.base_url, poll_seconds=0.01, retry_base_delay=0.01)
        runner = Runner(db, platform, RunnerConfig(runs_dir=tmp / "runs", poll_seconds=poll))
        log = EventLog()
        runner.bus.subscribe(log)
        instruction = f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b {GRID} final=skip deploy=no"
        t0 = time.perf_counter()
        started = [await runner.start(instruction, USER) for _ in range(runs)]
        await asyncio.gather(*(drive_to_end(runner, log, r.id, actor=USER, timeout=600) for r in started))
        wall = time.perf_counter() - t0
        phases = [(await runner.get(r.id)).phase for r in started]
        ok = phases.count(Phase.SUCCEEDED)
        await runner.close()
        await platform.close()
        await db.close()
    jobs = runs * 6
    job_calls = [r for r in fake.requests if re.search(r"/supervisedFineTuningJobs", r.path)]
    polls = [r for r in job_calls if r.method == "GET"]
    creates = [r for r in job_calls if r.method == "POST" and not r.path.endswith(":cancel")]
    # The floor: one create per job and one get that sees it finished.
    min_per_job = 2.0
    per_job = len(job_calls) / jobs
    print(f"runs {ok}/{runs} succeeded, {jobs} jobs, poll interval {poll:g}s, job time {job_seconds:g}s")
    print(f"job control-plane requests: {len(job_calls)} ({len(creates)} creates, {len(polls)} gets)")
    print(f"requests per job: {per_job:.2f}  (theoretical minimum {min_per_job:.2f}; ratio {per_job / min_per_job:.2f}x)")
    print(f"all control-plane requests: {len(fake.requests)}")
    print(
        f"wall time: {wall:.2f}s  (theoretical minimum ~{job_seconds:.2f}s of job time; ratio {wall / max(job_seconds, 1e-9):.1f}x)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--poll", type=float, default=0.5)
    ap.add_argument("--job-seconds", type=float, default=1.0)
    a = ap.parse_args()
    asyncio.run(main(a.runs, a.poll, a.job_seconds))
