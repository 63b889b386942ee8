"""Commands that read what the runs recorded: `runs`, `show`, `logs`, `spend`."""

from __future__ import annotations

import json
import time
from argparse import Namespace
from typing import TYPE_CHECKING, Any

from bot.command import JSON, RUN, arg, command, print_json
from bot.errors import Refused, UsageError

if TYPE_CHECKING:
    from pipeline.domain.records import AuditEvent
    from pipeline.run.bill import Bill


def bill_line(bill: Bill) -> str:
    """A run's money at the terminal, in the bill's words (committed, spent, still billing)."""
    from pipeline.domain.money import money, rate

    if not bill.billed:
        return "money: free (this machine)"
    parts = [f"committed {money(bill.committed_usd)}", f"spent {money(bill.spent_usd)}"]
    if bill.approved_usd is not None:
        parts.append(f"approved {money(bill.approved_usd)} (cap {money(bill.cap_usd)})")
    parts += [f"still billing {rate(d.usd_per_hour)}: {d.deployment_id}" for d in bill.live]
    if bill.overrun_flag and bill.overrun is not None:
        parts.append(f"⚠ jobs cost {bill.overrun:.1f}x their estimate")
    return "money: " + " · ".join(parts)


def stamp(epoch: float, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return time.strftime(fmt, time.localtime(epoch))


@command(
    "runs",
    "recent runs with their phase and cost",
    examples=["sftbot runs", "sftbot runs --limit 5 --json"],
    args=[JSON, arg("--limit", type=int, default=20, help="how many, newest first (default 20)")],
)
async def recent_runs(args: Namespace) -> int:
    from bot.settings import load_settings
    from pipeline.store import runs
    from pipeline.store.db import Database

    db = await Database.open(load_settings().db_path)
    try:
        rows = await runs.list_runs(db, limit=args.limit)
    finally:
        await db.close()
    if args.json:
        print_json([r.model_dump(mode="json", exclude={"spec"}) for r in rows])
        return 0
    for r in rows:
        est = f"${r.estimated_usd:,.2f}" if r.estimated_usd is not None else "-"
        act = f"${r.actual_usd:,.2f}" if r.actual_usd is not None else "-"
        who = r.requester_name or r.requester
        print(
            f"#{r.number:<4} {r.id}  {who:<12} {r.phase.value:<24} est {est:<9} actual {act:<9} "
            f"updated {stamp(r.updated_at, '%Y-%m-%d %H:%M')}"
        )
    if not rows:
        print("no runs yet")
    return 0


@command(
    "spend",
    "estimated vs actual spend per run, person and channel, and what still bills",
    examples=["sftbot spend", "sftbot spend --since 7d --json"],
    args=[arg("--since", default="30d", help="a window such as 30d, 12h or 2w (default 30d)"), JSON],
)
async def spend(args: Namespace) -> int:
    from bot.settings import load_settings
    from pipeline.run.spending import parse_since, text_lines
    from pipeline.run.spending import spend as total_spend
    from pipeline.store.db import Database

    settings = load_settings()
    try:
        window = parse_since(args.since)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    db = await Database.open(settings.db_path)
    try:
        s = await total_spend(db, since_seconds=window, margin=settings.spend_margin)
    finally:
        await db.close()
    if args.json:
        print_json(s.model_dump(mode="json"))
    else:
        print("\n".join(text_lines(s, days=window / 86400)))
    return 0


@command(
    "show",
    "one run: its phase, candidates, base-model comparison and audit trail",
    examples=["sftbot show 12", "sftbot show 12 --json"],
    args=[RUN, JSON],
)
async def show(args: Namespace) -> int:
    from bot.console import comparison_lines
    from bot.settings import load_settings
    from bot.terminal import scoreboard_lines
    from pipeline.run.answers import run_comparison
    from pipeline.run.bill import run_bill
    from pipeline.store import runs
    from pipeline.store.db import Database

    settings = load_settings()
    db = await Database.open(settings.db_path)
    try:
        run = await runs.get_run(db, args.run)
        if run is None:
            raise Refused(f"no run {args.run}: `sftbot runs` lists them")
        cands = await runs.candidates(db, run.id)
        trail = await db.audit_trail(run.id)
        compared = await run_comparison(db, run)
        bill = await run_bill(db, run, margin=settings.spend_margin)
    finally:
        await db.close()
    if args.json:
        print_json(
            {
                "run": run.model_dump(mode="json"),
                # The run's money, the same read model every surface renders (pipeline/run/bill.py).
                "bill": {**bill.model_dump(mode="json"), "usd_per_hour": bill.usd_per_hour, "overrun_flag": bill.overrun_flag},
                "candidates": [c.model_dump(mode="json") for c in cands],
                "audit": [a.model_dump(mode="json") for a in trail],
                # Base vs the shipped model (or the sweep's leader before a promotion); null: not scored.
                "base_comparison": {"against": compared[0], **compared[1].model_dump(mode="json")} if compared else None,
            }
        )
        return 0
    print(f"Run #{run.number} ({run.id}) by {run.requester_name or run.requester}: {run.phase.value}")
    print(f"  {run.instruction}")
    if run.error:
        print(f"  error: {run.error}")
    print(f"  {bill_line(bill)}")
    print("\n".join(scoreboard_lines(cands)))
    if compared:
        print("\n".join(comparison_lines(compared[1], who=compared[0])))
    print("Audit:")
    for a in trail:
        print(
            f"  {stamp(a.at)}  {a.actor_name or a.actor:<12} {a.action}"
            + (f" (plan v{a.plan_version})" if a.plan_version else "")
        )
    return 0


@command(
    "logs",
    "a run's audit trail and job events, one line each",
    examples=["sftbot logs 12", "sftbot logs 12 -f", "sftbot logs 12 --json"],
    args=[
        RUN,
        arg("-f", "--follow", action="store_true", help="keep printing new events until the run ends (Ctrl-C stops)"),
        arg("--json", action="store_true", help="one JSON object per line (JSON Lines) instead of text"),
    ],
)
async def logs(args: Namespace) -> int:
    from bot import foreground
    from bot.settings import load_settings
    from bot.stopping import Stop
    from pipeline.store.db import Database

    settings = load_settings()
    run = await foreground.find_run(settings, args.run)
    db = await Database.open(settings.db_path)
    try:
        async with Stop() as stop:
            await stop.until(_print_events(db, run.id, follow=args.follow, as_json=args.json))
    finally:
        await db.close()
    return stop.code


async def _print_events(db: Any, run_id: str, *, follow: bool, as_json: bool) -> None:
    """Print the run's events; with ``follow``, new ones as they are recorded until it ends. The
    run may be driven by another process: the table is read again every second."""
    import asyncio

    from pipeline.store import runs

    last = 0
    while True:
        ended = (found := await runs.get_run(db, run_id)) is None or found.phase.finished  # read before the events
        for event in await db.audit_trail(run_id, after=last):
            print(json.dumps(event.model_dump(mode="json")) if as_json else log_line(event), flush=True)
            last = event.id
        if not follow or ended:
            return
        await asyncio.sleep(1.0)


def log_line(a: AuditEvent) -> str:
    """``2026-12-01 14:03:07  alice  approve  plan v1 from=awaiting_plan_approval to=training``"""
    parts = [stamp(a.at), f"{a.actor_name or a.actor:<12}", a.action]
    if a.plan_version:
        parts.append(f"plan v{a.plan_version}")
    for key, value in a.details.items():
        if value is None or isinstance(value, (dict, list)):
            continue
        text = str(value) if not isinstance(value, str) else value[:200]
        parts.append(f"{key}={json.dumps(text, ensure_ascii=False) if not text or ' ' in text else text}")
    return "  ".join(parts[:3]) + ("  " + " ".join(parts[3:]) if parts[3:] else "")
