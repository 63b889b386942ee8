"""The `sftbot` command line. Errors are one line on stderr, never a traceback.

The commands live in ``bot/commands/`` (one function each, registered with ``@command``);
this module builds the parser from them, runs the chosen one and turns its refusals into
exit codes (``bot/errors.py`` lists them). Only the standard library is imported before a
command runs, so `sftbot --help` and `sftbot inspect` start in a blink.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bot.command import COMMANDS, Command
from bot.commands import data, deployments, doctor, records, runs, serve  # noqa: F401  (each registers its commands)
from bot.errors import EXIT_FAILED, EXIT_SIGINT, EXIT_USAGE, Refused, UsageError

# Refusals that end a command with one line and exit 1, by (module, class). They are looked up
# in sys.modules when one is caught rather than imported here: importing them would load the
# whole pipeline before `sftbot --help` prints, and an exception of a module that was never
# imported cannot have been raised.
ONE_LINE = (
    ("bot.settings", "SettingsError"),
    ("pipeline.run.decisions", "Refusal"),
    ("pipeline.domain.spec", "SpecError"),
    ("pipeline.planning.plan", "MissingInput"),
    ("pipeline.domain.platform", "PlatformError"),
)

EPILOG = """examples:
  sftbot inspect data.jsonl                        what is in the file, problems by line
  sftbot plan "dataset=data.jsonl model=qwen3-8b"  the plan and its cost; starts nothing
  sftbot run "dataset=data.jsonl model=qwen3-8b"   the whole workflow here, with its gates
  sftbot demo                                      all of it on this machine, bundled data and model
  sftbot serve                                     the Slack bot

`sftbot COMMAND --help` shows a command's options and examples.
exit codes: 0 done; 1 refused or failed; 2 usage; 3 cancelled; 4 waits for a person;
124 wait timed out; 130 stopped by Ctrl-C, 143 by SIGTERM (a run is left resumable)."""


class _Version(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from bot import __version__

        print(f"sftbot {__version__}")
        parser.exit()


# The order `sftbot --help` lists them in: a run's life from the data to its deployment.
ORDER = (
    "inspect", "plan", "models", "run", "resume", "demo", "wait", "cancel", "runs", "show", "logs", "spend",
    "serve", "doctor", "teardown", "endpoint", "export",
)  # fmt: skip


def _add(sub: argparse._SubParsersAction[argparse.ArgumentParser], cmd: Command) -> None:
    import textwrap

    examples = "\n".join(f"  {line}" for line in cmd.examples)
    about = textwrap.fill(cmd.description, 88) + "\n\n" if cmd.description else ""
    epilog = f"{about}examples:\n{examples}"
    p = sub.add_parser(
        cmd.name, help=cmd.help, description=cmd.help[0].upper() + cmd.help[1:] + ".", epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    for a in cmd.args:
        p.add_argument(*a.flags, **a.options)
    p.set_defaults(command=cmd)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sftbot",
        description="Supervised fine-tuning end to end: inspect, plan, sweep, promote, retrain, evaluate, deploy, report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    sub = p.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in sorted(COMMANDS, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        _add(sub, COMMANDS[name])
    return p


def _one_line(exc: BaseException) -> bool:
    if isinstance(exc, (Refused, LookupError)):
        return True
    for module, name in ONE_LINE:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return True
    return False


def _run(cmd: Command, args: argparse.Namespace) -> int:
    result = cmd.run(args)
    if isinstance(result, int):
        return result
    import asyncio

    from bot import logging_setup
    from bot.stopping import exit_now, stopped_by_signal

    if cmd.name != "serve":
        logging_setup.configure(serving=False)
    code = int(asyncio.run(result))  # type: ignore[arg-type]
    if stopped_by_signal() is not None:
        exit_now(code)  # its clean-up is done; threads in uninterruptible work must not hold the exit
    return code


def main(argv: Sequence[str] | None = None) -> int:
    # Everything the bot writes (database, staged data, evaluators, reports) is private to it.
    os.umask(0o077)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the help, the version or its usage line
        return int(exc.code or 0) and EXIT_USAGE
    try:
        return _run(args.command, args)
    except UsageError as exc:
        print(f"sftbot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sftbot: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except Exception as exc:
        if not _one_line(exc):
            raise
        print(f"sftbot: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
