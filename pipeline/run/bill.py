"""The one money read model: a run's bill, computed in one place from its typed records.

Every surface that shows money — the root message, the scoreboard, the plan's gates, the final
message, the idle DM, the App Home, ``/sft spend``, ``sftbot spend``, ``sftbot show``, the report
and the terminal — renders a ``Bill`` (or the ``Spend`` made of bills); none adds dollars up
itself. The words it carries are exact:

- **committed**: jobs at their whole price from the moment they were submitted (the platform's
  ``estimatedCost``, else the plan's; a stopped job at the part that ran) plus the deployments'
  GPU-hours so far. The cap guards this figure, because a running job will cost its price.
- **spent**: what has run — finished jobs, running jobs' progress, the deployments so far.
- **still billing**: each live deployment with its shape, GPU count, $/h and since when.
- **overrun**: the jobs the platform priced, their price over the plan's estimate; flagged from
  ``OVERRUN_FLAG`` (1.5x) on.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from pipeline.domain import ids
from pipeline.domain.provenance import ResourceKind
from pipeline.domain.records import CandidateRecord, Resource, RunRecord
from pipeline.planning.ledger import DEFAULT_MARGIN, WARN_AT, Ledger, LedgerLine, ledger, overrun
from pipeline.planning.plan_types import Plan
from pipeline.store import runs
from pipeline.store.db import Database

OVERRUN_FLAG = 1.5  # jobs costing this many times their estimate are flagged on the scoreboard and the final message


class LiveDeployment(BaseModel):
    """A deployment of the run that still bills: its rate while a replica is up, and since when."""

    deployment_id: str
    accelerator: str | None
    gpu_count: int | None
    usd_per_hour: float | None
    since: float
    usd_so_far: float


class Bill(BaseModel):
    """A run's money as of ``as_of``."""

    run_id: str
    number: int
    billed: bool  # False: a platform that bills nothing (this machine)
    as_of: float
    estimated_usd: float | None  # the plan's total
    approved_usd: float | None
    cap_usd: float | None
    margin: float = DEFAULT_MARGIN
    committed_usd: float = 0.0
    spent_usd: float = 0.0
    training_usd: float = 0.0  # the jobs, committed
    deployments_usd: float = 0.0  # GPU-hours x rate so far (an upper bound: scaled to zero bills nothing)
    estimated_lines: int = 0  # lines still at the plan's figure
    overrun: float | None = None
    deployment_usd_per_hour: float | None = None  # the run's production deployment's own rate, when it has one
    live: list[LiveDeployment] = Field(default_factory=list)
    lines: list[LedgerLine] = Field(default_factory=list)

    @property
    def usd_per_hour(self) -> float:
        """What still bills per hour, all live deployments together."""
        return round(sum(d.usd_per_hour or 0.0 for d in self.live), 6)

    @property
    def overrun_flag(self) -> bool:
        return self.overrun is not None and self.overrun >= OVERRUN_FLAG

    @property
    def warning(self) -> bool:
        """Committed has passed 80% of the cap."""
        cap = self.cap_usd
        return cap is not None and cap > 0 and self.committed_usd >= WARN_AT * cap

    @property
    def running(self) -> list[str]:
        return [ln.label for ln in self.lines if ln.running]

    def would_cross(self, step_usd: float | None) -> bool:
        """Whether a step of this estimate would take committed past 80% of the cap (said before it starts)."""
        cap = self.cap_usd
        if cap is None or cap <= 0 or step_usd is None:
            return False
        return self.committed_usd < WARN_AT * cap <= self.committed_usd + step_usd


def _live(resources: Sequence[Resource], book: Ledger) -> list[LiveDeployment]:
    running = {ln.label: ln for ln in book.lines if ln.running and ln.usd_per_hour is not None}
    out = []
    for r in resources:
        line = running.get(f"deployment {r.resource_id}")
        if r.kind is not ResourceKind.DEPLOYMENT or line is None:
            continue
        rate = r.rate
        out.append(
            LiveDeployment(
                deployment_id=r.resource_id,
                accelerator=rate.accelerator if rate else None,
                gpu_count=rate.gpu_count if rate else None,
                usd_per_hour=r.usd_per_hour,
                since=r.created_at,
                usd_so_far=line.usd,
            )
        )
    return out


def bill(
    run: RunRecord,
    cands: Sequence[CandidateRecord],
    resources: Sequence[Resource],
    plan: Plan | None,
    *,
    now: float,
    margin: float = DEFAULT_MARGIN,
) -> Bill:
    """The run's bill (pure): the one place its money is added up."""
    book = ledger(cands, resources, plan, approved_usd=run.approved_usd, now=now, margin=margin)
    dep_id = ids.deployment_id(run.id)
    production = next((r.usd_per_hour for r in resources if r.kind is ResourceKind.DEPLOYMENT and r.resource_id == dep_id), None)
    return Bill(
        run_id=run.id,
        number=run.number,
        billed=run.billed,
        as_of=now,
        estimated_usd=run.estimated_usd,
        approved_usd=run.approved_usd,
        cap_usd=book.cap_usd,
        margin=margin,
        committed_usd=book.committed_usd,
        spent_usd=book.spent_usd,
        training_usd=book.jobs_usd,
        deployments_usd=book.deployments_usd,
        estimated_lines=book.estimated_lines,
        overrun=overrun(cands, plan),
        deployment_usd_per_hour=production,
        live=_live(resources, book),
        lines=book.lines,
    )


async def run_bill(db: Database, run: RunRecord, *, now: float | None = None, margin: float = DEFAULT_MARGIN) -> Bill:
    """The run's bill as of ``now`` (the database's clock by default), read from the store."""
    plan = await runs.get_plan(db, run.id, run.plan_version) if run.plan_version else None
    return bill(
        run,
        await runs.candidates(db, run.id),
        await db.resources(run.id),
        plan,
        now=db.clock() if now is None else now,
        margin=margin,
    )
