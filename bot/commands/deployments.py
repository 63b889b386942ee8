"""Commands for what a run deployed: `teardown`, `endpoint`, `export`."""

from __future__ import annotations

from argparse import Namespace

from bot.command import PLATFORM, RUN, arg, command


@command(
    "teardown",
    "delete a run's deployment: it stops billing (asks to confirm)",
    examples=["sftbot teardown 12", "sftbot teardown 12 --yes"],
    args=[RUN, arg("--yes", action="store_true", help="do not ask for confirmation"), PLATFORM],
    description="Audited as the terminal's user; the fine-tuned model stays and can be deployed again.",
)
async def teardown(args: Namespace) -> int:
    from bot import foreground
    from bot.engine import open_engine
    from bot.settings import load_settings
    from bot.terminal import terminal_actor
    from pipeline.run.teardown import target

    settings = load_settings()
    async with open_engine(settings, platform_name=args.platform) as engine:
        actor = terminal_actor()
        found = await target(engine.db, engine.runner.policy, args.run, actor, channel=None)
        dep = found.deployment.resource_id
        prompt = f"Delete deployment {dep} of run #{found.run.number}? It stops billing; the model stays. [y/N] "
        if not args.yes and not await foreground.confirm(prompt):
            print("Nothing was deleted.")
            return 0
        run, state = await engine.runner.teardown(args.run, actor)
        print(f"Deployment {dep} of run #{run.number}: {state} (recorded in the audit trail).")
        return 0


@command(
    "endpoint",
    "serve a local run's deployed model in the foreground (Ctrl-C stops it)",
    examples=["sftbot endpoint 12", "sftbot endpoint 12 --port 8800"],
    args=[RUN, arg("--port", type=int, help="default: the port it was deployed on (the report's snippet names it)")],
)
def endpoint(args: Namespace) -> int:
    """`sftbot endpoint RUN`; once it has stopped cleanly the process ends at once.

    By then the port is released and every generation cancelled; what is left is the
    interpreter's own teardown of torch and transformers, 2-3 s on a busy 2-core machine
    (measured: `python -c "import torch, transformers"` spends 1.9-2.8 s after its last
    line). A stop that was asked for should not wait on that, so stdio is flushed and the
    process exits without it."""
    import asyncio

    from bot.local_commands import endpoint as serve_endpoint
    from bot.settings import load_settings
    from bot.stopping import exit_now

    exit_now(asyncio.run(serve_endpoint(load_settings(), args.run, port=args.port)))
    return 0  # not reached


@command(
    "export",
    "write a local run's model for other servers: adapter, merged, ollama or gguf",
    examples=["sftbot export 12", "sftbot export 12 --format ollama --to ./my-model"],
    args=[
        RUN,
        arg("--to", help="a new folder (default: ./sftbot-run-<N>-<format>)"),
        arg("--format", choices=["adapter", "merged", "ollama", "gguf"], default="merged", help="default: merged"),
    ],
)
async def export(args: Namespace) -> int:
    from pathlib import Path

    from bot.local_commands import export as write_export
    from bot.settings import load_settings

    return await write_export(load_settings(), args.run, fmt=args.format, to=Path(args.to) if args.to else None)
