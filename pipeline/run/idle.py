"""The idle-deployment guard: a production deployment left up asks its run's requester, once.

A deployment "idle" here means up for ``SFTBOT_IDLE_DEPLOYMENT_HOURS`` (24 h by default) since
it was created or since someone last chose Keep. The bot cannot see the traffic a deployment
gets (the platforms report no request counts through the APIs it uses), so it asks instead
of guessing: Keep / Scale to zero / Delete, in a DM to the requester and a note in the run's
thread. Only deployments this bot created and recorded are looked at (the run's own
production deployment id), never anything else on the account.

Exactly once per idle period: the flag is written (and audited) before the event that sends
the DM, so a restart finds it flagged and stays quiet; Keep starts a new period.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.domain import ids
from pipeline.domain.authz import Policy
from pipeline.domain.platform import Platform
from pipeline.domain.provenance import Change, Ref, ResourceKind, ResourceState
from pipeline.domain.records import Actor, Resource, RunRecord
from pipeline.run.events import DeploymentIdle, DeploymentKept
from pipeline.run.teardown import Target, target
from pipeline.store import runs
from pipeline.store.db import Database

LIVE = (ResourceState.READY, ResourceState.CREATED)


def due(r: Resource, *, now: float, idle_seconds: float) -> bool:
    """Whether this deployment should ask now: live, up for the idle time, not asked this period."""
    if r.kind is not ResourceKind.DEPLOYMENT or r.state not in LIVE:
        return False
    kept = r.kept_at or 0.0
    since = max(r.created_at, kept)
    return now - since >= idle_seconds and (r.idle_asked_at is None or r.idle_asked_at < kept)


@dataclass(frozen=True)
class Live:
    run: RunRecord
    deployment: Resource

    @property
    def usd_per_hour(self) -> float | None:
        return self.deployment.usd_per_hour


def total_usd_per_hour(deps: Sequence[Live]) -> float:
    """What the live deployments bill per hour together (their recorded rates, as the bill has them)."""
    return round(sum(d.usd_per_hour or 0.0 for d in deps), 6)


async def live_deployments(db: Database) -> list[Live]:
    """Every production deployment the bot created that is still up, newest run first."""
    rows = await db.fetchall(
        "SELECT run_id FROM resources WHERE kind=? AND state IN (?, ?) ORDER BY created_at DESC",
        (ResourceKind.DEPLOYMENT.value, *(s.value for s in LIVE)),
    )
    out = []
    for run_id in dict.fromkeys(r[0] for r in rows):
        run = await runs.get_run(db, run_id)
        if run is None:
            continue
        dep = await db.resource(Ref(kind=ResourceKind.DEPLOYMENT, id=ids.deployment_id(run.id)))
        if dep is not None and dep.state in LIVE:
            out.append(Live(run=run, deployment=dep))
    return out


async def flag_idle(db: Database, *, idle_seconds: float, now: float | None = None) -> list[Live]:
    """Flag (audited) every deployment due to ask; the DM and the thread note follow the commit."""
    now = time.time() if now is None else now
    flagged = []
    for live in await live_deployments(db):
        dep, run = live.deployment, live.run
        if not due(dep, now=now, idle_seconds=idle_seconds):
            continue
        hours = (now - max(dep.created_at, dep.kept_at or 0.0)) / 3600
        async with db.write() as tx:
            await db.move_resource(tx, run.id, dep.ref, dep.state, Change(idle_asked_at=now))
            await tx.audit(
                run_id=run.id,
                actor="sftbot",
                action="deployment_idle",
                details={"deployment_id": dep.resource_id, "hours_up": round(hours, 1), "usd_per_hour": live.usd_per_hour},
            )
            tx.emit(DeploymentIdle(run=run, deployment_id=dep.resource_id, hours=hours, usd_per_hour=live.usd_per_hour))
        flagged.append(live)
    return flagged


async def keep(db: Database, policy: Policy, key: str, actor: Actor, *, channel: str | None) -> RunRecord:
    """Keep it up: audited, and the guard asks again after another idle period."""
    found = await target(db, policy, key, actor, channel=channel)
    return await _kept(db, found, actor, scaled=False, details={"deployment_id": found.deployment.resource_id})


async def scale_to_zero(
    db: Database, platform: Platform, policy: Policy, key: str, actor: Actor, *, channel: str | None
) -> RunRecord:
    """No replica until the next request: it stops billing and stays deployed (audited)."""
    found = await target(db, policy, key, actor, channel=channel)
    status = await platform.serving.scale_to_zero(found.deployment.resource_id)
    details = {"deployment_id": found.deployment.resource_id, "state": status.state.value}
    return await _kept(db, found, actor, scaled=True, details=details)


async def _kept(db: Database, found: Target, actor: Actor, *, scaled: bool, details: dict[str, Any]) -> RunRecord:
    """Record the choice on the deployment (a new idle period starts now) and audit it."""
    dep, now = found.deployment, time.time()
    marks = Change(kept_at=now, scaled_to_zero_at=now if scaled else None)
    async with db.write() as tx:
        await db.move_resource(tx, found.run.id, dep.ref, dep.state, marks)
        action = "deployment_scaled_to_zero" if scaled else "deployment_kept"
        await tx.audit(run_id=found.run.id, actor=actor.id, actor_name=actor.name, action=action, details=details)
        tx.emit(DeploymentKept(run=found.run, actor=actor, deployment_id=dep.resource_id, scaled=scaled))
    return found.run
