"""Tearing a run's deployment down on request (``/sft teardown N``, ``sftbot teardown N``).

Only the run's own production deployment, only one this bot created (its id is in the run's
provenance and starts with ``sftbot-``), only by someone allowed to stop the run, audited with
who asked, and the state the platform reads back is what is recorded. The model stays: it can
be deployed again.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.domain import ids
from pipeline.domain.authz import Action, Policy, Subject, authorize
from pipeline.domain.platform import NotFound, Platform, PlatformError
from pipeline.domain.provenance import Ref, ResourceKind, ResourceState
from pipeline.domain.records import Actor, Resource, RunRecord
from pipeline.run.decisions import Refusal, RefusalKind
from pipeline.run.events import DeploymentTornDown
from pipeline.store import runs
from pipeline.store.db import Database


@dataclass(frozen=True)
class Target:
    """What a teardown of this run would delete."""

    run: RunRecord
    deployment: Resource


async def target(db: Database, policy: Policy, key: str | int, actor: Actor, *, channel: str | None) -> Target:
    """The run's deployment this person may tear down; ``Refusal`` (audited when denied) otherwise."""
    run = await runs.get_run(db, key)
    if run is None:
        raise Refusal(RefusalKind.NOT_FOUND, f"There is no run {str(key)[:20]}.")
    verdict = authorize(actor, Action.TEARDOWN, policy=policy, channel=channel, about=Subject(requester=run.requester))
    if verdict.denied:
        refusal = Refusal.denied(verdict.rule, policy)
        details = {"rule": verdict.rule.value if verdict.rule else None, "reason": refusal.sentence()}
        await db.audit(run_id=run.id, actor=actor.id, actor_name=actor.name, action="denied_teardown", details=details)
        raise refusal
    dep_id = ids.deployment_id(run.id)
    found = await db.resource(Ref(kind=ResourceKind.DEPLOYMENT, id=dep_id))
    if found is None or found.state is ResourceState.RECORDED:
        raise Refusal(RefusalKind.NOT_NOW, f"Run #{run.number} has no deployment to tear down: it never deployed a model.")
    if found.state.gone:
        said = found.state.value
        raise Refusal(RefusalKind.NOT_NOW, f"Run #{run.number}'s deployment {dep_id} is already {said}; nothing to do.")
    return Target(run=run, deployment=found)


async def teardown(
    db: Database,
    platform: Platform,
    policy: Policy,
    key: str | int,
    actor: Actor,
    *,
    channel: str | None,
) -> tuple[RunRecord, str]:
    """Delete the run's deployment; returns the run and the state read back."""
    found = await target(db, policy, key, actor, channel=channel)
    run, dep_id = found.run, found.deployment.resource_id
    if run.platform != platform.facts.name:
        raise Refusal(
            RefusalKind.INVALID, f"Run #{run.number} ran on {run.platform}, not {platform.facts.name}: use that platform."
        )
    try:
        state = ResourceState.of((await platform.serving.delete(dep_id)).state)
    except NotFound:
        state = ResourceState.DELETED  # gone already (Fireworks deletes idle min-0 deployments after 7 days)
    except PlatformError as exc:
        await db.audit(
            run_id=run.id, actor=actor.id, actor_name=actor.name, action="teardown_failed", details={"error": str(exc)}
        )
        raise Refusal(RefusalKind.INVALID, f"Deployment {dep_id} could not be torn down: {exc}") from None
    async with db.write() as tx:
        await db.move_resource(tx, run.id, found.deployment.ref, state)
        await tx.audit(
            run_id=run.id,
            actor=actor.id,
            actor_name=actor.name,
            action="teardown",
            details={"deployment_id": dep_id, "state": state.value},
        )
        tx.emit(DeploymentTornDown(run=run, actor=actor, deployment_id=dep_id, state=state.value))
    return run, state.value
