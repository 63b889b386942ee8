"""The Slack app factory and server: Socket Mode by default, HTTP (POST /slack/events) for production.

``create_app`` wires one Web API client, the listeners and the notifier onto an engine;
``serve`` opens the engine, resumes every unfinished run, and serves until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot.engine import Engine, open_engine
from bot.settings import Settings
from handlers.actors import Directory
from handlers.asking import Asker
from handlers.listeners import register
from handlers.messages import RunMessages
from handlers.notifier import Notifier
from handlers.slack_client import ChannelLimiter, make_client
from handlers.surface import Surface
from pipeline.domain.records import RunRecord
from pipeline.evaluation.sandbox.batch import sandbox_problem
from pipeline.evaluation.sandbox.rlimits import budget_problem
from pipeline.platforms.local.platform import LocalPlatform
from pipeline.run.idle import flag_idle
from pipeline.store import uploads

log = logging.getLogger("sftbot.app")
EVENTS_PATH = "/slack/events"


def create_app(
    engine: Engine,
    settings: Settings,
    *,
    live_interval: float = 3.0,
    post_interval: float = 1.0,
    retry_jitter: float = 1.0,
) -> AsyncApp:
    """A Bolt AsyncApp serving ``/sft``, buttons, the modal, mentions, DMs and the App Home.

    Call it inside the running event loop (it opens the app's one HTTP session; ``aclose``
    closes it). ``live_interval`` spaces scoreboard edits per run; ``post_interval`` spaces
    posts per channel (Slack's ~1 message/s); tests pass 0 for both.
    """
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else "xoxb-unset"
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    client = make_client(token, base_url=settings.slack_api_url, jitter=retry_jitter, session=session)
    app = AsyncApp(
        client=client,
        signing_secret=secret,
        process_before_response=False,
        # Socket Mode requests skip verification on their own; HTTP requests are always verified.
        request_verification_enabled=True,
    )
    # From Slack, runs read only the bot's own folders (pipeline/dataset/access.py), never any path.
    engine.runner.config.files = settings.local_files(slack=True)
    if engine.runner.config.evaluator_dir is None:
        # Evaluator files attached in Slack are saved here, and the runner resolves
        # eval=evaluator:<file> here: without SFTBOT_EVALUATOR_DIR, <data dir>/evaluators.
        engine.runner.config.evaluator_dir = settings.evaluator_dir or settings.data_dir / "evaluators"
    messages = RunMessages(client, engine.db, ChannelLimiter(post_interval))
    directory = Directory(client, engine.runner.config.policy, membership_ttl=settings.membership_ttl_seconds)
    asker = Asker(
        engine.db,
        messages,
        policy=lambda: engine.runner.policy,  # read at each ask: the policy may change between gates
        names=directory.name,  # the root and edits name people (users.info, cached) instead of pinging them
        # SFTBOT_DM_APPROVERS: a DM names the run, so only to those who can see its channel.
        dm=directory.in_channel if settings.dm_approvers else None,
    )
    notifier = Notifier(
        engine.db, engine.platform, messages, live_interval=live_interval, asker=asker, margin=engine.runner.config.spend_margin
    )
    engine.bus.subscribe(notifier)
    surface = Surface(runner=engine.runner, notifier=notifier, directory=directory, messages=messages)
    register(app, surface)
    app.sftbot = surface  # type: ignore[attr-defined]  # tests and shutdown reach the notifier here
    return app


def surface_of(app: AsyncApp) -> Surface:
    return cast(Surface, app.sftbot)


async def aclose(app: AsyncApp, *, timeout: float = 10.0) -> None:
    """Send what is still queued for Slack (bounded), then close the app's HTTP session."""
    notifier = surface_of(app).notifier
    try:
        await notifier.drain(timeout)
    except TimeoutError:
        log.warning("shutting down with Slack messages still queued")
    await notifier.close()
    session = app.client.session
    if session is not None and not session.closed:
        await session.close()


def http_app(app: AsyncApp) -> web.Application:
    """Events, commands and interactivity on POST /slack/events (signature-checked), GET /healthz."""

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    web_app = web.Application()
    web_app.router.add_post(EVENTS_PATH, events)
    web_app.router.add_get("/healthz", healthz)
    return web_app


async def start_http(app: AsyncApp, *, host: str = "0.0.0.0", port: int = 3000) -> tuple[web.AppRunner, int]:
    """Serve ``http_app`` in the running loop; returns the runner and the bound port (0 = any)."""
    runner = web.AppRunner(http_app(app))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    return runner, int(sockets[0].getsockname()[1]) if sockets else port


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run the bot until stopped: check the Slack tokens, resume unfinished runs, then listen.

    ``stop`` ends it (`sftbot serve` sets it on the first Ctrl-C or SIGTERM); without one the
    bot installs those signal handlers itself. Nothing here waits on Slack without also
    waiting on ``stop``: a token Slack never answers for, or a Socket Mode connection that
    cannot be made, never holds the shutdown."""
    settings.require_for_slack()
    settings.require_for_platform()
    if stop is None:
        from bot.stopping import Stop

        async with Stop() as own:
            await _serve(settings, own.event)
        return
    await _serve(settings, stop)


async def _say_how_evaluators_run(settings: Settings) -> None:
    """Tell the operator at start, not the first user at their first evaluator, when users'
    evaluators cannot be isolated here (they are then refused, or run unsafely if allowed)."""
    problem = await asyncio.to_thread(sandbox_problem)
    if (budget := budget_problem(settings.sandbox_limits(), cgroup=False)) is not None:
        log.warning("users' evaluators are refused unless the host delegates a cgroup v2: %s", budget)
    if problem is None:
        log.info("users' evaluators run in a bubblewrap sandbox")
    elif settings.unsafe_evaluators:
        log.warning("SFTBOT_UNSAFE_EVALUATORS is on: users' evaluators run WITHOUT isolation (%s)", problem)
    else:
        log.warning("users' evaluators will be refused: %s", problem)


async def _host_local_deployments(engine: Engine) -> None:
    """While the bot runs, every local deployment answers on the local endpoint: the server
    starts now, each deployment's model loads on its first request (so start-up stays quick
    and memory holds only the models people call)."""
    platform = engine.platform
    if not isinstance(platform, LocalPlatform):
        return
    problem = await platform.host()
    if problem is not None:
        log.warning("local deployments are not served: %s", problem)
    elif platform.deployments.shared_with is not None:
        log.info("local deployments are served by sftbot process %s on the same port", platform.deployments.shared_with)
    else:
        count = len(platform.deployments.live_records())
        log.info(
            "local deployments answer at %s (%d deployed; each loads on its first request)", platform.deployments.endpoint, count
        )


async def guard_idle(engine: Engine, settings: Settings, stop: asyncio.Event, *, every: float | None = None) -> None:
    """Every few minutes, ask about deployments up past SFTBOT_IDLE_DEPLOYMENT_HOURS (each once).

    A plain loop, not a scheduler library: one coroutine, one query a few times an hour,
    stopped with the bot; flag_idle makes a restart safe (what was asked stays asked)."""
    idle_seconds = settings.idle_deployment_hours * 3600
    every = every if every is not None else min(600.0, idle_seconds / 24)
    while not stop.is_set():
        try:
            await flag_idle(engine.db, idle_seconds=idle_seconds)
        except Exception:  # a storage hiccup must not end the loop: it tries again next time
            log.exception("the idle-deployment check failed; trying again in %.0f s", every)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def guard_uploads(engine: Engine, stop: asyncio.Event, *, every: float | None = None) -> None:
    """Delete uploads no unfinished run has named for SFTBOT_UPLOAD_RETENTION_HOURS, a few times
    per retention period (each new upload also sweeps first, so the quota counts only what is kept)."""
    files = engine.runner.config.files
    every = every if every is not None else min(3600.0, files.upload_retention_seconds / 4)
    while not stop.is_set():
        try:
            gone = await uploads.sweep(engine.db, files)
            if gone:
                log.info("deleted %d upload(s) no run has used for %.0f h", len(gone), files.upload_retention_seconds / 3600)
        except Exception:  # a storage hiccup must not end the loop: it tries again next time
            log.exception("the upload clean-up failed; trying again in %.0f s", every)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def _serve(settings: Settings, stop: asyncio.Event) -> None:
    from bot.slack_tokens import check_tokens

    channels = ", ".join(settings.channels) or "every channel it is in"
    log.info(
        "settings: %s mode, platform %s, data in %s, runs from %s",
        settings.mode,
        settings.resolved_platform,
        settings.data_dir,
        channels,
    )
    if not await check_tokens(settings, stop):
        return
    # The bot asks how to judge candidates when a /sft run does not say (loss, own or generated evaluator).
    async with open_engine(settings, ask_evaluation=True) as engine:
        log.info("database: %s", settings.db_path)
        log.info("platform: %s", describe_platform(engine))
        app = create_app(engine, settings)
        guards: list[asyncio.Task[None]] = []
        try:
            await _say_how_evaluators_run(settings)
            resumed = await engine.runner.resume_all()
            log.info("resumed %d unfinished run(s)", len(resumed))
            await _host_local_deployments(engine)
            guards = [asyncio.create_task(guard_idle(engine, settings, stop)), asyncio.create_task(guard_uploads(engine, stop))]
            await (_listen_http if settings.mode == "http" else _listen_socket)(app, settings, stop)
        finally:
            for guard in guards:
                guard.cancel()
            await asyncio.gather(*guards, return_exceptions=True)
            if stop.is_set():  # this machine's trainers stop with the bot; the next start resumes them
                await engine.stop_runs([r.id for r in await list_unfinished(engine)])
            await aclose(app)
    log.info("stopped; unfinished runs go on when sftbot serve starts again")


def describe_platform(engine: Engine) -> str:
    platform = engine.platform
    if isinstance(platform, LocalPlatform):
        return f"local, this machine ({platform.device}, at most {platform.max_parallel} job(s) at once)"
    account = engine.settings.fireworks_account_id
    return f"{platform.facts.name}" + (f", account {account}" if account else "")


async def list_unfinished(engine: Engine) -> list[RunRecord]:
    from pipeline.store import runs

    return await runs.list_runs(engine.db, unfinished=True, limit=10_000)


async def _listen_http(app: AsyncApp, settings: Settings, stop: asyncio.Event) -> None:
    runner, port = await start_http(app, port=settings.http_port)
    log.info("HTTP: listening on :%d%s", port, EVENTS_PATH)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def _listen_socket(app: AsyncApp, settings: Settings, stop: asyncio.Event) -> None:
    """Connect Socket Mode and listen until stopped. The SDK's client retries a connection it
    cannot make for as long as it is open (one line each time: bot/logging_setup.py); closing it on
    the stop ends those retries too."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.stopping import unless

    assert settings.slack_app_token is not None
    handler = AsyncSocketModeHandler(app, settings.slack_app_token.get_secret_value())
    try:
        await unless(stop, handler.connect_async())  # type: ignore[no-untyped-call]
        if not stop.is_set():
            log.info("Socket Mode: connected; listening")
            await stop.wait()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
