"""A run judged by validation loss: the base's loss beside the leader's where the platform
computes it (locally), and no number where it cannot (Fireworks), said in the plan."""

from __future__ import annotations

from handlers.render.comparison import comparison_blocks
from pipeline.domain.spec import EvalKind, Evaluation
from pipeline.evaluation.compare import BaseScore, compare
from pipeline.planning.plan import baseline_sentence
from pipeline.platforms.fireworks import facts as fireworks
from pipeline.platforms.local import facts as local


def test_the_gate_sets_the_base_loss_beside_the_leaders_lower_is_better() -> None:
    comp = compare(BaseScore(base_model="tiny-llama", val_loss=6.64), tuned="#1 tiny-llama r8", tuned_score=None,
                   tuned_val_loss=5.91, rows=[])  # fmt: skip
    text = " ".join(b["text"]["text"] for b in comparison_blocks(comp) if b.get("type") == "section")
    assert "val loss *6.6400*" in text and "val loss *5.9100* (-0.7300)" in text and "lower is better" in text
    assert "✅ The leader beats the base model." in text and "Example" not in text
    worse = compare(BaseScore(base_model="tiny-llama", val_loss=1.0), tuned="#1", tuned_score=None, tuned_val_loss=1.2, rows=[])
    assert worse.beats_base is False and "does not beat the base" in " ".join(
        b["text"]["text"] for b in comparison_blocks(worse) if b.get("type") == "section"
    )


def test_the_plan_says_where_a_base_loss_is_computed_and_where_it_cannot_be() -> None:
    loss = Evaluation(kind=EvalKind.LOSS)
    assert "computed on this machine" in baseline_sentence(loss, 0, local.declared(max_parallel=1))
    assert "fireworks reports no loss for an untrained base" in baseline_sentence(loss, 0, fireworks.declared())
