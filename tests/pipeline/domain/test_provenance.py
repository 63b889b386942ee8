"""Provenance as a type: one lifecycle per kind of resource, and candidate states, moved only
through a guard that refuses an illegal move (as optuna refuses to move a finished trial)."""

from __future__ import annotations

import pytest

from pipeline.domain.platform import DeploymentState, JobState
from pipeline.domain.provenance import IllegalMove, Ref, ResourceKind, ResourceState, check_move
from pipeline.domain.slots import CandidateState

K, S, C = ResourceKind, ResourceState, CandidateState


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        (K.JOB, [S.RECORDED, S.QUEUED, S.RECORDED, S.CREATED, S.PRUNING, S.CANCEL_SENT, S.PRUNED]),
        (K.JOB, [S.RECORDED, S.CREATED, S.PRUNING, S.PRUNE_REFUSED, S.COMPLETED]),
        (K.JOB, [S.RECORDED, S.COMPLETED]),  # created, then a crash before "created" was written: read back
        (K.DATASET, [S.RECORDED, S.READY]),
        (K.DEPLOYMENT, [S.RECORDED, S.CREATED, S.READY, S.DELETE_FAILED, S.DELETING, S.DELETED]),
        (K.DEPLOYMENT, [S.RECORDED, S.DELETED]),  # its create never answered; found gone at teardown
        (K.ADAPTER, [S.RECORDED, S.LOADING, S.READY]),
        (K.EVALUATION_JOB, [S.RECORDED, S.CREATED, S.RUNNING, S.COMPLETED]),
        (K.MODEL, [S.READY]),
        (K.EXPORT, [S.WRITTEN]),
    ],
)
def test_every_lifecycle_walks_its_path_and_may_repeat_a_state(kind: ResourceKind, path: list[ResourceState]) -> None:
    current: ResourceState | None = None
    for state in path:
        check_move(kind, current, state)
        check_move(kind, state, state)  # a resumed step records what it recorded before
        current = state


@pytest.mark.parametrize(
    ("kind", "current", "to"),
    [
        (K.DEPLOYMENT, S.DELETED, S.READY),  # a deleted deployment never bills again
        (K.DEPLOYMENT, None, S.READY),  # nothing is created without its id recorded first
        (K.JOB, S.COMPLETED, S.RUNNING),
        (K.JOB, S.PRUNED, S.COMPLETED),
        (K.JOB, S.PRUNE_REFUSED, S.PRUNING),  # a job the platform would not stop is never pruned again
        (K.DATASET, S.READY, S.RECORDED),
        (K.ADAPTER, S.READY, S.LOADING),
        (K.EVALUATION_JOB, S.FAILED, S.RUNNING),
        (K.MODEL, None, S.RECORDED),
    ],
)
def test_an_illegal_move_raises_and_names_both_states(
    kind: ResourceKind, current: ResourceState | None, to: ResourceState
) -> None:
    with pytest.raises(IllegalMove, match=rf"a {kind.value} cannot move from .* to {to.value}"):
        check_move(kind, current, to)


def test_platform_and_candidate_states_have_a_provenance_state_of_the_same_name() -> None:
    for state in (*JobState, *DeploymentState, *CandidateState):
        if state not in (C.WAITING, C.SUBMITTING):  # the run's own states: never a resource's
            assert ResourceState.of(state).value == state.value
    assert Ref(kind=K.JOB, id="sftbot-r-c1").checkpoint(S.CREATED) == "job:sftbot-r-c1:created"
    assert {k for k in K if k.created_by_us} == {K.DATASET, K.JOB, K.DEPLOYMENT, K.ADAPTER, K.EVALUATION_JOB}


def test_a_finished_candidate_never_moves_and_a_waiting_one_only_submits() -> None:
    for done in (C.COMPLETED, C.FAILED, C.CANCELLED, C.PRUNED):
        done.check_move(done)
        for other in set(C) - {done}:
            with pytest.raises(IllegalMove, match=f"from {done.value} to {other.value}"):
                done.check_move(other)
    C.WAITING.check_move(C.SUBMITTING)
    C.SUBMITTING.check_move(C.WAITING)  # refused for quota: back in the queue
    C.RUNNING.check_move(C.PRUNING)
    C.PRUNING.check_move(C.RUNNING)  # the platform refused the cancel
    for illegal in ((C.WAITING, C.RUNNING), (C.PENDING, C.PRUNING), (C.PRUNING, C.CANCELLED), (C.RUNNING, C.WAITING)):
        with pytest.raises(IllegalMove):
            illegal[0].check_move(illegal[1])
