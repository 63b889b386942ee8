"""Commands that start, continue, wait for and cancel runs."""

from __future__ import annotations

import sys
from argparse import Namespace
from typing import TYPE_CHECKING

from bot.command import INSTRUCTION, PLATFORM, QUIET, RUN, YES, arg, command
from bot.errors import EXIT_CANCELLED, EXIT_FAILED, EXIT_NEEDS_PERSON, EXIT_OK, EXIT_TIMEOUT, Refused, UsageError

if TYPE_CHECKING:
    from pipeline.domain.records import RunRecord
    from pipeline.run.decisions import Decision
    from pipeline.store.db import Database

ENDS = "Exit code 0: it succeeded; 1: it failed; 3: cancelled; 4: it waits for a person this terminal cannot stand in for."
STOPS = "Ctrl-C or SIGTERM stops it and leaves the run resumable (exit 130 / 143); a second Ctrl-C forces."


@command(
    "run",
    "run the whole workflow here, with the same gates as Slack",
    examples=['sftbot run "dataset=data.jsonl model=qwen3-8b"', 'sftbot run "dataset=sftbot:demo model=smollm2-135m" --yes'],
    args=[INSTRUCTION, YES, PLATFORM, QUIET],
    description=f"{ENDS} {STOPS}",
)
async def run(args: Namespace) -> int:
    from pathlib import Path

    from bot import foreground
    from bot.engine import open_engine
    from bot.local_commands import quiet_ml_libraries
    from bot.settings import load_settings
    from bot.stopping import Stop
    from bot.terminal import terminal_actor

    settings = load_settings()
    foreground.quiet_progress_bars()
    quiet_ml_libraries()
    async with Stop() as stop, open_engine(settings, platform_name=args.platform) as engine:
        term = foreground.terminal(engine, yes=args.yes, quiet=args.quiet)
        actor = terminal_actor()
        started = await engine.runner.start(args.instruction, actor)
        if args.yes:
            await foreground.remember_yes(engine, started, actor, on=True)
        foreground.say(f"Run #{started.number} ({started.id}) on {engine.platform.facts.name}; workspace {started.workspace}")
        code = await foreground.follow(engine, term, started, stop)
        report = Path(started.workspace) / "final_report.md"
        if report.exists() and not stop.requested:
            foreground.say(f"Report: {report}")
        return code


@command(
    "resume",
    "continue an unfinished run (after Ctrl-C, a crash or a restart)",
    examples=["sftbot resume", "sftbot resume 12", "sftbot resume 12 --ask"],
    args=[
        arg("run", nargs="?", help="the run's number or id (default: the latest unfinished run)"),
        arg("--yes", action="store_true", help="approve and promote without asking from now on"),
        arg("--ask", action="store_true", help="ask at each gate even though the run was started with --yes"),
        PLATFORM,
        QUIET,
    ],
    description=f"A run started with --yes goes on deciding its gates by itself (say --ask to decide them here). {ENDS} {STOPS}",
)
async def resume(args: Namespace) -> int:
    from bot import foreground
    from bot.engine import open_engine
    from bot.local_commands import quiet_ml_libraries
    from bot.settings import load_settings
    from bot.stopping import Stop
    from bot.terminal import terminal_actor

    if args.yes and args.ask:
        raise UsageError("--yes and --ask contradict each other: choose one")
    settings = load_settings()
    found = await foreground.find_run(settings, args.run)
    if found.phase.finished:
        raise Refused(f"run #{found.number} has already {found.phase.value}")
    foreground.quiet_progress_bars()
    quiet_ml_libraries()
    async with Stop() as stop, open_engine(settings, platform_name=args.platform or found.platform) as engine:
        remembered = await foreground.remembered_yes(engine, found)
        yes = args.yes or (remembered and not args.ask)
        if yes != remembered:  # --yes on a run started without it, or --ask on one started with it
            await foreground.remember_yes(engine, found, terminal_actor(), on=yes)
        term = foreground.terminal(engine, yes=yes, quiet=args.quiet)
        kept = " with --yes, as it was started" if yes and not args.yes else ""
        foreground.say(f"Resuming run #{found.number} ({found.id}) in phase {found.phase.value}{kept}")
        await engine.runner.resume_all()  # an open gate announces itself again: the prompt follows
        return await foreground.follow(engine, term, found, stop)


@command(
    "demo",
    "the whole workflow on this machine with the bundled data and model (a few minutes on a CPU)",
    examples=["sftbot demo", "sftbot demo --yes"],
    args=[YES, QUIET],
    description=STOPS,
)
async def demo(args: Namespace) -> int:
    from bot.demo import run_demo
    from bot.settings import load_settings

    return await run_demo(load_settings(), yes=args.yes, quiet=args.quiet)


@command(
    "cancel",
    "cancel a run: its jobs are stopped, as the Slack Cancel button does",
    examples=["sftbot cancel 12", "sftbot cancel 12 --yes"],
    args=[RUN, arg("--yes", action="store_true", help="do not ask for confirmation")],
    description="Decided and audited like a click in Slack, with you (the terminal's user) as the person.",
)
async def cancel(args: Namespace) -> int:
    from bot import foreground
    from bot.engine import open_engine
    from bot.settings import load_settings
    from bot.terminal import terminal_actor
    from pipeline.run.decisions import Cancel

    settings = load_settings()
    found = await foreground.find_run(settings, args.run)
    if found.phase.finished:
        raise Refused(f"run #{found.number} has already {found.phase.value}; nothing to cancel")
    async with open_engine(settings, platform_name=found.platform) as engine:
        prompt = f"Cancel run #{found.number} ({found.phase.value})? Its active jobs are stopped. [y/N] "
        if not args.yes and not await foreground.confirm(prompt):
            print("Nothing was cancelled.")
            return EXIT_OK
        done = await engine.runner.decide(found.id, Cancel(), terminal_actor())
        await engine.runner.wait(done.id)  # the jobs' cancels are sent before this command exits
        print(f"Run #{done.number} cancelled (recorded in the audit trail).")
        return EXIT_OK


DECISIONS = ("approve", "raise", "skip", "deploy-anyway", "promote")


def gate_decision(what: str, value: str | None) -> Decision:
    """The decision a person typed: `raise 12.50`, `skip`, `deploy-anyway`, `promote 3`, `approve`.
    The same decisions a Slack click makes (``pipeline/run/decisions.py``); bad input is refused
    with the form that works."""
    from pipeline.domain.slots import Slot
    from pipeline.run.decisions import Answer, Approve, Promote, RaiseBudget, SkipStep

    needs = {"raise": "an amount, e.g. `raise 12.50`", "promote": "a candidate number, e.g. `promote 3`"}
    if (value is None) == (what in needs):
        raise UsageError(f"{what} takes {needs[what]}" if what in needs else f"{what} takes nothing after it")
    if what == "raise":
        try:
            return RaiseBudget(amount_usd=float(str(value).lstrip("$").replace(",", "")))
        except ValueError:
            raise UsageError(f"raise {value!r}: give the amount the budget gate asks for, e.g. `raise 12.50`") from None
    if what == "promote":
        try:
            return Promote(Slot.parse(str(value)))
        except ValueError:
            raise UsageError(f"promote {value!r}: give a candidate's number, e.g. `promote 3`") from None
    if what == "deploy-anyway":
        return Answer("deploy anyway")
    return SkipStep() if what == "skip" else Approve()


@command(
    "decide",
    "decide a run's open gate from the terminal and continue the run here",
    examples=[
        "sftbot decide 12 raise 12.50",
        "sftbot decide 12 skip",
        "sftbot decide 12 deploy-anyway",
        "sftbot decide 12 promote 3",
    ],
    args=[
        RUN,
        arg("what", choices=DECISIONS, help="approve (the plan), raise AMOUNT / skip (a budget gate), deploy-anyway, promote N"),
        arg("value", nargs="?", help="raise: the amount the gate asks for; promote: the candidate's number"),
        QUIET,
    ],
    description="Decided and audited like a click in Slack, with you (the terminal's user) as the person; then the run "
    f"goes on here, as `sftbot resume` does. {ENDS} {STOPS}",
)
async def decide(args: Namespace) -> int:
    from bot import foreground
    from bot.engine import open_engine
    from bot.settings import load_settings
    from bot.stopping import Stop
    from bot.terminal import terminal_actor
    from pipeline.run.decisions import Refusal

    decision = gate_decision(args.what, args.value)
    settings = load_settings()
    found = await foreground.find_run(settings, args.run)
    if found.phase.finished:
        raise Refused(f"run #{found.number} has already {found.phase.value}; nothing to decide")
    async with Stop() as stop, open_engine(settings, platform_name=found.platform) as engine:
        # Subscribed before the decision, so the events it sets off reach this terminal.
        term = foreground.terminal(engine, yes=await foreground.remembered_yes(engine, found), quiet=args.quiet)
        try:  # the decision moves the run on: its next step starts in this process
            done = await engine.runner.decide(found.id, decision, terminal_actor())
        except Refusal as exc:
            raise Refused(exc.sentence()) from None
        foreground.say(f"Run #{done.number}: {args.what} {args.value or ''}".rstrip() + " (recorded in the audit trail).")
        return await foreground.follow(engine, term, done, stop)


WAIT_CODES = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}


@command(
    "wait",
    "wait until a run needs a person or ends",
    examples=["sftbot wait 12", "sftbot wait 12 --timeout 3600 && echo shipped"],
    args=[RUN, arg("--timeout", type=float, help="give up after this many seconds (exit 124)"), QUIET],
    description="Exit code 0: it succeeded; 1: it failed; 3: cancelled; 4: it waits at a gate for a person "
    "(a plan, a promotion, a question or a budget); 124: --timeout passed. It only watches: the run goes on in "
    "`sftbot serve` or a `sftbot run` elsewhere.",
)
async def wait(args: Namespace) -> int:
    import asyncio

    from bot import foreground
    from bot.settings import load_settings
    from bot.stopping import Stop
    from pipeline.store.db import Database

    settings = load_settings()
    await foreground.find_run(settings, args.run)  # an unknown run is refused at once, not waited for
    db = await Database.open(settings.db_path)
    try:
        async with Stop() as stop:
            settled = await stop.until(asyncio.wait_for(until_settled(db, args.run), args.timeout))
    except TimeoutError:
        print(f"sftbot: run {args.run} still going after {args.timeout:g} s", file=sys.stderr)
        return EXIT_TIMEOUT
    finally:
        await db.close()
    if settled is None:
        return stop.code
    if not args.quiet:
        print(f"Run #{settled.number}: {settled.phase.value}" + (f" ({settled.error})" if settled.error else ""))
    return WAIT_CODES.get(settled.phase.value, EXIT_NEEDS_PERSON)


async def until_settled(db: Database, key: str, *, every: float = 1.0) -> RunRecord:
    """The run once it has ended or waits at a gate. The run is driven by another process
    (`sftbot serve`, a `sftbot run`), whose events do not reach this one: its database row is
    read every ``every`` seconds, one small query."""
    import asyncio

    from pipeline.store import runs

    while True:
        found = await runs.get_run(db, key)
        if found is None:
            raise Refused(f"run {key} no longer exists")
        if found.phase.finished or found.phase.gate:
            return found
        await asyncio.sleep(every)
