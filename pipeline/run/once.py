"""``create_once``: the one way a run creates a platform resource.

Training jobs, datasets, deployments, adapter loads and evaluation jobs all go through it, so
"record the id, create, record the answer" is written once (temporal's activities are the model:
each side effect is one named call with its bookkeeping beside it):

1. the id (and what the resource is for, what it will cost) is recorded, in the same
   transaction as whatever else the caller writes with it, then a crash test may stop here;
2. the platform's create is called; every create takes the id this bot derived, and the
   platform answers a second create of the same id with the one it made (``Platform``'s
   contract), so a create that went out before a crash is found, never made twice;
3. the answer is recorded (its state, its name, what it costs), a crash test may stop again.

A resource already past RECORDED is not created again: ``found`` reads it back (or, without
one, the create is asked again and answers with the existing resource).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pipeline.domain.platform import JobStatus
from pipeline.domain.provenance import Change, Ref, ResourceKind, ResourceState
from pipeline.domain.records import Resource
from pipeline.domain.slots import CandidateState
from pipeline.store.db import Database, Tx

T = TypeVar("T")
Checkpoint = Callable[[str], Awaitable[None]]
NOT_YET = (ResourceState.RECORDED, ResourceState.QUEUED)  # no create of it has been answered


def _nothing(_: object) -> Change:
    return Change()


@dataclass(frozen=True)
class Create(Generic[T]):
    """One platform create, with what provenance records around it."""

    run_id: str
    ref: Ref
    call: Callable[[], Awaitable[T]]  # the platform's create, with the id ``ref`` names
    then: ResourceState = ResourceState.CREATED  # the state its answer is recorded in
    intent: Change = field(default_factory=Change)  # recorded with the id: what it is for, its rate
    answer: Callable[[T], Change] = _nothing  # recorded from the create's answer (its name, its cost)
    before: Callable[[Tx], Awaitable[None]] | None = None  # more writes in the id's transaction
    after: Callable[[Tx, T], Awaitable[None]] | None = None  # more writes in the answer's transaction
    found: Callable[[Resource], Awaitable[T]] | None = None  # read back one created before


async def create_once(db: Database, checkpoint: Checkpoint, create: Create[T]) -> T:
    """The resource ``create`` names, created at most once across crashes and restarts."""
    ref = create.ref
    known = await db.resource(ref)
    if known is not None and known.state not in NOT_YET:
        return await create.found(known) if create.found is not None else await create.call()
    async with db.write() as tx:
        await db.move_resource(tx, create.run_id, ref, ResourceState.RECORDED, create.intent)
        if create.before is not None:
            await create.before(tx)
    await checkpoint(ref.checkpoint(ResourceState.RECORDED))
    result = await create.call()
    async with db.write() as tx:
        await db.move_resource(tx, create.run_id, ref, create.then, create.answer(result))
        if create.after is not None:
            await create.after(tx, result)
    await checkpoint(ref.checkpoint(create.then))
    return result


async def job_finished(db: Database, tx: Tx, run_id: str, status: JobStatus, state: CandidateState) -> None:
    """A training job's end in provenance: its final state and estimate, and the model it made."""
    ref = Ref(kind=ResourceKind.JOB, id=status.job_id)
    await db.move_resource(tx, run_id, ref, ResourceState.of(state), Change(estimated_usd=status.cost_usd))
    if state is CandidateState.COMPLETED and status.model:
        model = Ref(kind=ResourceKind.MODEL, id=status.model)
        await db.move_resource(tx, run_id, model, ResourceState.READY, Change(name=status.model))
