"""The `sftbot` command line. Errors are one line on stderr, never a traceback.

Exit codes: 0 ok; 1 the data or the request cannot be used (blocking problems); 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.console import inspection_text, plan_json, plan_text
from bot.errors import Refused, UsageError
from bot.settings import Settings, SettingsError, load_settings
from pipeline.dataset.demo_data import resolve_dataset_ref
from pipeline.dataset.inspection import InspectionReport
from pipeline.dataset.inspector import inspect_dataset
from pipeline.domain.catalog import find_model
from pipeline.domain.instructions import parse_instruction
from pipeline.domain.platform import PlatformError
from pipeline.domain.spec import RunSpec, SpecError
from pipeline.planning.plan import MissingInput, make_plan
from pipeline.planning.plan_types import Plan
from pipeline.run.decisions import Refusal as DecisionRefused


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_inspect(args: argparse.Namespace) -> int:
    path = Path(resolve_dataset_ref(args.path))
    if not path.is_file():
        raise UsageError(f"no such file: {args.path}")
    report = inspect_dataset(path)
    if args.json:
        _print_json({**report.model_dump(mode="json"), "trainable": report.trainable, "blocking": report.blocking})
    else:
        print(inspection_text(report))
    return 0 if report.trainable else 1


def build_plan(instruction: str, *, platform: str, settings: Settings | None = None) -> Plan:
    """Parse, inspect a local dataset and plan; starts nothing and spends nothing."""
    spec = parse_instruction(instruction)
    if not spec.dataset:
        raise Refused("no dataset named: add dataset=<id or path to a .jsonl file>")
    path = Path(resolve_dataset_ref(spec.dataset))
    if not path.is_file():
        raise Refused(
            f"dataset {spec.dataset} is not a local file; `sftbot plan` inspects local files "
            "(platform datasets are staged by `sftbot run`)"
        )
    report = inspect_dataset(path)
    if report.blocking:
        first = report.problems[0] if report.problems else None
        where = f" (line {first.examples[0].line}: {first.examples[0].message})" if first and first.examples else ""
        raise Refused(f"dataset {spec.dataset} cannot be trained on: {first.title if first else 'problems found'}{where}")
    if platform == "local":
        return asyncio.run(_local_plan(spec, report, path, settings or load_settings()))
    return make_plan(spec, report, platform=platform)


async def _local_plan(spec: RunSpec, report: InspectionReport, path: Path, settings: Settings) -> Plan:
    """The local platform's plan: its models, its parallelism, and time measured on this machine
    (a few timed steps the first time, then the cache: a second plan starts at once)."""
    from bot.local_commands import local_platform

    local = local_platform(settings)
    try:
        infos = {m: await local.model_info(m) for m in spec.base_models}
        measured = {m: tp for m in dict.fromkeys(spec.base_models) if (tp := await local.throughput(m, sample=path))}
        return make_plan(
            spec,
            report,
            platform="local",
            model_info=lambda m: infos.get(m) or find_model(m),
            default_parallel=local.max_parallel,
            throughput=measured or None,
        )
    finally:
        await local.close()


def cmd_plan(args: argparse.Namespace) -> int:
    settings = load_settings()
    platform = args.platform or settings.resolved_platform
    plan = build_plan(args.instruction, platform=platform, settings=settings)
    if args.json:
        _print_json(plan_json(plan))
    else:
        print(plan_text(plan))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.app import serve

    overrides = {k: v for k, v in (("mode", args.mode), ("http_port", args.port)) if v is not None}
    asyncio.run(serve(load_settings(**overrides)))
    return 0


def _run_async(coro: Any) -> int:
    return int(asyncio.run(coro))


async def _run(args: argparse.Namespace) -> int:
    from bot.engine import open_engine
    from bot.live import LiveBoard, wants_live
    from bot.terminal import Terminal, terminal_actor

    settings = load_settings()
    async with open_engine(settings, platform_name=args.platform) as engine:
        term = Terminal(engine.runner, yes=args.yes, live=LiveBoard() if wants_live() else None)
        run = await engine.runner.start(args.instruction, terminal_actor())
        print(f"Run #{run.number} ({run.id}) on {engine.platform.name}; workspace {run.workspace}")
        code = await term.follow(run.id)
        final = await engine.runner.get(run.id)
        report = Path(final.workspace) / "final_report.md"
        if report.exists():
            print(f"Report: {report}")
        return code


async def _demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return await run_demo(load_settings(), yes=args.yes)


async def _resume(args: argparse.Namespace) -> int:
    from bot.engine import open_engine
    from bot.live import LiveBoard, wants_live
    from bot.terminal import Terminal
    from pipeline.store import runs

    settings = load_settings()
    async with open_engine(settings, platform_name=args.platform) as engine:
        if args.run:
            run = await engine.runner.get(args.run)
        else:
            pending = await runs.list_runs(engine.db, unfinished=True, limit=1)
            if not pending:
                raise Refused("no unfinished run to resume")
            run = pending[0]
        if run.phase.finished:
            raise Refused(f"run #{run.number} has already {run.phase.value}")
        term = Terminal(engine.runner, yes=args.yes, live=LiveBoard() if wants_live() else None)
        print(f"Resuming run #{run.number} ({run.id}) in phase {run.phase.value}")
        await engine.runner.resume_all()  # an open gate announces itself again: the prompt follows
        return await term.follow(run.id)


async def _teardown(args: argparse.Namespace) -> int:
    """Delete a run's deployment after a confirmation (or --yes); audited as the terminal user."""
    from bot.engine import open_engine
    from bot.terminal import terminal_actor
    from pipeline.run.teardown import target

    settings = load_settings()
    async with open_engine(settings, platform_name=args.platform) as engine:
        actor = terminal_actor()
        found = await target(engine.db, engine.runner.policy, args.run, actor, channel=None)
        dep = found.deployment.resource_id
        if not args.yes:
            prompt = f"Delete deployment {dep} of run #{found.run.number}? It stops billing; the model stays. [y/N] "
            if not sys.stdin.isatty():
                raise UsageError("a confirmation is needed but there is no terminal; add --yes")
            if (await asyncio.to_thread(input, prompt)).strip().lower() not in ("y", "yes"):
                print("Nothing was deleted.")
                return 0
        run, state = await engine.runner.teardown(args.run, actor)
        print(f"Deployment {dep} of run #{run.number}: {state} (recorded in the audit trail).")
        return 0


async def _runs(args: argparse.Namespace) -> int:
    from pipeline.store import runs
    from pipeline.store.db import Database

    settings = load_settings()
    db = await Database.open(settings.db_path)
    try:
        rows = await runs.list_runs(db, limit=args.limit)
    finally:
        await db.close()
    if args.json:
        _print_json([r.model_dump(mode="json", exclude={"spec"}) for r in rows])
        return 0
    for r in rows:
        est = f"${r.estimated_usd:,.2f}" if r.estimated_usd is not None else "-"
        act = f"${r.actual_usd:,.2f}" if r.actual_usd is not None else "-"
        print(
            f"#{r.number:<4} {r.id}  {r.requester_name or r.requester:<12} {r.phase.value:<24} est {est:<9} actual {act:<9} updated {time.strftime('%Y-%m-%d %H:%M', time.localtime(r.updated_at))}"
        )
    if not rows:
        print("no runs yet")
    return 0


async def _spend(args: argparse.Namespace) -> int:
    from pipeline.run.spending import parse_since, spend, text_lines
    from pipeline.store.db import Database

    settings = load_settings()
    try:
        window = parse_since(args.since)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    db = await Database.open(settings.db_path)
    try:
        s = await spend(db, since_seconds=window, margin=settings.spend_margin)
    finally:
        await db.close()
    if args.json:
        _print_json(s.model_dump(mode="json"))
    else:
        print("\n".join(text_lines(s, days=window / 86400)))
    return 0


async def _show(args: argparse.Namespace) -> int:
    from pipeline.run.answers import run_comparison
    from pipeline.store import runs
    from pipeline.store.db import Database

    settings = load_settings()
    db = await Database.open(settings.db_path)
    try:
        run = await runs.get_run(db, args.run)
        if run is None:
            raise Refused(f"no run {args.run}")
        cands = await runs.candidates(db, run.id)
        trail = await db.audit_trail(run.id)
        compared = await run_comparison(db, run)
    finally:
        await db.close()
    if args.json:
        _print_json(
            {
                "run": run.model_dump(mode="json"),
                "candidates": [c.model_dump(mode="json") for c in cands],
                "audit": [a.model_dump(mode="json") for a in trail],
                # Base vs the shipped model (or the sweep's leader before a promotion); null: not scored.
                "base_comparison": {"against": compared[0], **compared[1].model_dump(mode="json")} if compared else None,
            }
        )
        return 0
    from bot.console import comparison_lines
    from bot.terminal import scoreboard_lines

    print(f"Run #{run.number} ({run.id}) by {run.requester_name or run.requester}: {run.phase.value}")
    print(f"  {run.instruction}")
    if run.error:
        print(f"  error: {run.error}")
    print("\n".join(scoreboard_lines(cands)))
    if compared:
        print("\n".join(comparison_lines(compared[1], who=compared[0])))
    print("Audit:")
    for a in trail:
        print(
            f"  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(a.at))}  {a.actor_name or a.actor:<12} {a.action}"
            + (f" (plan v{a.plan_version})" if a.plan_version else "")
        )
    return 0


async def _endpoint(args: argparse.Namespace) -> int:
    from bot.local_commands import endpoint

    return await endpoint(load_settings(), args.run, port=args.port)


def cmd_endpoint(args: argparse.Namespace) -> int:
    """`sftbot endpoint RUN`; once it has stopped cleanly the process ends at once.

    By then the port is released and every generation cancelled; what is left is the
    interpreter's own teardown of torch and transformers, 2-3 s on a busy 2-core machine
    (measured: `python -c "import torch, transformers"` spends 1.9-2.8 s after its last
    line). A stop that was asked for should not wait on that, so stdio is flushed and the
    process exits without it."""
    code = _run_async(_endpoint(args))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def _export(args: argparse.Namespace) -> int:
    from bot.local_commands import export

    return await export(load_settings(), args.run, fmt=args.format, to=Path(args.to) if args.to else None)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sftbot", description="Supervised fine-tuning from Slack, end to end.")
    sub = p.add_subparsers(dest="command", required=True)
    ins = sub.add_parser("inspect", help="inspect a JSONL dataset: counts, tokens, problems by line")
    ins.add_argument("path", help="path to a .jsonl file (or sftbot:demo)")
    ins.add_argument("--json", action="store_true")
    ins.set_defaults(func=cmd_inspect)
    pl = sub.add_parser("plan", help="parse an instruction, inspect, plan and cost; starts nothing")
    pl.add_argument("instruction", help='what you would type after /sft run, e.g. "dataset=x.jsonl model=qwen3-8b"')
    pl.add_argument("--platform", choices=["fireworks", "local"])
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=cmd_plan)
    rn = sub.add_parser("run", help="run the whole workflow in the terminal, with the same gates as Slack")
    rn.add_argument("instruction")
    rn.add_argument("--yes", action="store_true", help="approve the plan and promote the best candidate automatically")
    rn.add_argument("--platform", choices=["fireworks", "local"])
    rn.set_defaults(func=lambda a: _run_async(_run(a)))
    dm = sub.add_parser("demo", help="the whole workflow on this machine with the bundled data and model")
    dm.add_argument("--yes", action="store_true", help="approve the plan and promote the best candidate automatically")
    dm.set_defaults(func=lambda a: _run_async(_demo(a)))
    rs = sub.add_parser("resume", help="continue an unfinished run after an interruption")
    rs.add_argument("run", nargs="?")
    rs.add_argument("--yes", action="store_true")
    rs.add_argument("--platform", choices=["fireworks", "local"])
    rs.set_defaults(func=lambda a: _run_async(_resume(a)))
    ls = sub.add_parser("runs", help="recent runs")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--limit", type=int, default=20)
    ls.set_defaults(func=lambda a: _run_async(_runs(a)))
    sp = sub.add_parser("spend", help="estimated vs actual spend per run, person and channel, and what still bills")
    sp.add_argument("--since", default="30d", help="a window such as 30d, 12h or 2w (default 30d)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=lambda a: _run_async(_spend(a)))
    sh = sub.add_parser("show", help="one run with its audit trail")
    sh.add_argument("run")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=lambda a: _run_async(_show(a)))
    td = sub.add_parser("teardown", help="delete a run's deployment (it stops billing; asks to confirm)")
    td.add_argument("run", help="run number or id")
    td.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    td.add_argument("--platform", choices=["fireworks", "local"])
    td.set_defaults(func=lambda a: _run_async(_teardown(a)))
    ep = sub.add_parser("endpoint", help="serve a local run's deployed model in the foreground (Ctrl-C stops it)")
    ep.add_argument("run", help="run number or id")
    ep.add_argument("--port", type=int, help="default: the port it was deployed on (the report's snippet names it)")
    ep.set_defaults(func=cmd_endpoint)
    ex = sub.add_parser("export", help="write a local run's model for other servers: adapter, merged, ollama or gguf")
    ex.add_argument("run", help="run number or id")
    ex.add_argument("--to", help="a new folder (default: ./sftbot-run-<N>-<format>)")
    ex.add_argument("--format", choices=["adapter", "merged", "ollama", "gguf"], default="merged")
    ex.set_defaults(func=lambda a: _run_async(_export(a)))
    sv = sub.add_parser("serve", help="run the Slack bot (Socket Mode by default, --mode http for HTTP)")
    sv.add_argument("--mode", choices=["socket", "http"], help="overrides SFTBOT_MODE")
    sv.add_argument("--port", type=int, help="HTTP mode port (overrides SFTBOT_HTTP_PORT)")
    sv.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # Everything the bot writes (database, staged data, evaluators, reports) is private to it.
    os.umask(0o077)
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its usage line
        return int(exc.code or 0) and 2
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"sftbot: {exc}", file=sys.stderr)
        return 2
    except (Refused, DecisionRefused, SpecError, MissingInput, SettingsError, PlatformError, LookupError) as exc:
        print(f"sftbot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sftbot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
