"""The local endpoint through the official `openai` client, as engineers point it at their
tools (issue #24): streamed and plain completions, content as text parts, n, the max_tokens
cap and unknown models as OpenAI errors, and every model name the report and its snippet
print listed by /v1/models and answered. Then `sftbot endpoint` as a real process: SIGTERM in
the middle of a 10,000-token generation stops it within 5 s, cleanly, port released; and a
second Ctrl-C while it stops forces the exit."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.local
pytest.importorskip("torch")
pytest.importorskip("peft")
httpx = pytest.importorskip("httpx")

from bot.local_commands import local_platform  # noqa: E402
from tests.bot.local_demo import DemoRun, free_port  # noqa: E402
from tests.pipeline.platforms.local.endpoint_support import port_is_free  # noqa: E402


def _report_names(demo: DemoRun) -> set[str]:
    """Every model name a reader of the report could paste: its table and its snippet."""
    text = demo.report.read_text(encoding="utf-8")
    table = re.findall(r"^\| (?:Model|Model string) \| `([^`]+)` \|$", text, re.M)
    snippet = re.findall(r'model="([^"]+)"', demo.snippet())
    assert len(table) == 2 and len(snippet) == 1, (table, snippet)
    return {*table, *snippet}


async def test_the_openai_client_gets_what_it_expects_from_the_local_endpoint(local_demo_run: DemoRun) -> None:
    from openai import AsyncOpenAI, BadRequestError, NotFoundError

    demo = local_demo_run
    names = _report_names(demo)
    platform = local_platform(demo.settings(), port=free_port())  # hosts every deployment, as `sftbot serve` does
    try:
        assert await platform.host() is None
        async with AsyncOpenAI(base_url=platform.deployments.endpoint, api_key="local", max_retries=0) as client:
            listed = {m.id async for m in client.models.list()}
            assert names <= listed, (names, listed)  # today's report name `…-final` among them
            hello = [{"role": "user", "content": "Tomas is 44 and lives in Osaka."}]
            answers = {}
            for name in sorted(names):
                reply = await client.chat.completions.create(model=name, messages=hello, max_tokens=12, temperature=0)  # type: ignore[arg-type]
                assert reply.model == name and reply.choices[0].finish_reason in ("stop", "length")
                answers[name] = reply.choices[0].message.content
            assert len(set(answers.values())) == 1  # one deployment under each of its names
            model, text = next(iter(answers)), next(iter(answers.values()))

            stream = await client.chat.completions.create(
                model=model, messages=hello, max_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True}
            )  # type: ignore[call-overload]
            chunks = [c async for c in stream]
            streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert streamed == text and len(chunks) > 3  # the same greedy answer, token by token
            assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12

            parts = [{"role": "user", "content": [{"type": "text", "text": "Tomas is 44 and lives in Osaka."}]}]
            listed_content = await client.chat.completions.create(model=model, messages=parts, max_tokens=12, temperature=0)  # type: ignore[arg-type]
            assert listed_content.choices[0].message.content == text

            two = await client.chat.completions.create(
                model=model, messages=hello, max_tokens=6, n=2, temperature=0.9, top_p=0.95, stop=["\n"]
            )  # type: ignore[arg-type]
            assert [c.index for c in two.choices] == [0, 1] and two.usage is not None and two.usage.completion_tokens <= 12

            with pytest.raises(BadRequestError) as too_long:
                await client.chat.completions.create(model=model, messages=hello, max_tokens=100_000)  # type: ignore[arg-type]
            assert too_long.value.param == "max_tokens" and "cap of 4096" in too_long.value.message
            with pytest.raises(NotFoundError) as unknown:
                await client.chat.completions.create(model="sftbot-nope-dep", messages=hello, max_tokens=4)  # type: ignore[arg-type]
            assert unknown.value.code == "model_not_found" and "/v1/models" in unknown.value.message
    finally:
        await platform.close()


async def test_sigterm_mid_generation_stops_sftbot_endpoint_within_5_s_and_frees_the_port(local_demo_run: DemoRun) -> None:
    demo = local_demo_run
    port = free_port()
    env = {**demo.env(), "SFTBOT_LOCAL_MAX_TOKENS": "10000"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "endpoint", str(demo.number), "--port", str(port),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), 180)).decode()
        assert first.startswith(f"Serving run #{demo.number}"), first
        body = {"model": _report_names(demo).pop(), "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10_000}
        async with httpx.AsyncClient(timeout=60) as client:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            async with client.stream("POST", url, json={**body, "stream": True, "temperature": 0}) as resp:
                lines = resp.aiter_lines()
                got = [await anext(lines) for _ in range(8)]  # generating: tokens are arriving
                assert all(not line or '"finish_reason": null' in line for line in got)
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(proc.wait(), 5)
                rest = [line async for line in lines]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out, err = (await proc.stdout.read()).decode(), (await proc.stderr.read()).decode()
    assert code == 0 and "Traceback" not in out + err, out + err
    assert f"Stopped; port {port} is free." in out and port_is_free(port)
    assert "data: [DONE]" not in rest and "stopped before the answer was complete" in "".join(rest)


def test_a_second_ctrl_c_while_stopping_forces_the_exit(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, os, signal
        from bot.local_commands import stop_on_signals

        async def main():
            stop = asyncio.Event()
            with stop_on_signals(stop, lambda line: print(line, flush=True)):
                os.kill(os.getpid(), signal.SIGINT)
                await stop.wait()
                print("cleaning up", flush=True)
                os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C during a clean-up that never ends
                await asyncio.Event().wait()

        asyncio.run(main())
        """
    )
    import subprocess

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done
    assert done.stdout.splitlines() == [
        "Stopping: cancelling what is generating and releasing the port (Ctrl-C again to force)",
        "cleaning up",
    ]
    assert done.stderr.strip() == "sftbot: forced stop"
