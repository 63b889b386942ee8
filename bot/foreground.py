"""A run followed in the foreground (`sftbot run`, `resume`, `demo`) until it ends, needs a
person the terminal cannot stand in for, or the command is stopped.

A stop (Ctrl-C, SIGTERM) leaves the run resumable where it stands: the runner's work in this
process ends, this machine's trainers are stopped (the resume starts those jobs again), and
the command says how to continue and what still runs elsewhere.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from bot.errors import Refused, UsageError
from bot.stopping import Stop

if TYPE_CHECKING:
    from bot.engine import Engine
    from bot.settings import Settings
    from bot.terminal import Terminal
    from pipeline.domain.records import Actor, RunRecord


def quiet_progress_bars() -> None:
    """No progress bars from the ML libraries where nobody watches a terminal: in a pipe or
    CI they print carriage returns and redraws into logs. Set in the environment, so the
    trainer and probe processes inherit it (tqdm reads TQDM_DISABLE; Hugging Face its own)."""
    from bot.live import wants_live

    if not wants_live():
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def terminal(engine: Engine, *, yes: bool, quiet: bool = False) -> Terminal:
    """The terminal surface for this output: a live table in a TTY, plain lines elsewhere."""
    from bot.live import LiveBoard, wants_live
    from bot.terminal import Terminal

    live = LiveBoard() if wants_live() and not quiet else None
    return Terminal(engine.runner, yes=yes, live=live, quiet=quiet)


async def follow(engine: Engine, term: Terminal, run: RunRecord, stop: Stop) -> int:
    """Follow ``run`` until it ends (its exit code) or the command is stopped (130 / 143)."""
    stop.on_force(engine.kill_local_jobs)
    code = await stop.until(term.follow(run.id))
    if code is not None:
        return code
    if term.live is not None:
        term.live.stop()
    elsewhere = await engine.stop_runs([run.id])
    say(f"Run #{run.number} stopped; `sftbot resume {run.number}` continues it.")
    if elsewhere:
        say(
            f"  {len(elsewhere)} job(s) of it keep running on {engine.platform.facts.name} (and billing) meanwhile; "
            f"`sftbot cancel {run.number}` stops them."
        )
    return stop.code


async def remember_yes(engine: Engine, run: RunRecord, actor: Actor, *, on: bool) -> None:
    """Record whether the terminal decides this run's gates by itself (--yes), so that
    `sftbot resume` goes on the same way unless told otherwise (--yes / --ask)."""
    details = {"on": on, "by": "--yes" if on else "--ask"}
    await engine.db.audit(run_id=run.id, actor=actor.id, actor_name=actor.name, action="auto_decide", details=details)


async def remembered_yes(engine: Engine, run: RunRecord) -> bool:
    """Whether the run was started (or last resumed) with --yes."""
    choices = [a for a in await engine.db.audit_trail(run.id) if a.action == "auto_decide"]
    return bool(choices and choices[-1].details.get("on"))


async def find_run(settings: Settings, key: str | None) -> RunRecord:
    """The run named ``key`` (number or id), or the latest unfinished one; read before the engine
    opens, so the engine drives the platform the run was made on."""
    from pipeline.store import runs
    from pipeline.store.db import Database

    if not settings.db_path.exists():
        raise Refused(f"no runs yet: there is no sftbot database in {settings.data_dir} (SFTBOT_DATA_DIR)")
    db = await Database.open(settings.db_path)
    try:
        if key is None:
            unfinished = await runs.list_runs(db, unfinished=True, limit=1)
            if not unfinished:
                raise Refused("no unfinished run to resume")
            return unfinished[0]
        found = await runs.get_run(db, key)
    finally:
        await db.close()
    if found is None:
        raise Refused(f"no run {key}: `sftbot runs` lists them")
    return found


async def confirm(prompt: str) -> bool:
    """A yes/no question at the terminal; refused (exit 2) where there is none to ask on."""
    import asyncio

    if not sys.stdin.isatty():
        raise UsageError("a confirmation is needed but there is no terminal; add --yes")
    return (await asyncio.to_thread(input, prompt)).strip().lower() in ("y", "yes")


def say(line: str) -> None:
    print(line, flush=True)  # a supervisor (or a test) reading the pipe sees each line at once


def fail(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
