"""Cancelled and pruned jobs cost the part of them that ran (the platform's figure when it gave
one, else the plan's, x epochs reached / planned, else its progress), and the report's "pruning
saved" is exactly the rest: ledger + savings = the job's price."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.domain.records import CandidateRecord
from pipeline.domain.slots import CandidateState, Slot
from pipeline.planning.ledger import ledger
from pipeline.run.summary import pruning_savings
from tests.pipeline.planning.plan_support import plan_for


def _cand(n: int, state: CandidateState, **kw: object) -> CandidateRecord:
    base = {"run_id": "r1", "slot": Slot.candidate(n), "job_id": f"sftbot-r1-c{n}", "base_model": "qwen3-8b"}
    return CandidateRecord.model_validate(
        {**base, "lora_rank": 8, "learning_rate": 1e-4, "epochs": 3, "train_samples": 100, "state": state, **kw}
    )


def test_stopped_jobs_cost_what_ran_and_the_savings_are_the_rest(tmp_path: Path) -> None:
    plan = plan_for("dataset=d.jsonl model=qwen3-8b epochs=3 deploy=no", samples=5000)
    est = {ln.label: ln.usd for ln in plan.cost.lines if ln.phase == "training"}
    cands = [
        _cand(1, CandidateState.COMPLETED, progress=100.0, epoch=3.0),
        _cand(2, CandidateState.PRUNED, progress=33.0, epoch=1.0),  # the plan's price, one epoch of three
        _cand(3, CandidateState.CANCELLED, progress=40.0, cost_usd=2.0),  # the platform's price, 40% ran
    ]
    book = ledger(cands, [], plan, approved_usd=10.0, now=0.0)
    lines = {ln.label: ln for ln in book.lines}
    c1, c2 = est["candidate 1"], est["candidate 2"]
    assert c1 is not None and c2 is not None
    assert lines["candidate 1"].usd == pytest.approx(c1)  # it ran whole
    assert lines["candidate 2"].usd == pytest.approx(c2 / 3) and lines["candidate 2"].estimated
    assert lines["candidate 3"].usd == pytest.approx(2.0 * 0.4) and lines["candidate 3"].estimated  # not the whole $2
    saved = pruning_savings(plan, cands, tmp_path)
    assert saved is not None and saved.usd is not None and saved.candidate_epochs == pytest.approx(2.0)
    assert lines["candidate 2"].usd + saved.usd == pytest.approx(c2)  # the ledger and the report agree
    assert book.spent_usd == pytest.approx(c1 + c2 / 3 + 0.8, abs=1e-5)
