"""Sample runs, candidates and plans for the renderers (escaping-hostile text on demand)."""

from __future__ import annotations

import time

from pipeline.domain.machine import Phase
from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.domain.slots import FINAL, CandidateState, Slot
from pipeline.domain.spec import EvalKind, Evaluation, RunSpec
from pipeline.planning.plan_types import CostEstimate, CostLine, Plan, PlannedJob, Source

NASTY = "<!channel> & <script>alert(1)</script> *bold* _x_ `tick` ```fence``` "


def run(phase: Phase = Phase.SWEEPING, *, text: str = "", number: int = 12) -> RunRecord:
    spec = RunSpec(dataset=f"accounts/acme/datasets/support-conv{text}", base_models=("qwen3-8b", f"qwen3-32b{text[:50]}"))
    return RunRecord(
        id="ab12cd34",
        number=number,
        requester="U0ALICE",
        requester_name=f"alice{text}",
        instruction=f"run {text}",
        spec=spec,
        platform="fireworks",
        phase=phase,
        plan_version=3,
        error=f"the platform said: {text}" if text else None,
        workspace="/tmp/x",
        estimated_usd=1234.5,
        created_at=NOW,
        updated_at=NOW,
    )


def cands(n: int, *, text: str = "") -> list[CandidateRecord]:
    return [
        CandidateRecord(
            run_id="ab12cd34",
            slot=Slot.candidate(i),
            job_id=f"sftbot-ab12cd34-c{i}",
            base_model=f"qwen3-8b{text[:40]}",
            lora_rank=8,
            learning_rate=1e-4 * i,
            epochs=3,
            train_samples=1000,
            state=CandidateState.COMPLETED if i % 3 else CandidateState.RUNNING,
            progress=99.5,
            epoch=2.0,
            val_loss=1.0 + i / 100,
            score=0.5 if i % 2 else None,
            stalled=i % 7 == 0,
            message=text or None,
        )
        for i in range(1, n + 1)
    ]


def plan(n: int, *, text: str = "") -> Plan:
    jobs = [
        PlannedJob(
            slot=Slot.candidate(i),
            base_model=f"qwen3-8b{text[:40]}",
            lora_rank=16,
            learning_rate=1e-4 / i,
            epochs=5,
            train_samples=1000,
            train_tokens=123_456,
        )
        for i in range(1, n + 1)
    ]
    cost = CostEstimate(
        training_usd=12.3456,
        inference_usd=2.9,
        total_usd=15.2456,
        low_usd=10.0,
        high_usd=22.0,
        prices_as_of="2026-10-08",
        price_source=f"fireworks.ai/pricing {text}",
        billed_tokens=10**9,
        lines=[CostLine(phase="training", label="c", usd=1.0, detail=text)],
        unknown=[text] * 5 if text else [],
    )
    return Plan(
        version=3,
        platform="fireworks",
        spec=RunSpec(dataset="d", base_models=("qwen3-8b",)),
        dataset=f"accounts/acme/datasets/support-conv{text}",
        eval_dataset=text or None,
        samples=3_000_000,
        tokens=10**10,
        train_samples=2_700_000,
        test_samples=300_000,
        hp_samples=1000,
        candidates=jobs,
        final=jobs[0].model_copy(update={"slot": FINAL}),
        max_parallel=6,
        evaluation=Evaluation(kind=EvalKind.LOSS),
        eval_examples=0,
        deploy=True,
        sources={"grid": Source.DEFAULT},
        cost=cost,
        warnings=[text] * 9 if text else [],
    )


NOW = time.time()
