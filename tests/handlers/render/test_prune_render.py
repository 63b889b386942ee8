"""Where pruning shows: the plan (its rule, and on Fireworks that it may save nothing), the
scoreboard (a pruned candidate's line and its reason), and what the report says it saved."""

from __future__ import annotations

from pathlib import Path

from handlers.render.board import scoreboard
from handlers.render.final_message import final_message
from handlers.render.plan_message import plan_message, price_blocks
from pipeline.domain.slots import CandidateState, Slot
from pipeline.planning.plan_types import CostLine, Source
from pipeline.run.prune_rule import RULE
from pipeline.run.summary import CostSummary, RunSummary, pruning_savings
from tests.handlers.render.samples import cands, plan, run
from tests.handlers.slack_checks import check_message
from tests.pipeline.planning.plan_support import plan_for

INSTRUCTION = "dataset=data.jsonl model=qwen3-8b prune=on"


def test_prune_on_is_planned_and_on_fireworks_the_plan_says_it_may_save_nothing() -> None:
    fireworks = plan_for(INSTRUCTION, platform="fireworks")
    assert fireworks.prune and fireworks.sources["prune"] is Source.USER
    assert any(w.startswith("Pruning may save nothing here: fireworks reports no validation loss") for w in fireworks.warnings)
    local = plan_for(INSTRUCTION, platform="local")
    assert local.prune and not any("Pruning" in w for w in local.warnings)
    off = plan_for("dataset=data.jsonl model=qwen3-8b", platform="fireworks")
    assert not off.prune and off.sources["prune"] is Source.DEFAULT


def test_the_plan_message_states_the_rule_and_still_fits() -> None:
    p = plan(3).model_copy(update={"prune": True, "sources": {"prune": Source.USER}})
    msg = plan_message(run(), p)
    assert "✂️ *Pruning* (you set): hopeless candidates stop after an epoch" in str(msg.blocks)
    assert f"✂️ *Pruning* (you set): {RULE}." in str(price_blocks(run(), p))  # the rule itself, one click away
    check_message(msg)
    assert "Pruning" not in str(plan_message(run(), plan(3)).blocks)


def test_a_pruned_candidate_on_the_scoreboard_says_why() -> None:
    board = cands(3)
    board[2] = board[2].model_copy(
        update={"state": CandidateState.PRUNED, "note": "pruned after epoch 1: val loss 2.31 vs best 0.41 (#1)"}
    )
    msg = scoreboard(run(), board)
    text = str(msg.blocks)
    assert "*#3* lr 3e-4 — ✂️ pruned" in text and "rank 8" in text  # what every row shares is said once
    assert "✂️ #3: pruned after epoch 1: val loss 2.31 vs best 0.41 (#1)" in text
    check_message(msg)


def test_savings_on_a_billing_platform_are_the_plans_price_per_epoch(tmp_path: Path) -> None:
    p = plan(3)
    p = p.model_copy(
        update={
            "cost": p.cost.model_copy(update={"lines": [CostLine(phase="training", label="candidate 3", usd=0.3, detail="")]})
        }
    )
    board = [c.model_copy(update={"epochs": 3, "state": CandidateState.COMPLETED}) for c in cands(3)]
    board[2] = board[2].model_copy(update={"state": CandidateState.PRUNED, "epoch": 1.0})
    saved = pruning_savings(p, board, tmp_path)
    assert saved is not None and saved.candidate_epochs == 2.0 and saved.usd is not None
    assert abs(saved.usd - 0.2) < 1e-9
    assert (
        saved.sentence(local=False) == "Pruning stopped 1 candidate early and saved 2.0 candidate-epochs (≈ $0.20 of training)."
    )
    assert pruning_savings(p, [c for c in board if c.slot != Slot.candidate(3)], tmp_path) is None


def test_the_final_message_says_what_pruning_saved() -> None:
    ranked = cands(3)
    summary = RunSummary(
        run=run(),
        plan=None,
        ranked=ranked,
        final=None,
        shipped=ranked[0],
        promoted_by=None,
        deployment=None,
        snippet=None,
        resources=[],
        cost=CostSummary(),
        evaluation="Final model: validation loss 1.0000.",
        pruning="Pruning stopped 1 candidate early and saved 2.0 candidate-epochs (≈ $0.20 of training).",
    )
    msg = final_message(summary)
    assert "✂️ Pruning stopped 1 candidate early and saved 2.0 candidate-epochs" in str(msg.blocks)
    check_message(msg)
    assert "Pruning" not in str(final_message(summary.model_copy(update={"pruning": None})).blocks)


def test_the_scoreboard_says_a_clock_time_counting_the_quotas_waves() -> None:
    """Four queued jobs behind a quota of two are two more waves, not one (six could run)."""
    now = 1_800_000_000.0
    board = [c.model_copy(update={"state": CandidateState.RUNNING, "progress": 50.0, "started_at": now - 60}) for c in cands(2)]
    board += [
        c.model_copy(update={"slot": Slot.candidate(i + 3), "state": CandidateState.WAITING}) for i, c in enumerate(cands(4))
    ]
    # Each job takes ~120 s (half done after 60 s): 60 s left for the running ones, then the queue.
    by_quota = str(scoreboard(run(), board, max_parallel=2, now=now).blocks)
    unlimited = str(scoreboard(run(), board, max_parallel=6, now=now).blocks)
    assert f"done ≈ <!date^{int(now + 60 + 2 * 120)}^{{time}}|" in by_quota
    assert f"done ≈ <!date^{int(now + 60 + 1 * 120)}^{{time}}|" in unlimited
    assert "left" not in by_quota and "%" in by_quota
