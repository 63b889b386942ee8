"""The Slack app factory and server: Socket Mode by default, HTTP (POST /slack/events) for production.

``create_app`` wires one Web API client, the listeners and the notifier onto an engine;
``serve`` opens the engine, resumes every unfinished run, and serves until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import cast

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot.engine import Engine, open_engine
from bot.settings import Settings
from handlers.actors import Directory
from handlers.listeners import register
from handlers.messages import RunMessages
from handlers.notifier import Notifier
from handlers.slack_client import ChannelLimiter, make_client
from handlers.surface import Surface
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
    notifier = Notifier(
        engine.db,
        engine.platform,
        messages,
        live_interval=live_interval,
        policy=lambda: engine.runner.policy,
        dm_approvers=directory.in_channel if settings.dm_approvers else None,
    )
    engine.bus.subscribe(notifier)
    surface = Surface(
        runner=engine.runner,
        notifier=notifier,
        directory=directory,
        messages=messages,
    )
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
    """Run the bot until SIGINT/SIGTERM (or ``stop``): resume unfinished runs, then listen."""
    settings.require_for_slack()
    settings.require_for_platform()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            signals.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    try:
        await _serve(settings, stop)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


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
    # The bot asks how to judge candidates when a /sft run does not say (loss, own or generated evaluator).
    async with open_engine(settings, ask_evaluation=True) as engine:
        app = create_app(engine, settings)
        guards: list[asyncio.Task[None]] = []
        try:
            await _say_how_evaluators_run(settings)
            resumed = await engine.runner.resume_all()
            log.info("resumed %d unfinished run(s)", len(resumed))
            await _host_local_deployments(engine)
            guards = [asyncio.create_task(guard_idle(engine, settings, stop)), asyncio.create_task(guard_uploads(engine, stop))]
            if settings.mode == "http":
                runner, port = await start_http(app, port=settings.http_port)
                log.info("sftbot listening on :%d%s (HTTP mode)", port, EVENTS_PATH)
                try:
                    await stop.wait()
                finally:
                    await runner.cleanup()
            else:
                from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

                assert settings.slack_app_token is not None
                handler = AsyncSocketModeHandler(app, settings.slack_app_token.get_secret_value())
                await handler.connect_async()  # type: ignore[no-untyped-call]
                log.info("sftbot connected (Socket Mode)")
                try:
                    await stop.wait()
                finally:
                    await handler.close_async()  # type: ignore[no-untyped-call]
        finally:
            for guard in guards:
                guard.cancel()
            await asyncio.gather(*guards, return_exceptions=True)
            await aclose(app)
