"""Orchestration overhead: N concurrent runs x 6 candidates in one process, on the fake Fireworks.

    python -m bench.bench_orchestration                 # 5, 20 and 50 concurrent runs
    python -m bench.bench_orchestration --sizes 50      # one size

Jobs finish almost at once on the fake, so what is measured is the engine's own cost: the
time per run (wall time / runs, which stays flat when runs do not wait on each other), each
run's own time from start to finish, and control-plane requests per job (polling must back
off), each beside its floor. Every size starts from a new database and a new fake; the load
average is printed beside each time, because the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import EventLog, drive_to_end
from pipeline.domain.machine import Phase
from pipeline.domain.records import Actor
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.platforms.fireworks.settings import FireworksSettings
from pipeline.run.context import RunnerConfig
from pipeline.run.runner import Runner
from pipeline.store.db import Database

# The repository's bundled datasets (read as data: bench code imports nothing from tests/).
DATASETS = Path(__file__).resolve().parents[1] / "tests" / "data" / "datasets"

USER = Actor(id="U_BENCH", name="bench")
GRID = "lr=1.5e-4,1e-4,5e-5 rank=8,16"  # 6 candidates per run
JOBS_PER_RUN = 6
FLAT = 1.5  # the target: time per run at the largest size within 1.5x of the smallest
TOTAL_50 = 30.0  # and 50 runs in at most 30 s


@dataclass
class Result:
    runs: int
    succeeded: int
    wall: float
    latencies: list[float]  # each run: start to finished
    job_requests: int
    all_requests: int
    load: tuple[float, float]  # 1-minute load average before and after

    @property
    def per_run(self) -> float:
        return self.wall / self.runs


async def _one_run(runner: Runner, log: EventLog, instruction: str) -> tuple[float, bool]:
    """Start a run and decide its gates as a person would; its time from start to end, and whether it succeeded."""
    started = time.perf_counter()
    run = await runner.start(instruction, USER)
    finished = await drive_to_end(runner, log, run.id, actor=USER, timeout=600)
    return time.perf_counter() - started, finished.phase is Phase.SUCCEEDED


async def measure(runs: int, poll: float, job_seconds: float) -> Result:
    tmp = Path(tempfile.mkdtemp(prefix="sftbot-bench-"))
    load_before = os.getloadavg()[0]
    async with FakeFireworks(job_seconds=job_seconds, deployment_seconds=0.01) as fake:
        db = await Database.open(tmp / "bench.sqlite3")
        settings = FireworksSettings(fake.api_key, fake.account, base_url=fake.base_url, poll_seconds=0.01, retry_base_delay=0.01)
        platform = FireworksPlatform(settings)
        runner = Runner(db, platform, RunnerConfig(runs_dir=tmp / "runs", poll_seconds=poll))
        log = EventLog()
        runner.bus.subscribe(log)
        instruction = f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b {GRID} final=skip deploy=no"
        t0 = time.perf_counter()
        ended = await asyncio.gather(*(_one_run(runner, log, instruction) for _ in range(runs)))
        wall = time.perf_counter() - t0
        await runner.close()
        await platform.close()
        await db.close()
    job_calls = [r for r in fake.requests if re.search(r"/supervisedFineTuningJobs", r.path)]
    return Result(
        runs=runs,
        succeeded=sum(ok for _, ok in ended),
        wall=wall,
        latencies=[t for t, _ in ended],
        job_requests=len(job_calls),
        all_requests=len(fake.requests),
        load=(load_before, os.getloadavg()[0]),
    )


def show(r: Result) -> None:
    jobs = r.runs * JOBS_PER_RUN
    lat = sorted(r.latencies)
    p90 = lat[min(len(lat) - 1, int(0.9 * len(lat)))]
    print(
        f"{r.runs:>3} runs: {r.succeeded}/{r.runs} succeeded, wall {r.wall:6.2f} s, per run {r.per_run:5.2f} s, "
        f"each run start-to-end median {statistics.median(lat):5.2f} s / p90 {p90:5.2f} s, "
        f"job requests per job {r.job_requests / jobs:.2f} (floor 2.00), all requests {r.all_requests}, "
        f"load {r.load[0]:.1f} -> {r.load[1]:.1f}"
    )


async def main(sizes: list[int], poll: float, job_seconds: float) -> None:
    print(f"{JOBS_PER_RUN} jobs per run, poll interval {poll:g} s, job time {job_seconds:g} s on the fake, {os.cpu_count()} CPUs")
    results = []
    for runs in sizes:
        results.append(await measure(runs, poll, job_seconds))
        show(results[-1])
    first, last = results[0], results[-1]
    if len(results) > 1:
        ratio = last.per_run / first.per_run
        verdict = "met" if ratio <= FLAT else "NOT met"
        print(f"time per run at {last.runs} vs {first.runs} runs: {ratio:.2f}x (target <= {FLAT}x: {verdict})")
    for r in results:
        if r.runs == 50:
            verdict = "met" if r.wall <= TOTAL_50 else "NOT met"
            print(f"50 runs in {r.wall:.1f} s (target <= {TOTAL_50:.0f} s: {verdict}, load {r.load[0]:.1f} -> {r.load[1]:.1f})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5,20,50", help="numbers of concurrent runs, comma-separated")
    ap.add_argument("--poll", type=float, default=0.5)
    ap.add_argument("--job-seconds", type=float, default=1.0)
    a = ap.parse_args()
    asyncio.run(main([int(n) for n in a.sizes.split(",")], a.poll, a.job_seconds))
