"""The plan's time estimate against the job it estimates, on the same machine in the same run.

    python bench/bench_estimate.py                   # smollm2-135m, 64 rows, batch 8, 1 epoch
    python bench/bench_estimate.py --rows 108 --runs 2

Each run measures the throughput afresh in a new root (what the first plan on a machine
does, and how long that takes), estimates one training job from it exactly as a plan does
(pipeline/planning/duration.py), then runs that job for real and prints actual / estimate
(midpoint) and whether the actual time fell inside the range. The load average is printed
beside it: the estimate is for the machine as measured, and other work moves both ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.dataset.demo_data import demo_path, render
from pipeline.dataset.demo_data import generate as demo_rows
from pipeline.dataset.inspector import inspect_dataset
from pipeline.domain.platform import JobRequest
from pipeline.domain.slots import Slot
from pipeline.planning.duration import job_duration
from pipeline.planning.plan_types import PlannedJob
from pipeline.platforms.local.platform import LocalPlatform

OUT = Path(__file__).resolve().parent / "out"


async def one(model: str, rows: int, batch: int, run: int) -> None:
    root = OUT / f"estimate-{int(time.time())}-{run}"
    data = demo_rows(rows + 12, seed=100 + run)
    (root / "datasets").mkdir(parents=True, exist_ok=True)
    (root / "datasets" / "train.jsonl").write_text(render(data[:rows]), encoding="utf-8")
    (root / "datasets" / "val.jsonl").write_text(render(data[rows:]), encoding="utf-8")
    platform = LocalPlatform(root, batch_size=batch, port=0)
    try:
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        tp = await platform.training.throughput(model, sample=demo_path())
        probe = time.monotonic() - t0
        assert tp is not None, "the throughput could not be measured"
        train = inspect_dataset(root / "datasets" / "train.jsonl")
        held = inspect_dataset(root / "datasets" / "val.jsonl")
        job = PlannedJob(
            slot=Slot.candidate(1),
            base_model=model,
            lora_rank=16,
            learning_rate=1e-3,
            epochs=1,
            train_samples=rows,
            train_tokens=train.tokens,
        )
        estimate = job_duration(job, tp, eval_tokens=held.tokens)
        t1 = time.monotonic()
        request = JobRequest(
            job_id="bench-job",
            base_model=model,
            dataset="train",
            eval_dataset="val",
            epochs=1,
            lora_rank=16,
            learning_rate=1e-3,
            output_model="bench-job",
        )
        await platform.training.create(request)
        while not (status := await platform.training.get("bench-job")).state.terminal:  # noqa: ASYNC110
            await asyncio.sleep(0.5)  # a child process's status file has no event to await
        actual = time.monotonic() - t1
        assert status.state.value == "completed", status.message
        mid = (estimate.low_seconds + estimate.high_seconds) / 2
        inside = estimate.low_seconds <= actual <= estimate.high_seconds
        print(
            f"run {run}: measuring took {probe:.1f} s ({tp.tokens_per_second_low:.0f}-{tp.tokens_per_second_high:.0f} tokens/s); "
            f"estimate {estimate.low_seconds:.0f}-{estimate.high_seconds:.0f} s, actual {actual:.0f} s: "
            f"actual/estimate {actual / mid:.2f}x, {'inside' if inside else 'OUTSIDE'} the range; "
            f"load {load0:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
    finally:
        await platform.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for run in range(1, args.runs + 1):
        asyncio.run(one(args.model, args.rows, args.batch, run))


if __name__ == "__main__":
    main()
