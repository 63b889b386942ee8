"""Benchmark: how fast `/sft run` is acknowledged over HTTP mode, under 50 concurrent requests.

    python bench/bench_ack.py                 # 8 rounds x 50 concurrent requests per app
    python bench/bench_ack.py --rounds 3

Two servers in this process, same aiohttp adapter, same signing secret:
  - sftbot: the real app (create_app) on a real runner + the in-process platform; every
    request really starts a run (inspection, plan and Slack posts happen after the ack),
  - bare:   a Bolt AsyncApp whose /sft listener only calls ack().
A fake Slack Web API runs in its own thread; the load comes from a separate process, so
the client's own CPU does not count against the servers. Rounds alternate between the two
apps. Two figures per app: "server" is request-in to response-ready inside the server (what
the app adds to Slack's 3-second budget), "client" is what the load generator saw end to
end (it includes the Python client's own queueing of 50 requests, ~70 ms on a plain aiohttp
handler on a small machine). Targets: sftbot server p99 < 100 ms and within 1.5x of bare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATASET = ROOT / "tests" / "data" / "datasets" / "text2sql_dataset.jsonl"


# --- the load generator (runs in a child process) ---------------------------------------


async def _fire(url: str, concurrency: int, secret: str, response_url: str) -> list[float]:
    import aiohttp

    from bot.testing.slack_app import signed_headers

    def request() -> tuple[bytes, dict[str, str]]:
        fields = {
            "token": "x",
            "team_id": "T111",
            "team_domain": "bench",
            "channel_id": "C0BENCH",
            "channel_name": "bench",
            "user_id": f"U{uuid.uuid4().hex[:8].upper()}",
            "user_name": "bench",
            "command": "/sft",
            "text": f"run dataset={DATASET} model=qwen3-8b",
            "response_url": response_url,
            "trigger_id": uuid.uuid4().hex,
        }
        body = urlencode(fields)
        return body.encode(), signed_headers(body, content_type="application/x-www-form-urlencoded", secret=secret)

    async def one(session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]) -> float:
        start = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        return time.perf_counter() - start

    async def health(session: aiohttp.ClientSession) -> None:
        async with session.get(url.replace("/slack/events", "/healthz")) as resp:
            await resp.read()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        # Open the keep-alive connections and sign every request first: only the server is timed.
        await asyncio.gather(*(health(session) for _ in range(concurrency)))
        prepared = [request() for _ in range(concurrency)]
        return list(await asyncio.gather(*(one(session, b, h) for b, h in prepared)))


def client_main(url: str, concurrency: int, secret: str, response_url: str) -> None:
    print(json.dumps(asyncio.run(_fire(url, concurrency, secret, response_url))))


# --- the servers ---------------------------------------------------------------------------


class SlackThread:
    """The fake Slack Web API in its own thread and event loop."""

    def __init__(self) -> None:
        from bot.testing.slack import FakeSlack

        self.fake = FakeSlack()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.fake.__aenter__())
        self._ready.set()
        self.loop.run_forever()


async def quiet(runner: Any, app: Any) -> None:
    """Wait until every run started so far sits at its plan gate and Slack has been told."""
    from bot.app import surface_of
    from bot.testing.slack_app import listeners_idle

    await listeners_idle(60)
    while busy := [t for t in runner._tasks.values() if not t.done()]:
        await asyncio.gather(*busy, return_exceptions=True)
    await surface_of(app).notifier.drain(60)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(rounds: int, concurrency: int) -> dict[str, dict[str, float]]:
    from slack_bolt.async_app import AsyncApp

    from bot.app import create_app
    from bot.engine import Engine
    from bot.settings import Settings
    from bot.testing.memory_platform import MemoryPlatform
    from bot.testing.slack_app import SECRET
    from handlers.slack_client import make_client
    from pipeline.run.context import RunnerConfig
    from pipeline.run.runner import Runner
    from pipeline.store.db import Database

    slack = SlackThread().fake
    tmp = Path(tempfile.mkdtemp(prefix="sftbot-bench-"))
    db = await Database.open(tmp / "bench.sqlite3")
    platform = MemoryPlatform(polls_to_finish=10**9)
    runner = Runner(db, platform, RunnerConfig(runs_dir=tmp / "runs", poll_seconds=1.0))
    settings = Settings(slack_bot_token=slack.bot_token, slack_signing_secret=SECRET, slack_api_url=slack.base_url, data_dir=tmp)
    # Posts are not spaced per channel here: 400 runs in one channel would take minutes at 1/s.
    full = create_app(
        Engine(settings=settings, db=db, platform=platform, runner=runner, bus=runner.bus), settings, post_interval=0.0
    )

    bare = AsyncApp(client=make_client(slack.bot_token, base_url=slack.base_url), signing_secret=SECRET)

    @bare.command("/sft")
    async def only_ack(ack):  # type: ignore[no-untyped-def]
        await ack()

    server_side: dict[str, list[float]] = {"bare": [], "sftbot": []}
    servers = {name: await _serve(app, server_side[name]) for name, app in (("bare", bare), ("sftbot", full))}
    samples: dict[str, list[float]] = {"bare": [], "sftbot": []}
    try:
        for r in range(rounds + 1):  # round 0 warms up (auth.test, imports, first inspection)
            for name, (_, port) in servers.items():
                if not r:
                    server_side[name].clear()
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--client",
                    f"http://127.0.0.1:{port}/slack/events",
                    "--concurrency",
                    str(concurrency),
                    "--response-url",
                    slack.response_url("U0BENCH", "C0BENCH"),
                    stdout=subprocess.PIPE,
                )
                out, _ = await proc.communicate()
                if r:
                    samples[name] += json.loads(out)
                else:
                    server_side[name].clear()
                await quiet(runner, full)  # the runs a round started must not slow the next round
    finally:
        for web_runner, _ in servers.values():
            await web_runner.cleanup()
        await runner.close()
        await db.close()

    def stats(v: list[float]) -> dict[str, float]:
        return {"n": len(v), "p50_ms": percentile(v, 0.5) * 1000, "p99_ms": percentile(v, 0.99) * 1000, "max_ms": max(v) * 1000}

    return {
        **{f"{k} (server)": stats(v) for k, v in server_side.items()},
        **{f"{k} (client)": stats(v) for k, v in samples.items()},
    }


async def _serve(app: Any, record: list[float]) -> tuple[Any, int]:
    """``bot.app.http_app`` behind a timer: request in → response ready, in the server."""
    from aiohttp import web

    from bot.app import http_app

    @web.middleware
    async def timer(request: web.Request, handler: Any) -> web.StreamResponse:
        start = time.perf_counter()
        resp = await handler(request)
        if request.method == "POST":
            record.append(time.perf_counter() - start)
        return resp

    web_app = http_app(app)
    web_app.middlewares.append(timer)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--client")
    p.add_argument("--response-url")
    args = p.parse_args()
    if args.client:
        from bot.testing.slack_app import SECRET

        client_main(args.client, args.concurrency, SECRET, args.response_url)
        return
    result = asyncio.run(bench(args.rounds, args.concurrency))
    for name, r in result.items():
        print(f"{name:<16} n={r['n']:<4} p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms   max {r['max_ms']:6.1f} ms")
    for where in ("server", "client"):
        b, s = result[f"bare ({where})"], result[f"sftbot ({where})"]
        print(f"ratio sftbot/bare ({where}): p50 {s['p50_ms'] / b['p50_ms']:.2f}x   p99 {s['p99_ms'] / b['p99_ms']:.2f}x")
    s = result["sftbot (server)"]
    ok = s["p99_ms"] < 100 and s["p99_ms"] <= 1.5 * result["bare (server)"]["p99_ms"]
    print("targets (server p99 < 100 ms, within 1.5x of bare):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
