"""`sftbot serve`: the Slack bot."""

from __future__ import annotations

from argparse import Namespace

from bot.command import QUIET, arg, command


@command(
    "serve",
    "run the Slack bot (Socket Mode by default, --mode http for HTTP)",
    examples=["sftbot serve", "sftbot serve --mode http --port 3000"],
    args=[
        arg("--mode", choices=["socket", "http"], help="overrides SFTBOT_MODE (default socket)"),
        arg("--port", type=int, help="HTTP mode's port (overrides SFTBOT_HTTP_PORT, default 3000)"),
        QUIET,
    ],
    description="It logs one line for each thing it checks at start (settings, Slack tokens, database, platform, "
    "listener, local deployments). A Slack token that Slack refuses, or two swapped, end it with one line naming "
    "the token (exit 1). Ctrl-C or SIGTERM stops it (exit 130 / 143): this machine's trainers stop with it and its "
    "runs continue when it starts again.",
)
async def serve(args: Namespace) -> int:
    from bot import logging_setup
    from bot.app import serve as serve_slack
    from bot.settings import load_settings
    from bot.stopping import Stop

    logging_setup.configure(serving=True, quiet=args.quiet)
    overrides = {k: v for k, v in (("mode", args.mode), ("http_port", args.port)) if v is not None}
    settings = load_settings(**overrides)
    async with Stop() as stop:
        await serve_slack(settings, stop=stop.event)
    return stop.code
