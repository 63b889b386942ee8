"""The state machine as a table: every allowed step, every refusal, the branches a plan turns off."""

from __future__ import annotations

import pytest

from pipeline.domain.machine import BUDGET_EXITS, ENTRY, TABLE, Context, Effect, Event, Phase, Refused, advance

UNFINISHED = [p for p in Phase if not p.finished]
ALLOWED = [(phase, event, nxt) for (phase, event), nxt in TABLE.items()]


@pytest.mark.parametrize(("phase", "event", "expected"), ALLOWED, ids=[f"{p.value}-{e.value}" for p, e, _ in ALLOWED])
def test_each_row_of_the_table(phase: Phase, event: Event, expected: Phase) -> None:
    nxt, effects = advance(phase, event)
    assert nxt is expected and effects == ENTRY[expected]


@pytest.mark.parametrize(("held", "event", "expected"), [(h, e, n) for (h, e), n in BUDGET_EXITS.items()])
def test_the_budget_gate_returns_to_the_phase_it_holds_or_goes_past_its_step(held: str, event: Event, expected: Phase) -> None:
    nxt, effects = advance(Phase.AWAITING_BUDGET, event, Context(budget_held=held))
    assert nxt is expected and effects == ENTRY[expected]
    assert (nxt.value == held) is (event is Event.RAISE_BUDGET)


def test_a_budget_decision_without_an_open_request_is_refused() -> None:
    with pytest.raises(Refused, match="cannot raise_budget now"):
        advance(Phase.AWAITING_BUDGET, Event.RAISE_BUDGET, Context())


REFUSED = [
    (phase, event)
    for phase in UNFINISHED
    for event in Event
    if (phase, event) not in TABLE and event not in (Event.CANCEL, Event.FAIL)
]


@pytest.mark.parametrize(("phase", "event"), REFUSED, ids=[f"{p.value}-{e.value}" for p, e in REFUSED])
def test_anything_else_is_refused_with_what_the_run_waits_for(phase: Phase, event: Event) -> None:
    with pytest.raises(Refused, match=f"cannot {event.value} now"):
        advance(phase, event)


@pytest.mark.parametrize("phase", UNFINISHED, ids=[p.value for p in UNFINISHED])
def test_cancel_and_fail_end_any_unfinished_run_and_cancel_its_jobs(phase: Phase) -> None:
    assert advance(phase, Event.CANCEL) == (Phase.CANCELLED, (Effect.CANCEL_JOBS, Effect.FINISH))
    assert advance(phase, Event.FAIL) == (Phase.FAILED, (Effect.CANCEL_JOBS, Effect.FINISH))


@pytest.mark.parametrize("phase", [p for p in Phase if p.finished], ids=lambda p: p.value)
def test_a_finished_run_takes_nothing(phase: Phase) -> None:
    for event in Event:
        with pytest.raises(Refused, match="already"):
            advance(phase, event)


@pytest.mark.parametrize(
    ("phase", "event", "ctx", "expected"),
    [
        (Phase.AWAITING_PROMOTION, Event.PROMOTE, Context(final_run=False), Phase.EVALUATING),
        (Phase.EVALUATING, Event.EVALUATED, Context(deploy=False), Phase.REPORTING),
        (Phase.AWAITING_PROMOTION, Event.PROMOTE, Context(final_run=False, deploy=False), Phase.EVALUATING),
        (Phase.FINAL_TRAINING, Event.FINAL_DONE, Context(deploy=False), Phase.EVALUATING),
    ],
)
def test_phases_the_plan_switched_off_are_skipped(phase: Phase, event: Event, ctx: Context, expected: Phase) -> None:
    assert advance(phase, event, ctx)[0] is expected


def test_every_phase_has_an_entry_and_gates_only_announce() -> None:
    assert set(ENTRY) == set(Phase)
    for phase in Phase:
        background = [e for e in ENTRY[phase] if e.background]
        assert len(background) <= 1
        if phase.gate or phase.finished:
            assert not background, phase  # nothing runs (or is spent) while a person decides
        else:
            assert background, phase
