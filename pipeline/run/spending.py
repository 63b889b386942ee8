"""Spend across runs: per run, per person, per channel, estimated vs actual, and what still
costs money. ``sftbot spend`` and ``/sft spend`` print this; each run's figures are its bill
(``pipeline/run/bill.py``), which the report and every other surface render too.
"""

from __future__ import annotations

import re
from collections import defaultdict

from pydantic import BaseModel, Field

from pipeline.domain.money import rate
from pipeline.domain.records import RunRecord
from pipeline.planning.ledger import DEFAULT_MARGIN
from pipeline.run.bill import Bill, run_bill
from pipeline.store import runs
from pipeline.store.db import Database

_SINCE = re.compile(r"([1-9][0-9]{0,4})\s*(d|h|w)")


def parse_since(text: str) -> float:
    """``30d``, ``12h``, ``2w`` -> seconds; ValueError names the accepted forms."""
    m = _SINCE.fullmatch(text.strip().lower())
    if m is None:
        raise ValueError(f"--since {text[:20]!r}: use a number of days, hours or weeks, e.g. 30d, 12h, 2w")
    return int(m.group(1)) * {"h": 3600, "d": 86400, "w": 7 * 86400}[m.group(2)]


class RunSpend(BaseModel):
    number: int
    run_id: str
    requester: str
    requester_name: str = ""
    channel: str | None
    platform: str
    billed: bool = True  # its platform bills money (False: free, on this machine)
    phase: str
    created_at: float
    estimated_usd: float | None
    approved_usd: float | None
    cap_usd: float | None
    training_usd: float  # the jobs: the platform's own figures (or the plan's while unpriced)
    deployments_usd: float  # GPU-hours x rate of the deployments it created, so far (an upper bound)
    committed_usd: float = 0.0  # jobs at their whole price from submission, and the deployments so far
    actual_usd: float  # spent: what has run (jobs and deployments)
    estimated_lines: int  # ledger lines still at the plan's figure
    running: list[str] = Field(default_factory=list)  # what still costs money right now
    usd_per_hour: float = 0.0  # what that costs per hour
    deployment_usd_per_hour: float | None = None  # the production deployment's rate while up

    @staticmethod
    def of(run: RunRecord, book: Bill) -> RunSpend:
        return RunSpend(
            number=run.number,
            run_id=run.id,
            requester=run.requester,
            requester_name=run.requester_name,
            channel=run.channel,
            platform=run.platform,
            billed=run.billed,
            phase=run.phase.value,
            created_at=run.created_at,
            estimated_usd=run.estimated_usd,
            approved_usd=run.approved_usd,
            cap_usd=book.cap_usd,
            training_usd=book.training_usd,
            deployments_usd=book.deployments_usd,
            committed_usd=book.committed_usd,
            actual_usd=book.spent_usd,
            estimated_lines=book.estimated_lines,
            running=book.running,
            usd_per_hour=book.usd_per_hour,
            deployment_usd_per_hour=book.deployment_usd_per_hour,
        )


class Total(BaseModel):
    key: str  # a person's id or a channel id
    label: str = ""
    runs: int = 0
    estimated_usd: float = 0.0
    actual_usd: float = 0.0


class Spend(BaseModel):
    since: float
    now: float
    runs: list[RunSpend]
    people: list[Total]
    channels: list[Total]

    @property
    def actual_usd(self) -> float:
        return round(sum(r.actual_usd for r in self.runs), 6)

    @property
    def usd_per_hour(self) -> float:
        return round(sum(r.usd_per_hour for r in self.runs), 6)


def _totals(rows: list[RunSpend], key: str) -> list[Total]:
    out: dict[str, Total] = defaultdict(lambda: Total(key=""))
    for r in rows:
        k = (r.requester if key == "person" else r.channel) or "terminal"
        t = out[k]
        t.key, t.label = k, (r.requester_name if key == "person" else "") or t.label
        t.runs += 1
        t.estimated_usd = round(t.estimated_usd + (r.estimated_usd or 0.0), 6)
        t.actual_usd = round(t.actual_usd + r.actual_usd, 6)
    return sorted(out.values(), key=lambda t: -t.actual_usd)


async def spend(
    db: Database,
    *,
    since_seconds: float = 30 * 86400,
    now: float | None = None,
    margin: float = DEFAULT_MARGIN,
    requester: str | None = None,
    channels: list[str] | None = None,
) -> Spend:
    """Every run started in the window (and every older one that still costs money);
    ``channels`` (when given) keeps only runs asked for there, as `/sft runs` does."""
    now = db.clock() if now is None else now
    since = now - since_seconds
    rows = []
    for run in await runs.list_runs(db, limit=100_000, requester=requester, channels=channels):
        r = RunSpend.of(run, await run_bill(db, run, now=now, margin=margin))
        if run.created_at >= since or r.running:
            rows.append(r)
    rows.sort(key=lambda r: -r.number)
    return Spend(since=since, now=now, runs=rows, people=_totals(rows, "person"), channels=_totals(rows, "channel"))


def _usd(v: float | None) -> str:
    return "-" if v is None else f"${v:,.2f}"


def text_lines(s: Spend, *, days: float) -> list[str]:
    """``sftbot spend``: totals first, then what still bills, then one line per run."""
    out = [
        f"Spend in the last {days:g} days: {_usd(s.actual_usd)} actual over {len(s.runs)} run(s)"
        + (f"; still billing {rate(s.usd_per_hour)}" if s.usd_per_hour else ""),
    ]
    if s.people:
        out.append("By person:  " + "; ".join(f"{t.label or t.key} {_usd(t.actual_usd)} ({t.runs})" for t in s.people[:10]))
    if s.channels:
        out.append("By channel: " + "; ".join(f"{t.key} {_usd(t.actual_usd)} ({t.runs})" for t in s.channels[:10]))
    live = [r for r in s.runs if r.running]
    for r in live:
        hourly = f" ({rate(r.usd_per_hour)})" if r.usd_per_hour else ""
        out.append(f"Still costing: run #{r.number}: {', '.join(r.running)}{hourly}")
    for r in s.runs:
        est = f"{r.estimated_lines} at estimate" if r.estimated_lines else ""
        out.append(
            f"#{r.number:<4} {r.requester_name or r.requester:<12} {r.phase:<22} est {_usd(r.estimated_usd):<9} "
            f"approved {_usd(r.approved_usd):<9} actual {_usd(r.actual_usd):<9} {est}".rstrip()
        )
    if not s.runs:
        out.append("No runs in that window.")
    return out
