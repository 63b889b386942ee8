"""`sftbot inspect`, `sftbot plan` and `sftbot models`: what can be known before anything runs."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from bot.command import INSTRUCTION, JSON, PLATFORM, arg, command, print_json
from bot.errors import Refused, UsageError

if TYPE_CHECKING:
    from bot.settings import Settings
    from pipeline.planning.plan_types import Plan
    from pipeline.planning.planner import Needs


@command(
    "inspect",
    "inspect a JSONL dataset: counts, tokens, conversions offered, problems by line",
    examples=["sftbot inspect data.jsonl", "sftbot inspect sftbot:demo --json"],
    args=[
        arg("path", help="a .jsonl file (chat, ShareGPT, Alpaca, question/answer or prompt/completion rows), or sftbot:demo"),
        JSON,
    ],
    description="Exit code 0: it can be trained on (with the conversions offered); 1: it cannot, as it is.",
)
def inspect(args: Namespace) -> int:
    from bot.console import inspection_text
    from pipeline.dataset.demo_data import resolve_dataset_ref
    from pipeline.dataset.inspection import to_dict
    from pipeline.dataset.inspector import inspect_dataset

    path = Path(resolve_dataset_ref(args.path))
    if not path.is_file():
        raise UsageError(f"no such file: {args.path}")
    report = inspect_dataset(path)
    if args.json:
        print_json({**to_dict(report), "trainable": report.trainable, "blocking": report.blocking})
    else:
        print(inspection_text(report))
    return 0 if report.trainable else 1


async def build_plan(instruction: str, *, platform: str | None, settings: Settings) -> Plan:
    """The one planner's plan for ``instruction``: the run's read-only lookups on the platform
    (a platform dataset is staged to a scratch folder to inspect it); starts nothing, spends nothing."""
    import tempfile

    from bot.engine import planning
    from pipeline.domain.instructions import parse_instruction
    from pipeline.planning.planner import Needs, Unusable
    from pipeline.planning.preflight import preflight

    spec = parse_instruction(instruction)
    async with planning(settings, platform) as planner:
        if planner.platform is not None:  # the same preflight a run gets (without an account: nothing to ask)
            await preflight(planner.platform, spec, settings.local_files(slack=False))
        with tempfile.TemporaryDirectory(prefix="sftbot-plan-") as scratch:
            try:
                made = await planner.propose(spec, Path(scratch))
            except Unusable as exc:
                raise Refused(exc.line()) from None
    if isinstance(made, Needs):
        raise Refused(needs_sentence(made))
    return made


def needs_sentence(needs: Needs) -> str:
    """What a plan still needs, said for the command line (the fix goes in the instruction)."""
    from pipeline.domain.gates import QuestionKind

    if needs.kind is QuestionKind.DATASET:
        return "no dataset named: add dataset=<id or path to a .jsonl file>"
    text = needs.detail or needs.text
    if needs.kind is QuestionKind.BASE_MODEL:
        known = f" (one of: {', '.join(needs.choices[:8])})" if needs.choices else ""
        return f"{text.rstrip('?')}: add model=<id>{known}"
    if needs.kind is QuestionKind.EVALUATION:
        return f"{text.rstrip('?')}: add eval=loss, eval=generate or eval=evaluator:<file>"
    return text


@command(
    "plan",
    "parse an instruction, inspect the data, plan and cost the run; starts nothing",
    examples=[
        'sftbot plan "dataset=data.jsonl model=qwen3-8b"',
        'sftbot plan "dataset=accounts/acme/datasets/support model=qwen3-8b" --json',
        'sftbot plan "dataset=sftbot:demo model=smollm2-135m" --platform local --json',
    ],
    args=[INSTRUCTION, PLATFORM, JSON],
    description="With a Fireworks account it makes the lookups a run makes (a platform dataset is staged to inspect it, "
    "the deployment shape is matched), so its total is the one the run's plan shows.",
)
async def plan(args: Namespace) -> int:
    from bot.console import plan_json, plan_text
    from bot.settings import load_settings

    planned = await build_plan(args.instruction, platform=args.platform, settings=load_settings())
    if args.json:
        print_json(plan_json(planned))
    else:
        print(plan_text(planned))
    return 0


@command(
    "models",
    "the base models you can fine-tune on the platform (as /sft models shows them)",
    examples=["sftbot models", "sftbot models --platform local --json"],
    args=[PLATFORM, JSON],
)
async def models(args: Namespace) -> int:
    from bot.engine import make_platform
    from bot.settings import load_settings
    from pipeline.domain.catalog import known_models
    from pipeline.domain.platform import PlatformError

    platform = make_platform(load_settings(), args.platform)
    try:
        found = await platform.models.list_models()
        source = name = platform.facts.name
    except PlatformError as exc:  # the bundled catalogue, as /sft models falls back to it
        name = platform.facts.name
        found, source = list(known_models()), f"the bundled catalogue ({name} did not answer: {exc})"
    finally:
        await platform.close()
    if args.json:
        print_json({"platform": name, "source": source, "models": [m.model_dump(mode="json") for m in found]})
        return 0
    print(f"Base models you can fine-tune on {name} ({len(found)}){'' if source == name else ', from ' + source}:")
    for m in found:
        size = f"{m.params_b:g}B" if m.params_b else "size unknown"
        ctx = f", context {m.max_context:,}" if m.max_context else ""
        print(f"  {m.id:<40} {size}{ctx}")
    if not found:
        print("  none found")
    return 0
