"""The pruning rule (pipeline/run/prune_rule.py), pure: who is stopped at which epoch, and what it saved."""

from __future__ import annotations

import math

from pipeline.domain.slots import Slot
from pipeline.run.prune_rule import (
    KEEP,
    RATIO,
    RULE,
    Entry,
    Pruned,
    Standing,
    decide,
    epoch_losses,
    savings,
)

T, W, D, OUT = Standing.TRAINING, Standing.WAITING, Standing.DONE, Standing.OUT


def entry(n: int, losses: dict[int, float], standing: Standing = T, *, base: str = "m", epochs: int = 3) -> Entry:
    return Entry(slot=Slot.candidate(n), base_model=base, epochs=epochs, losses=losses, standing=standing)


def test_a_clearly_worse_candidate_outside_the_top_two_is_pruned_after_its_first_epoch() -> None:
    got = decide([entry(1, {1: 0.41}), entry(2, {1: 0.50}), entry(3, {1: 2.31})])
    assert [(p.slot, p.epoch, p.rank, p.rung) for p in got] == [(Slot.candidate(3), 1, 3, 3)]
    assert got[0].best_slot == Slot.candidate(1)
    assert got[0].reason == "pruned after epoch 1: val loss 2.31 vs best 0.41 (#1)"


def test_the_top_two_always_go_on_however_bad() -> None:
    assert decide([entry(1, {1: 0.1}), entry(2, {1: 50.0})]) == []


def test_a_candidate_just_behind_is_not_pruned() -> None:
    # Outside the top half, but within the ratio of the best: halving alone does not stop it.
    just_behind = 0.4 * RATIO  # exactly at the threshold is not "above" it
    assert decide([entry(1, {1: 0.4}), entry(2, {1: 0.41}), entry(3, {1: just_behind})]) == []


def test_the_top_half_is_kept_when_more_than_two_reported() -> None:
    # Six at the rung: the top three go on, #2 too although it is 50 x the best.
    losses = [0.1, 5.0, 6.0, 7.0, 8.0, 0.12]
    got = decide([entry(i + 1, {1: x}) for i, x in enumerate(losses)])
    assert sorted(p.slot.number or 0 for p in got) == [3, 4, 5]


def test_only_training_candidates_are_pruned() -> None:
    cands = [entry(1, {1: 0.4}, D), entry(2, {1: 0.5}, D), entry(3, {1: 9.0}, D), entry(4, {1: 9.0}, OUT)]
    assert decide(cands) == []


def test_never_the_last_candidate_of_a_base_model() -> None:
    cands = [entry(1, {1: 0.4}, base="a"), entry(2, {1: 0.5}, base="a"), entry(3, {1: 9.0}, base="b")]
    assert decide(cands) == []
    # With a second candidate of "b" still waiting, the bad one may go.
    got = decide([*cands, entry(4, {}, W, base="b")])
    assert [p.slot.number for p in got] == [3]


def test_of_two_bad_candidates_of_one_base_the_last_one_stays() -> None:
    cands = [
        entry(1, {1: 0.4}, base="a"),
        entry(2, {1: 0.5}, base="a"),
        entry(3, {1: 9.0}, base="b"),
        entry(4, {1: 8.0}, base="b"),
    ]
    got = decide(cands)
    assert [p.slot.number for p in got] == [3]  # the worse one; #4 is now the last of "b"


def test_a_failed_candidate_of_the_base_does_not_count_as_in_the_race() -> None:
    cands = [entry(1, {1: 0.4}), entry(2, {1: 0.5}, OUT), entry(3, {1: 9.0})]
    # #2 failed: of base "m" only #1 and #3 are in the race, so #3 may still be pruned.
    assert [p.slot.number for p in decide(cands)] == [3]
    assert decide([entry(1, {1: 0.4}, base="x"), entry(2, {1: 0.5}, OUT), entry(3, {1: 9.0})]) == []


def test_nothing_is_saved_by_stopping_in_the_last_epoch() -> None:
    cands = [entry(1, {1: 0.4}), entry(2, {1: 0.5}), entry(3, {1: 9.0}, epochs=1)]
    assert decide(cands) == []


def test_a_later_epoch_prunes_when_the_first_did_not() -> None:
    cands = [entry(1, {1: 1.0, 2: 0.3}), entry(2, {1: 1.01, 2: 0.35}), entry(3, {1: 1.04, 2: 0.9}, epochs=4)]
    got = decide(cands)
    assert [(p.slot.number, p.epoch) for p in got] == [(3, 2)]


def test_the_rung_counts_pruned_candidates_so_there_is_no_cascade() -> None:
    # #4 and #5 were pruned at epoch 1 (OUT, still at the rung): #3 stays 3rd of 5, inside the
    # top half. Were they dropped from the rung, #3 would be 3rd of 3 and pruned in turn.
    cands = [entry(1, {1: 0.4}), entry(2, {1: 0.5}), entry(3, {1: 0.9}), entry(4, {1: 9.0}, OUT), entry(5, {1: 9.5}, OUT)]
    assert decide(cands) == []


def test_a_loss_that_is_not_a_number_ranks_last_and_is_pruned() -> None:
    got = decide([entry(1, {1: 0.4}), entry(2, {1: 0.5}), entry(3, {1: math.nan})])
    assert [p.slot.number for p in got] == [3]


def test_keep_and_ratio_are_the_stated_rule() -> None:
    assert (KEEP, RATIO) == (2, 1.05)
    assert "more than 5% above the best" in RULE and "top 2" in RULE


def test_epoch_losses_take_only_end_of_epoch_rows() -> None:
    rows = [(0.5, None), (0.5, 2.0), (1.0, None), (1.0, 1.7), (1.5, None), (2.0, 1.2), (None, 3.0)]
    assert epoch_losses(rows) == {1: 1.7, 2: 1.2}


def test_savings_count_epochs_not_run_and_their_price_or_time() -> None:
    s = savings([Pruned(epochs=3, reached=1.25, usd_per_epoch=0.5, seconds_per_epoch=60.0)])
    assert s is not None
    assert (s.pruned, s.candidate_epochs, s.usd, s.seconds) == (1, 1.75, 0.875, 105.0)
    assert (
        s.sentence(local=True)
        == "Pruning stopped 1 candidate early and saved 1.8 candidate-epochs (≈ 1.8 min of training on this machine)."
    )
    assert "≈ $0.88" in s.sentence(local=False)
    unknown = savings([Pruned(epochs=3, reached=1.0, usd_per_epoch=None, seconds_per_epoch=None)])
    assert unknown is not None and unknown.usd is None and unknown.seconds is None
    assert unknown.sentence(local=False) == "Pruning stopped 1 candidate early and saved 2.0 candidate-epochs."
    assert savings([]) is None
