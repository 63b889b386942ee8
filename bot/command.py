"""The registry of `sftbot` commands: each command is one function with its help, its examples
and its arguments, registered by ``@command``; ``bot/cli.py`` builds the parser from it.

    @command("cancel", "cancel a run: its jobs are stopped", examples=["sftbot cancel 12"], args=[RUN, YES])
    async def cancel(args: Namespace) -> int:
        ...

A command returns its exit code; it may be ``async`` (``bot/cli.py`` runs it in an event
loop). Modules that hold commands import only the standard library at the top and their
heavy dependencies inside the functions: `sftbot --help` and `sftbot inspect` must start in a
blink (issue #23), and building the parser imports every command module.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

Run = Callable[[Namespace], "int | Awaitable[int]"]


# NamedTuples rather than dataclasses: `dataclasses` imports `inspect`, a tenth of the time
# `sftbot --help` may take.
class Arg(NamedTuple):
    """One ``add_argument`` call: its flags (or name) and its options."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


class Command(NamedTuple):
    name: str
    help: str  # one line, shown in `sftbot --help`
    examples: tuple[str, ...]  # shown under the command's own --help
    args: tuple[Arg, ...]
    run: Run
    description: str = ""  # more than the one line, when there is more to say


COMMANDS: dict[str, Command] = {}


def print_json(obj: object) -> None:
    """What every ``--json`` prints: one indented JSON document on stdout."""
    import json

    print(json.dumps(obj, indent=2, default=str))


def command(
    name: str, help: str, *, examples: Sequence[str], args: Sequence[Arg] = (), description: str = ""
) -> Callable[[Run], Run]:
    """Register the decorated function as `sftbot <name>`."""

    def register(run: Run) -> Run:
        COMMANDS[name] = Command(name, help, tuple(examples), tuple(args), run, description)
        return run

    return register


# Arguments several commands share, with one help text each.
RUN = arg("run", help="the run's number or id, as `sftbot runs` lists them")
JSON = arg("--json", action="store_true", help="print JSON (the same content, for scripts) instead of text")
YES = arg("--yes", action="store_true", help="approve the plan and promote the best candidate without asking")
QUIET = arg("--quiet", "-q", action="store_true", help="print only what needs you and how it ended (no progress lines)")
PLATFORM = arg(
    "--platform",
    choices=["fireworks", "local"],
    help="where to train: fireworks (needs FIREWORKS_API_KEY and FIREWORKS_ACCOUNT_ID) or local (this machine); "
    "default SFTBOT_PLATFORM, else fireworks when FIREWORKS_API_KEY is set, else local",
)
INSTRUCTION = arg(
    "instruction",
    help="what you would type after /sft run: key=value words in one quoted argument, e.g. "
    '"dataset=data.jsonl model=qwen3-8b epochs=2" (dataset= a .jsonl file, sftbot:demo or a platform dataset id; '
    "model= one or more base models; also lr=, rank=, epochs=, eval=, final=, deploy=)",
)
