"""What a person asked for: ``/sft`` subcommands and mention/DM phrasings (pure functions).

Parsing a run instruction happens here, before anything exists, so a typo is answered in
the command's own ephemeral reply and no run is ever half-created.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from handlers.render.start import CHANNEL, DATASET, FIELD_ACTION, MODEL, MORE
from pipeline.dataset.access import UPLOAD_PREFIX
from pipeline.domain.instructions import parse_instruction
from pipeline.domain.spec import RunSpec, SpecError
from pipeline.run.spending import parse_since

Kind = Literal["run", "models", "runs", "status", "cancel", "audit", "teardown", "spend", "help"]
SUBCOMMANDS: tuple[str, ...] = ("run", "models", "runs", "status", "cancel", "audit", "teardown", "spend", "help")
# Slack caps a slash command's text at a few thousand characters; anything near that is
# pasted by mistake, and quoting it back would flood the reply.
MAX_TEXT = 4000


class CommandError(ValueError):
    """The command is malformed; the message says what to type instead."""


@dataclass(frozen=True)
class Command:
    kind: Kind
    instruction: str = ""
    spec: RunSpec | None = None
    run: str | None = None  # "12", "#12" or a run id
    scope: Literal["channel", "mine", "all"] = "channel"  # by default the team's runs where it was asked
    window: str = "30d"  # /sft spend: how far back


_MENTION = re.compile(r"<[@!#][^<>]{0,200}>")  # bounded: an unclosed "<@" must not scan to the end each time
_RUN_REF = re.compile(r"^#?([0-9]{1,9}|[0-9a-f]{8})$", re.IGNORECASE)  # bounded: no run has a 20-digit number


def _run_ref(word: str | None, verb: str) -> str:
    if not word:
        raise CommandError(f"which run? e.g. `/sft {verb} 12`")
    if not _RUN_REF.match(word):
        raise CommandError(f"`{word[:40]}` is not a run number: use e.g. `/sft {verb} 12`")
    return word.lstrip("#")


# "on this", "on the attached file", "with my attached dataset": the file that came with the message.
_ATTACHED = re.compile(
    r"\b(?:on|using|with|from)\s+(?:this|the\s+attached|my\s+attached|the\s+attachment|my\s+attachment)"
    r"(?:\s+(?:file|dataset|data|jsonl))?\b",
    re.IGNORECASE,
)


def _run(instruction: str, attached: str | None = None) -> Command:
    instruction = instruction.strip()
    if attached is not None:
        instruction = _ATTACHED.sub(" ", instruction).strip()
    if not instruction:
        raise CommandError("say what to train, e.g. `/sft run dataset=accounts/me/datasets/support-conv model=qwen3-8b`")
    spec = parse_instruction(instruction)
    if attached is not None and (not spec.dataset or Path(spec.dataset).name == attached):
        # The file that came with the message is the dataset, once it is saved (listeners).
        spec = spec.model_copy(update={"dataset": UPLOAD_PREFIX + attached})
    if not spec.dataset:
        raise CommandError(
            "no dataset named: add `dataset=<Fireworks dataset id or path to a .jsonl file>`, "
            "e.g. `/sft run dataset=accounts/me/datasets/support-conv model=qwen3-8b`"
        )
    return Command(kind="run", instruction=instruction, spec=spec)


def too_long(n: int) -> str:
    return f"that is {n:,} characters long; I read instructions up to {MAX_TEXT:,} (key=value is the short way: `/sft help`)"


def _runs(rest: str) -> Command:
    scope = rest.lower() or "channel"
    if scope not in ("mine", "all", "channel"):
        raise CommandError(f"`/sft runs` takes `mine` or `all` (or nothing: this channel's runs), not `{rest[:40]}`")
    return Command(kind="runs", scope=scope)  # type: ignore[arg-type]


def _spend(rest: str) -> Command:
    window = rest.split()[0] if rest else "30d"
    try:
        parse_since(window)
    except ValueError:
        raise CommandError(f"`/sft spend` takes a window such as `7d`, `30d` or `12h`, not `{rest[:40]}`") from None
    return Command(kind="spend", window=window)


def _about_run(verb: str) -> Callable[[str], Command]:
    """``status`` / ``cancel`` / ``audit`` / ``teardown``: a verb whose argument names a run."""

    def parse(rest: str) -> Command:
        first = rest.split()[0] if rest else None
        return Command(kind=verb, run=_run_ref(first, verb))  # type: ignore[arg-type]

    return parse


# Each /sft verb (and its aliases) -> the parser of the rest of the command line.
_VERBS: dict[str, Callable[[str], Command]] = {
    "run": _run,
    **dict.fromkeys(("help", "?"), lambda _: Command(kind="help")),
    **dict.fromkeys(("models", "model"), lambda _: Command(kind="models")),
    **dict.fromkeys(("runs", "list", "ls"), _runs),
    **dict.fromkeys(("spend", "spending", "costs"), _spend),
    **{verb: _about_run(verb) for verb in ("status", "cancel", "audit", "teardown")},
}


def parse_slash(text: str) -> Command:
    """``/sft <subcommand> ...``; raises CommandError, InstructionError or SpecError."""
    if len(text) > MAX_TEXT:
        raise CommandError(too_long(len(text)))
    words = text.strip().split(None, 1)
    if not words:
        return Command(kind="help")
    verb = words[0].lower()
    parse = _VERBS.get(verb)
    if parse is None:
        raise CommandError(f"unknown subcommand `{verb[:40]}`: use one of {', '.join(SUBCOMMANDS)} (`/sft help`)")
    return parse(words[1].strip() if len(words) > 1 else "")


_MSG_HELP = re.compile(r"^(?:help|\?|usage|commands|what can you do)\b", re.I)
# Gaps between the words of a phrase are bounded (.{0,80}): an unbounded one made a message of
# "how is how is how is ..." quadratic, every start scanning to the end of the text.
_MSG_MODELS = re.compile(r"\b(?:which|what|list|supported|support|available)\b.{0,80}\b(?:base\s+)?models?\b|^models?\b", re.I)
_MSG_STATUS = re.compile(
    r"\b(?:status|progress|how\s+is|how's|where\s+is)\b.{0,80}?\brun\s*#?(\w+)|^status\s+(?:of\s+)?#?(\w+)", re.I
)
_MSG_CANCEL = re.compile(r"\b(?:cancel|stop|abort|kill)\b\s+(?:the\s+)?run\s*#?(\w+)", re.I)
_MSG_TEARDOWN = re.compile(r"\b(?:tear\s*down|teardown|undeploy)\b\s+(?:the\s+)?(?:deployment\s+of\s+)?(?:run\s*)?#?(\w+)", re.I)
_MSG_AUDIT = re.compile(r"\baudit(?:\s+trail)?\s+(?:of\s+|for\s+)?(?:run\s*)?#?(\w+)", re.I)
_MSG_RUNS = re.compile(r"^(?:list|show)?\s*(?:(my|all)\s+)?runs\b|\bwhat(?:'s|\s+is)\s+running\b", re.I)
_MSG_RUN = re.compile(r"\b(?:run|start|launch|kick\s+off|fine[\s-]*tune|train|sft)\b", re.I)


def strip_mentions(text: str) -> str:
    return _MENTION.sub(" ", text).strip(" \t\n,:")


def parse_message(text: str, attached: str | None = None) -> Command:
    """A mention or DM in plain English; raises CommandError when it is none of the known asks.

    ``attached``: the name of a ``.jsonl`` file sent with the message; a run that names no
    dataset (or names that file) trains on it, as ``upload:<name>`` until it is saved.
    """
    clean = strip_mentions(text)
    if not clean or _MSG_HELP.match(clean):
        return Command(kind="help")
    if m := _MSG_TEARDOWN.search(clean):
        return Command(kind="teardown", run=_run_ref(m.group(1), "teardown"))
    if m := _MSG_CANCEL.search(clean):
        return Command(kind="cancel", run=_run_ref(m.group(1), "cancel"))
    if m := _MSG_AUDIT.search(clean):
        return Command(kind="audit", run=_run_ref(m.group(1), "audit"))
    if m := _MSG_STATUS.search(clean):
        return Command(kind="status", run=_run_ref(m.group(1) or m.group(2), "status"))
    if m := _MSG_RUNS.search(clean):
        which = (m.group(1) or "").lower()
        return Command(kind="runs", scope="all" if which == "all" else "mine" if which == "my" else "channel")
    # "which base models do you support for SFT?" mentions SFT but asks a question.
    if _MSG_MODELS.search(clean) and "dataset" not in clean.lower() and ".jsonl" not in clean:
        return Command(kind="models")
    if _MSG_RUN.search(clean):
        return _run(clean, attached)
    raise CommandError(
        "I didn't catch that. Try “run SFT on accounts/me/datasets/support-conv with qwen3-8b”, "
        "“which base models do you support?”, “status of run 12”, “cancel run 12” or “help”."
    )


def _start_value(values: dict[str, Any], block: str) -> str:
    state = (values.get(block) or {}).get(FIELD_ACTION) or {}
    return str(state.get("value") or state.get("selected_conversation") or "").strip()


def parse_start(values: dict[str, Any]) -> tuple[str, str, RunSpec | None, dict[str, str]]:
    """(instruction, channel, spec, errors by block id) from the submitted form."""
    dataset, model, channel, more = (_start_value(values, b) for b in (DATASET, MODEL, CHANNEL, MORE))
    errors: dict[str, str] = {}
    if not dataset or any(c.isspace() for c in dataset):
        errors[DATASET] = "Name one dataset: a Fireworks dataset id, sftbot:demo or a file name (no spaces)."
    if not model or any(c.isspace() for c in model):
        errors[MODEL] = "Name one base model, e.g. qwen3-8b."
    if not channel:
        errors[CHANNEL] = "Choose the channel where the team follows and approves the run."
    instruction = f"dataset={dataset} model={model} {more}".strip()
    if errors:
        return instruction, channel, None, errors
    try:
        cmd = parse_slash(f"run {instruction}")
    except (CommandError, SpecError) as exc:
        return instruction, channel, None, {MORE if more else DATASET: str(exc)[:150]}
    return cmd.instruction, channel, cmd.spec, {}
