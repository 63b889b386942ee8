"""Pruning on the local platform for real (issue #15): the tiny model, three candidates, one of
them hopeless (lr 1e-7 learns nothing), three epochs each. The bad one is stopped after its
first epoch through the platform's own cancel, the others finish, and the report says what
pruning saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")

from pipeline.dataset.demo_data import generate
from pipeline.domain.machine import Phase
from pipeline.domain.records import Actor
from pipeline.domain.slots import CandidateState, Slot
from pipeline.platforms.local.platform import LocalPlatform
from pipeline.run import events
from pipeline.run.decisions import Approve, Promote, Refusal
from pipeline.store import baselines, runs

pytestmark = pytest.mark.local
ALICE = Actor(id="U_ALICE", name="alice")
BAD = Slot.candidate(3)


async def test_a_hopeless_candidate_is_pruned_after_its_first_epoch_and_the_report_says_what_it_saved(
    make_runner, tmp_path: Path
) -> None:
    data = tmp_path / "contacts.jsonl"
    # ~70 training rows: five steps an epoch, so an epoch lasts long enough to be seen.
    data.write_text("".join(json.dumps(r) + "\n" for r in generate(n=80, seed=5)), encoding="utf-8")
    platform = LocalPlatform(tmp_path / "local", port=0)
    runner, log = await make_runner(platform, poll_seconds=0.1)
    try:
        run = await runner.start(
            f"dataset={data} model=tiny-llama candidates=8:5e-3,8:3e-3,8:1e-7 epochs=3 prune=on final=no deploy=no",
            ALICE,
        )
        proposed = await log.wait_kind(events.PlanProposed, run.id, timeout=180)
        plan = await runs.get_plan(runner.db, run.id, proposed.plan.version)
        assert plan is not None and plan.prune
        assert not any("Pruning" in w for w in plan.warnings)  # the local platform reports epoch losses
        await runner.decide(run.id, Approve(plan_version=plan.version), ALICE)
        gate = await log.wait_kind(events.PromotionRequested, run.id, timeout=300)

        cands = {c.slot: c for c in await runs.candidates(runner.db, run.id)}
        bad = cands[BAD]
        assert bad.state is CandidateState.PRUNED, (bad.state, bad.note, bad.val_loss)
        assert bad.note is not None and bad.note.startswith("pruned after epoch 1: val loss ")
        assert bad.epoch is not None and 1.0 <= bad.epoch < 3.0  # stopped before its last epoch ended
        for slot in (Slot.candidate(1), Slot.candidate(2)):
            assert cands[slot].state is CandidateState.COMPLETED and cands[slot].epoch == 3.0

        trail = await runner.db.audit_trail(run.id)
        pruned = [e for e in trail if e.action == "candidate_pruned"]
        assert len(pruned) == 1 and pruned[0].details["job_id"] == bad.job_id
        assert pruned[0].details["epoch"] == 1 and pruned[0].details["reason"] == bad.note
        cancels = [e for e in trail if e.action == "job_cancelled" and e.details["job_id"] == bad.job_id]
        assert len(cancels) == 1  # the platform's cancel, once
        # The decision was on record before the cancel went out.
        assert trail.index(pruned[0]) < trail.index(cancels[0])
        assert next(e for e in trail if e.action == "job_pruned").details["saved_epochs"] > 0

        # A pruned candidate is on the gate's scoreboard but cannot be promoted.
        assert BAD in [c.slot for c in gate.ranked]
        with pytest.raises(Refusal):
            await runner.decide(run.id, Promote(BAD), ALICE)
        await runner.decide(run.id, Promote(gate.ranked[0].slot), ALICE)
        await log.wait_kind(events.ReportReady, run.id, timeout=300)
        await runner.wait(run.id)
        final = await runner.get(run.id)
        assert final.phase is Phase.SUCCEEDED, final.error
        report = (Path(final.workspace) / "final_report.md").read_text(encoding="utf-8")
        saved = 3.0 - bad.epoch
        assert f"Pruning stopped 1 candidate early and saved {saved:.1f} candidate-epochs" in report
        assert "| pruning | on | user |" in report
        assert bad.note in report  # the candidate's line says why
        # A run judged by validation loss: the untrained base's loss on the same held-out rows,
        # computed as the candidates' is, beside the leader's (issue #15, "the base's loss").
        base = (await baselines.scores(runner.db, run.id))["tiny-llama"]
        leader = gate.ranked[0]
        assert base.val_loss is not None and leader.val_loss is not None and base.val_loss > leader.val_loss
        assert f"base {base.val_loss:.4f}" in report and "(lower is better)" in report
        assert "The tuned model beats the base model." in report
    finally:
        await runner.close()
        await platform.close()
