"""Pure parsing of what people type (``/sft`` subcommands, mentions, DMs) and of the revise modal."""

from __future__ import annotations

import pytest

from bot.testing.slack_app import input_values
from handlers.commands import CommandError, parse_message, parse_slash
from handlers.render.modals import parse_revision, revise_modal
from pipeline.domain.instructions import InstructionError
from pipeline.domain.spec import SpecError
from tests.handlers.render.samples import plan, run


@pytest.mark.parametrize(
    ("text", "kind", "extra"),
    [
        ("", "help", {}),
        ("help", "help", {}),
        ("models", "models", {}),
        ("runs", "runs", {"scope": "channel"}),  # the team's runs where it was asked
        ("runs mine", "runs", {"scope": "mine"}),
        ("runs all", "runs", {"scope": "all"}),
        ("status 12", "status", {"run": "12"}),
        ("status #12", "status", {"run": "12"}),
        ("cancel ab12cd34", "cancel", {"run": "ab12cd34"}),
        ("audit 3", "audit", {"run": "3"}),
        ("teardown 12", "teardown", {"run": "12"}),
    ],
)
def test_slash_subcommands(text: str, kind: str, extra: dict[str, str]) -> None:
    cmd = parse_slash(text)
    assert cmd.kind == kind
    for key, value in extra.items():
        assert getattr(cmd, key) == value


def test_slash_run_parses_the_instruction_before_anything_exists() -> None:
    cmd = parse_slash("run dataset=accounts/me/datasets/support-conv model=qwen3-8b lr=1e-4 rank=16 epochs=3")
    assert cmd.kind == "run" and cmd.spec is not None
    assert cmd.spec.dataset == "accounts/me/datasets/support-conv" and cmd.spec.epochs == 3


@pytest.mark.parametrize(
    ("text", "error", "fragment"),
    [
        ("run", CommandError, "say what to train"),
        ("run model=qwen3-8b", CommandError, "no dataset named"),
        ("run dataset=a.jsonl model=qwen3-8b rank=7", SpecError, "LoRA rank 7"),
        ("run dataset=a.jsonl model=qwen3-8b purple monkey", InstructionError, "purple monkey"),
        ("runs everything", CommandError, "`mine` or `all`"),
        ("status twelve", CommandError, "not a run number"),
        ("deploy 3", CommandError, "unknown subcommand"),
        ("run " + "x" * 5000, CommandError, "characters long"),
    ],
)
def test_slash_errors_name_the_problem(text: str, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as info:
        parse_slash(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "kind", "run_ref"),
    [
        ("<@UBOT> run SFT on accounts/x/datasets/support-conv with qwen3-8b", "run", None),
        ("<@UBOT> please fine-tune qwen3-8b on accounts/x/datasets/support-conv, 3 epochs", "run", None),
        ("<@UBOT> which base models do you support for SFT?", "models", None),
        ("what models are available?", "models", None),
        ("status of run 12", "status", "12"),
        ("<@UBOT> how is run #7 doing?", "status", "7"),
        ("cancel run 12", "cancel", "12"),
        ("please stop run #4", "cancel", "4"),
        ("audit of run 3", "audit", "3"),
        ("my runs", "runs", None),
        ("help", "help", None),
        ("<@UBOT>", "help", None),
    ],
)
def test_mention_and_dm_phrasings(text: str, kind: str, run_ref: str | None) -> None:
    cmd = parse_message(text)
    assert cmd.kind == kind and cmd.run == run_ref


def test_unknown_message_gets_examples() -> None:
    with pytest.raises(CommandError, match="status of run 12"):
        parse_message("what's the weather like")


def test_revision_applies_only_what_changed_and_reports_each_problem() -> None:
    r, p = run(), plan(2)
    view = revise_modal(r, p)
    spec, errors = parse_revision(r, p, input_values(view, epochs="2", final_run="off"))
    assert not errors and spec is not None
    assert spec.epochs == 2 and spec.final_run is False and spec.candidates is None  # grid untouched
    spec, errors = parse_revision(r, p, input_values(view, epochs="0", grid="16:0.5", parallel="x", hp_samples="1"))
    assert spec is None and set(errors) == {"epochs", "grid", "parallel", "hp_samples"}
    spec, errors = parse_revision(r, p, input_values(view))
    assert spec is None and "Nothing changed" in errors["other"]
    spec, errors = parse_revision(r, p, input_values(view, other="use 500 samples for HP tuning"))
    assert spec is not None and spec.hp_samples == 500


@pytest.mark.parametrize("text", ["tear down run 12", "<@U0BOT> teardown run #12", "please undeploy run 12"])
def test_teardown_in_plain_english(text: str) -> None:
    cmd = parse_message(text)
    assert (cmd.kind, cmd.run) == ("teardown", "12")


def test_teardown_needs_a_run_number() -> None:
    with pytest.raises(CommandError, match="/sft teardown 12"):
        parse_slash("teardown")
