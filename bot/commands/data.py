"""`sftbot inspect`, `sftbot plan` and `sftbot models`: what can be known before anything runs."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from bot.command import INSTRUCTION, JSON, PLATFORM, arg, command, print_json
from bot.errors import Refused, UsageError

if TYPE_CHECKING:
    from bot.settings import Settings
    from pipeline.dataset.inspection import InspectionReport
    from pipeline.domain.spec import RunSpec
    from pipeline.planning.plan_types import Plan


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


def build_plan(instruction: str, *, platform: str, settings: Settings | None = None) -> Plan:
    """Parse, inspect a local dataset and plan; starts nothing and spends nothing."""
    import asyncio

    from bot.settings import load_settings
    from pipeline.dataset.demo_data import resolve_dataset_ref
    from pipeline.dataset.inspector import inspect_dataset
    from pipeline.domain.instructions import parse_instruction
    from pipeline.planning.plan import make_plan

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
    from pipeline.domain.catalog import find_model
    from pipeline.planning.plan import make_plan

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


@command(
    "plan",
    "parse an instruction, inspect the data, plan and cost the run; starts nothing",
    examples=[
        'sftbot plan "dataset=data.jsonl model=qwen3-8b"',
        'sftbot plan "dataset=sftbot:demo model=smollm2-135m" --platform local --json',
    ],
    args=[INSTRUCTION, PLATFORM, JSON],
)
def plan(args: Namespace) -> int:
    from bot.console import plan_json, plan_text
    from bot.settings import load_settings

    settings = load_settings()
    planned = build_plan(args.instruction, platform=args.platform or settings.resolved_platform, settings=settings)
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
        found = await platform.list_models()
        source = platform.name
    except PlatformError as exc:  # the bundled catalogue, as /sft models falls back to it
        found, source = list(known_models()), f"the bundled catalogue ({platform.name} did not answer: {exc})"
    finally:
        await platform.close()
    if args.json:
        print_json({"platform": platform.name, "source": source, "models": [m.model_dump(mode="json") for m in found]})
        return 0
    print(
        f"Base models you can fine-tune on {platform.name} ({len(found)}){'' if source == platform.name else ', from ' + source}:"
    )
    for m in found:
        size = f"{m.params_b:g}B" if m.params_b else "size unknown"
        ctx = f", context {m.max_context:,}" if m.max_context else ""
        print(f"  {m.id:<40} {size}{ctx}")
    if not found:
        print("  none found")
    return 0
