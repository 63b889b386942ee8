"""The sweep's parallel limit under back-pressure, step by step (pure: times are given)."""

from __future__ import annotations

from pipeline.run.jobs import _Gate


def test_a_refusal_holds_the_limit_at_what_runs_and_a_finished_job_frees_a_slot_at_once() -> None:
    gate = _Gate(6, poll=1.0, give_up=3600)
    assert gate.room(0, now=0) == 6  # the plan's pace until the platform says no
    assert gate.refused(running=2, now=10) is False
    assert gate.limit == 2 and gate.room(2, now=10.5) == 0  # nothing more while the two run
    assert gate.room(1, now=10.6) == 1  # one of ours finished: its slot is refilled at once
    gate.started(now=10.6)
    assert gate.room(2, now=10.7) == 0


def test_probes_above_the_limit_back_off_while_refused_and_speed_up_when_taken() -> None:
    gate = _Gate(6, poll=1.0, give_up=3600)
    gate.refused(running=2, now=0)  # next try at 2 s
    assert gate.room(2, now=1.9) == 0
    assert gate.room(2, now=2.0) == 1 and gate.limit == 3  # the backoff is over: one slot more
    gate.refused(running=2, now=2.0)  # still full: the next probe waits twice as long
    assert gate.next_try == 2.0 + 4.0 and gate.room(2, now=5.9) == 0 and gate.room(2, now=6.0) == 1
    gate.started(now=6.0)  # the probe was taken: the quota grew
    assert gate.level == 0 and gate.room(3, now=6.5) == 0
    assert gate.room(3, now=7.0) == 1 and gate.limit == 4  # the next probe comes after one poll, not four


def test_give_up_only_when_nothing_of_ours_could_run_for_the_whole_time() -> None:
    gate = _Gate(6, poll=1.0, give_up=100)
    assert gate.refused(running=0, now=0) is False
    assert gate.refused(running=1, now=60) is False  # something ran in between: the clock restarts
    assert gate.refused(running=0, now=70) is False
    assert gate.refused(running=0, now=169) is False
    assert gate.refused(running=0, now=170) is True
