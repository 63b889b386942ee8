"""What a run has cost so far, against what people approved (pure).

One ledger feeds every surface that shows money — the root message, the scoreboard, the
budget gate, the report and ``sftbot spend`` — so they cannot disagree.

- **Jobs**: the platform's own figure for each job (Fireworks reports ``estimatedCost`` on
  the job, SDK ``SupervisedFineTuningJob.estimated_cost``); a job it has not priced yet
  counts at the plan's estimate, and the ledger says how many are estimated.
- **Deployments** the bot created: GPU-hours x the shape's rate, from creation until they
  were deleted (or now). Deployments that scale to zero bill nothing while down, so this is
  an upper bound, and the ledger says so.
- **Free** runs (a platform that bills nothing: the local one) cost nothing: the ledger is
  empty and surfaces say "free (this machine)".

The cap is the approved amount x a margin (``SFTBOT_SPEND_MARGIN``, 1.2 by default).
``shortfall`` is the one decision about it: before a paid step starts, does what was spent
plus that step's estimate still fit under the cap?
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, Field

from pipeline.domain.gates import BudgetRequest, BudgetStep
from pipeline.domain.provenance import ResourceKind, ResourceState
from pipeline.domain.records import CandidateRecord, Resource
from pipeline.domain.slots import CandidateState
from pipeline.planning.plan_types import Plan

DEFAULT_MARGIN = 1.2
WARN_AT = 0.8  # of the cap: the root and the scoreboard warn from here on


class LedgerLine(BaseModel):
    label: str  # "candidate 2", "final run", "deployment sftbot-ab12-dep"
    usd: float
    estimated: bool = False  # not priced by the platform yet: the plan's figure
    running: bool = False  # still costing money (an active job, a live deployment)
    usd_per_hour: float | None = None  # deployments: what it bills per hour while up
    # What of ``usd`` has run: a running job is committed whole (it was priced at submission) but
    # has run only its progress; everything else has run all its ``usd``.
    ran_usd: float | None = None

    @property
    def ran(self) -> float:
        return self.usd if self.ran_usd is None else self.ran_usd


class Ledger(BaseModel):
    """A run's spend so far and its cap."""

    lines: list[LedgerLine] = Field(default_factory=list)
    approved_usd: float | None = None
    margin: float = DEFAULT_MARGIN

    @property
    def committed_usd(self) -> float:
        """Jobs at their whole price from submission (stopped ones at what ran) and deployments so
        far: what the cap guards, since a running job will cost its price."""
        return round(sum(ln.usd for ln in self.lines), 6)

    @property
    def spent_usd(self) -> float:
        """What has run: finished jobs, running jobs' progress, deployments so far."""
        return round(sum(ln.ran for ln in self.lines), 6)

    @property
    def jobs_usd(self) -> float:
        return round(sum(ln.usd for ln in self.lines if ln.usd_per_hour is None), 6)

    @property
    def deployments_usd(self) -> float:
        return round(sum(ln.usd for ln in self.lines if ln.usd_per_hour is not None), 6)

    @property
    def cap_usd(self) -> float | None:
        return None if self.approved_usd is None else round(self.approved_usd * self.margin, 6)

    @property
    def estimated_lines(self) -> int:
        return sum(1 for ln in self.lines if ln.estimated)

    @property
    def live_usd_per_hour(self) -> float:
        return round(sum(ln.usd_per_hour or 0.0 for ln in self.lines if ln.running), 6)

    @property
    def warning(self) -> bool:
        cap = self.cap_usd
        return cap is not None and cap > 0 and self.committed_usd >= WARN_AT * cap


def _job_estimates(plan: Plan | None) -> dict[str, float]:
    """The plan's training estimate per job label ("candidate 2", "final run")."""
    if plan is None:
        return {}
    return {ln.label: ln.usd for ln in plan.cost.lines if ln.phase == "training" and ln.usd is not None}


def _label(c: CandidateRecord) -> str:
    return "final run" if c.slot.is_final else f"candidate {c.slot.number}"


_STOPPED_EARLY = (CandidateState.CANCELLED, CandidateState.PRUNED)


def ran_share(c: CandidateRecord) -> float:
    """The part of a job that ran: all of it, unless it was stopped early (cancelled or pruned);
    then its epochs reached over those planned, else the platform's progress. Fireworks does not
    say how a cancelled SFT job is billed (its ``estimatedCost`` is the whole job's), so the ledger
    charges what ran and the report's "pruning saved" is the rest: the two add up to the estimate."""
    if c.state not in _STOPPED_EARLY:
        return 1.0
    if c.epoch is not None and c.epochs:
        return min(1.0, max(0.0, c.epoch / c.epochs))
    return min(1.0, max(0.0, c.progress / 100))


def job_estimate(c: CandidateRecord, plan: Plan | None) -> float | None:
    """A whole job's price: the platform's own figure when it gave one, else the plan's."""
    return c.cost_usd if c.cost_usd is not None else _job_estimates(plan).get(_label(c))


def ledger(
    cands: Sequence[CandidateRecord],
    resources: Sequence[Resource],
    plan: Plan | None,
    *,
    approved_usd: float | None,
    now: float,
    margin: float = DEFAULT_MARGIN,
) -> Ledger:
    """The run's ledger as of ``now`` (empty where its plan says the platform bills nothing)."""
    if plan is not None and not plan.billed:
        return Ledger(approved_usd=approved_usd, margin=margin)
    lines = [line for c in cands if (line := _job_line(c, plan)) is not None]
    lines += [line for r in resources if (line := _deployment_line(r, now)) is not None]
    return Ledger(lines=lines, approved_usd=approved_usd, margin=margin)


def _job_line(c: CandidateRecord, plan: Plan | None) -> LedgerLine | None:
    """A job at its price (the platform's, else the plan's) x the part of it that ran; None for
    a job the plan did not price that has not been priced yet, or that never started."""
    whole = job_estimate(c, plan)
    running = c.state.is_active()
    if whole is None or (c.cost_usd is None and not (running or c.state.is_finished())):
        return None
    share = ran_share(c)
    return LedgerLine(label=_label(c), usd=round(whole * share, 6), estimated=c.cost_usd is None or share < 1, running=running)


def _deployment_line(r: Resource, now: float) -> LedgerLine | None:
    """A deployment's GPU-hours x its rate, from its creation until it was gone (or now); None
    for anything that is not a priced deployment the platform answered the create of."""
    rate = r.usd_per_hour
    if r.kind is not ResourceKind.DEPLOYMENT or rate is None or r.state is ResourceState.RECORDED:
        return None
    # A FAILED deployment holds no replica; DELETE_FAILED is still up as far as anyone knows.
    live = not r.state.gone and r.state is not ResourceState.FAILED
    # Billing ends when it first went out of service (the delete, not a 404 read back later).
    end = now if live else (r.ended_at if r.ended_at is not None else r.updated_at)
    if live and r.scaled_to_zero_at is not None:  # no replica since then; it bills again only while serving
        live, end = False, r.scaled_to_zero_at
    hours = max(0.0, end - r.created_at) / 3600
    return LedgerLine(label=f"deployment {r.resource_id}", usd=round(hours * rate, 6), running=live, usd_per_hour=rate)


def priced(cands: Sequence[CandidateRecord], plan: Plan | None) -> tuple[float, float] | None:
    """(estimated, actual) over this run's jobs the platform has priced; None: none yet."""
    estimates = _job_estimates(plan)
    pairs = [(estimates[_label(c)], c.cost_usd) for c in cands if c.cost_usd is not None and estimates.get(_label(c))]
    if not pairs:
        return None
    return round(sum(e for e, _ in pairs), 6), round(sum(a for _, a in pairs), 6)


def overrun(cands: Sequence[CandidateRecord], plan: Plan | None) -> float | None:
    """Actual / estimated cost of this run's jobs the platform has priced (None: none yet)."""
    both = priced(cands, plan)
    return round(both[1] / both[0], 4) if both is not None and both[0] > 0 else None


def step_estimate(step: BudgetStep, plan: Plan, *, overrun: float | None) -> float | None:
    """What a paid step should cost: its plan line, scaled up by how far this run's jobs
    overran their estimates (never scaled down: the cap guards against surprises)."""
    if step is BudgetStep.FINAL:
        usd = next((ln.usd for ln in plan.cost.lines if ln.phase == "training" and ln.label == "final run"), None)
        return None if usd is None else round(usd * max(1.0, overrun or 1.0), 6)
    return next(
        (ln.usd for ln in plan.cost.lines if ln.phase == "inference" and ln.label.startswith("deployment")),
        plan.cost.deployment_usd_per_hour,
    )


def shortfall(
    book: Ledger, step: BudgetStep, next_usd: float | None, *, held: str, number: int, overrun: float | None = None
) -> BudgetRequest | None:
    """The budget gate's request when spent + this step would pass the cap; None when it fits
    (or when nothing was approved in dollars: a free local run)."""
    cap = book.cap_usd
    if cap is None or book.approved_usd is None or next_usd is None:
        return None
    needed = book.committed_usd + next_usd
    if needed <= cap:
        return None
    more = math.ceil((needed - book.approved_usd) * 100) / 100  # whole cents, rounded up
    return BudgetRequest(
        number=number,
        step=step,
        held=held,
        spent_usd=round(book.committed_usd, 2),
        next_usd=round(next_usd, 2),
        approved_usd=round(book.approved_usd, 2),
        cap_usd=round(cap, 2),
        margin=book.margin,
        more_usd=more,
        overrun=overrun,
    )
