"""`sftbot doctor --tier cents`: one 20-row SFT job and the cancel of a second, on the smallest base.

What only a real job shows (fireworks-facts: estimatedCost's meaning after a cancel, the metrics
file's keys and a job's timing are undocumented): each is observed and said. It costs training
tokens only (20 short rows, one epoch: well under a cent at $0.50 per million); the datasets and
the output model stay on the account (they bill nothing) under ``sftbot-doctor-<time>``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from pipeline.dataset.demo_data import generate
from pipeline.domain.checks import Check
from pipeline.domain.platform import JobRequest, JobStatus, Platform

# Smallest SFT-LoRA bases (the docs' catalogue of 2026-08-28): a Tier 1 account has no B200
# training quota, and llama-v3p2-3b-instruct trains on one H200; qwen3-0p6b needs a B200.
SMALLEST = ("llama-v3p2-3b-instruct", "qwen3-0p6b", "ministral-3-3b-instruct-2512")
ROWS = 20


async def smallest_base(platform: Platform) -> str:
    listed = await platform.models.list_models()
    ids = [m.id for m in listed]
    for base in SMALLEST:
        if base in ids:
            return base
    sized = sorted((m for m in listed if m.params_b), key=lambda m: m.params_b or 0.0)
    return sized[0].id if sized else ids[0]


async def cents_tier(platform: Platform, workdir: Path, *, poll: float = 10.0, timeout: float = 3600.0) -> list[Check]:
    base = await smallest_base(platform)
    stamp = time.strftime("%Y%m%d%H%M%S")
    data = workdir / f"doctor-{stamp}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in generate(n=ROWS, seed=11)), encoding="utf-8")
    dataset = await platform.datasets.upload(f"sftbot-doctor-{stamp}", data, examples=ROWS)
    job = JobRequest(
        job_id=f"sftbot-doctor-{stamp}-a", base_model=base, dataset=dataset.name, eval_dataset=None,
        epochs=1, lora_rank=8, learning_rate=1e-4, output_model=f"sftbot-doctor-{stamp}-a", display_name="sftbot doctor",
    )  # fmt: skip
    started = time.monotonic()
    await platform.training.create(job)
    second = job.model_copy(update={"job_id": f"sftbot-doctor-{stamp}-b", "output_model": f"sftbot-doctor-{stamp}-b"})
    before = await platform.training.create(second)
    after = await platform.training.cancel(second.job_id)
    done = await _finished(platform, job.job_id, poll=poll, timeout=timeout)
    minutes = (time.monotonic() - started) / 60
    keys = await _metric_keys(platform, job.job_id, workdir / f"doctor-{stamp}-metrics.jsonl")
    return [_job_check(base, done, minutes), _metrics_check(keys), _cancel_check(before, after)]


async def _finished(platform: Platform, job_id: str, *, poll: float, timeout: float) -> JobStatus:
    waited = 0.0
    while True:
        status = await platform.training.get(job_id)
        if status.state.terminal or waited >= timeout:
            return status
        await asyncio.sleep(poll)
        waited += poll


async def _metric_keys(platform: Platform, job_id: str, dest: Path) -> list[str]:
    await platform.training.metrics(job_id, dest)
    keys: set[str] = set()
    for line in dest.read_text(encoding="utf-8").splitlines() if dest.exists() else []:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            keys.update(str(k) for k in row)
    return sorted(keys)


def _job_check(base: str, done: JobStatus, minutes: float) -> Check:
    cost = f"${done.cost_usd:.4f}" if done.cost_usd is not None else "no estimatedCost"
    return Check(
        area="fireworks", name=f"a {ROWS}-row job on {base}",
        assumption="a small LoRA job completes and reports estimatedCost (SDK types/supervised_fine_tuning_job.py:151-152)",
        observed=f"{done.raw_state or done.state.value} after {minutes:.1f} min; {cost}",
        action="plans with the dated price table and shows each job's estimatedCost beside it",
        ok=done.state.value == "completed", facts={"base": base, "minutes": round(minutes, 2), "estimated_usd": done.cost_usd},
    )  # fmt: skip


def _metrics_check(keys: list[str]) -> Check:
    known = [k for k in keys if "loss" in k]
    return Check(
        area="fireworks", name="metrics keys",
        assumption="the job's metrics.jsonl has a training and a validation loss the parser knows",
        observed=f"keys: {', '.join(keys) or 'none'}",
        action="reads the losses it knows; a job without one is said on the scoreboard with the keys it saw",
        ok=bool(known), facts={"keys": keys},
    )  # fmt: skip


def _cancel_check(before: JobStatus, after: JobStatus) -> Check:
    return Check(
        area="fireworks", name="cancel of a pending job",
        assumption="a job cancelled before it trains ends CANCELLED, its estimatedCost not billed (undocumented for SFT)",
        observed=f"{before.raw_state or before.state.value} -> {after.raw_state or after.state.value}; estimatedCost "
        f"{before.cost_usd} before, {after.cost_usd} after",
        action="counts a cancelled job at its progress x its estimate",
        ok=after.state.value in ("cancelled", "failed") or after.state.value == "pending",
        facts={"before": before.cost_usd, "after": after.cost_usd, "state": after.raw_state},
    )  # fmt: skip
