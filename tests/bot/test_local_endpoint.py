"""A local deployment outlives the command that made it: after `sftbot demo --yes` has exited,
`sftbot endpoint RUN` (a real subprocess) answers the report's snippet verbatim with the
fine-tuned model's output; a host serves deployments made by other processes, lazily; a
teardown is seen by the host; bad requests get one sentence naming the problem and the fix."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.local
pytest.importorskip("torch")
pytest.importorskip("peft")

from bot.errors import Refused  # noqa: E402
from bot.local_commands import endpoint, local_platform  # noqa: E402
from pipeline.domain import ids  # noqa: E402
from pipeline.domain.platform import ChatMessage, DeploymentState  # noqa: E402
from pipeline.domain.slots import Slot  # noqa: E402
from pipeline.platforms.local.platform import LocalPlatform  # noqa: E402
from pipeline.store import runs  # noqa: E402
from pipeline.store.db import Database  # noqa: E402
from tests.bot.local_demo import DemoRun, free_port  # noqa: E402


@contextlib.asynccontextmanager
async def endpoint_process(demo: DemoRun, *args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`sftbot endpoint` in its own process; yields once it says it serves (its first line)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "endpoint",
        str(demo.number),
        *args,
        env=demo.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        yield proc, first
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)


async def _run_id(demo: DemoRun) -> str:
    db = await Database.open(demo.data_dir / "sftbot.sqlite3")
    try:
        run = await runs.get_run(db, demo.number)
        assert run is not None
        return run.id
    finally:
        await db.close()


def _run_snippet(code: str) -> str:
    out = io.StringIO()
    exec(compile(code, "snippet.py", "exec"), {"__name__": "__main__", "print": lambda *a: print(*a, file=out)})
    return out.getvalue().strip()


async def test_after_the_demo_exits_sftbot_endpoint_answers_the_reports_snippet_verbatim(local_demo_run: DemoRun) -> None:
    demo = local_demo_run
    assert f"sftbot endpoint {demo.number}" in demo.output  # the demo ends saying how to start it again
    snippet = demo.snippet()
    assert f"127.0.0.1:{demo.port}/v1" in snippet
    with pytest.raises(Exception, match="Connection"):  # nothing answers once the demo has exited
        await asyncio.to_thread(_run_snippet, snippet)
    async with endpoint_process(demo) as (proc, first):
        assert proc.returncode is None and first.startswith(f"Serving run #{demo.number}'s fine-tuned model"), first
        answer = await asyncio.to_thread(_run_snippet, snippet)
    # The answer is the fine-tuned model's own greedy output for the snippet's prompt (a held-out row).
    run_id = await _run_id(demo)
    platform = LocalPlatform(demo.data_dir / "local", port=0)
    try:
        record = platform.deployment_record(ids.deployment_id(run_id))
        assert record is not None and record.port == demo.port
        prompt = [ChatMessage.model_validate(m) for m in platform.example_prompt(record.model)]
        assert prompt[-1].role == "user" and prompt[-1].content != "Hello!"
        tuned = (await platform.inference.generate(record.model, [prompt], max_tokens=256))[0]
        base = (await platform.inference.generate("tiny-llama", [prompt], max_tokens=256))[0]
    finally:
        await platform.close()
    assert answer == tuned and answer != base
    assert proc.returncode == 0  # SIGTERM stops it cleanly


def test_the_demo_report_has_a_final_run_section_with_its_own_metrics(local_demo_run: DemoRun) -> None:
    report = local_demo_run.report.read_text(encoding="utf-8")
    section = report.split("## Final run", 1)[1].split("\n## ", 1)[0]
    row = re.search(
        r"^\| `(sftbot-[0-9a-f]{8}-final)` \| completed \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+|n/a) \| ([0-9.,]+ (?:s|min)) \|$",
        section,
        re.M,
    )
    assert row is not None, section  # its job, train and validation loss, score and time, not the sweep's
    assert "retrained on the full train split" in section


async def test_a_host_serves_other_processes_deployments_lazily_and_sees_a_teardown(
    local_demo_run: DemoRun, tmp_path: Path
) -> None:
    from openai import AsyncOpenAI, NotFoundError

    demo = local_demo_run
    run_id = await _run_id(demo)
    port = free_port()
    host = local_platform(demo.settings(), port=port)  # what `sftbot serve` does at start-up
    maker = LocalPlatform(demo.data_dir / "local", port=port)
    try:
        assert await host.host() is None and host.deployments.loaded == {}  # nothing loaded before a request
        # Another process deploys a model: the port is held by the host, so it relies on it.
        job = ids.job_id(run_id, Slot.candidate(1))
        made = await maker.serving.create("extra-dep", job)
        assert made.state is DeploymentState.READY and maker.deployments.shared_with is not None
        async with AsyncOpenAI(base_url=made.endpoint, api_key="local") as client:
            hello = [{"role": "user", "content": "Hello!"}]
            reply = await client.chat.completions.create(model="extra-dep", max_tokens=8, messages=hello)  # type: ignore[arg-type]
            assert reply.choices[0].message.content is not None and "extra-dep" in host.deployments.loaded
            torn = await maker.serving.delete("extra-dep")  # `sftbot teardown`, from yet another process
            assert torn.state is DeploymentState.DELETED
            with pytest.raises(NotFoundError, match="torn down"):
                await client.chat.completions.create(model="extra-dep", max_tokens=8, messages=hello)  # type: ignore[arg-type]
            assert "extra-dep" not in host.deployments.loaded
    finally:
        await maker.close()
        await host.close()


async def test_endpoint_refuses_unknown_runs_torn_down_deployments_and_busy_ports(local_demo_run: DemoRun) -> None:
    demo = local_demo_run
    settings = demo.settings()
    with pytest.raises(Refused, match=r"no run 999 .*`sftbot runs` lists"):
        await endpoint(settings, "999", port=None)
    # A port some other program holds: named, with the way out.
    import socket

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(Refused, match=r"another program uses that port.*--port"):
            await endpoint(settings, str(demo.number), port=int(other.getsockname()[1]))
    # In-process with a stop event: it serves, then stops when told.
    stop, said = asyncio.Event(), asyncio.Event()
    lines: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        said.set()

    serving = asyncio.create_task(endpoint(settings, str(demo.number), port=free_port(), stop=stop, out=out))
    await asyncio.wait_for(said.wait(), 60)
    stop.set()
    assert await serving == 0 and "Serving run" in lines[0] and "note: the report's snippet names port" in lines[1]


async def test_teardown_is_recorded_and_endpoint_then_says_so(local_demo_run: DemoRun, tmp_path: Path) -> None:
    import shutil

    demo = local_demo_run
    copy = tmp_path / "copy"  # tear down a copy: the other tests keep the demo's deployment
    shutil.copytree(demo.data_dir, copy)
    settings = demo.settings(data_dir=copy)
    run_id = await _run_id(demo)
    platform = local_platform(settings)
    try:
        gone = await platform.serving.delete(ids.deployment_id(run_id))
        again = await platform.serving.delete(ids.deployment_id(run_id))  # idempotent
        assert gone.state is again.state is DeploymentState.DELETED
        assert (await platform.serving.get(ids.deployment_id(run_id))).state is DeploymentState.DELETED
    finally:
        await platform.close()
    with pytest.raises(Refused, match=rf"run #{demo.number}'s deployment .* was torn down at .*sftbot export {demo.number}"):
        await endpoint(settings, str(demo.number), port=None)


async def test_sftbot_serve_hosts_the_local_deployments_and_loads_each_on_its_first_request(local_demo_run: DemoRun) -> None:
    from openai import AsyncOpenAI

    from bot.app import _host_local_deployments
    from bot.engine import open_engine

    demo = local_demo_run
    run_id = await _run_id(demo)
    settings = demo.settings(local_port=free_port(), data_dir=demo.data_dir)
    async with open_engine(settings, platform_name="local") as engine:  # what `sftbot serve` opens
        await _host_local_deployments(engine)
        platform = engine.platform
        assert isinstance(platform, LocalPlatform) and platform.deployments.loaded == {}  # nothing loaded at start-up
        dep = ids.deployment_id(run_id)
        async with AsyncOpenAI(base_url=platform.deployments.endpoint, api_key="local") as client:
            listed = [m.id async for m in client.models.list()]
            assert dep in listed
            reply = await client.chat.completions.create(model=dep, max_tokens=8, messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content is not None and dep in platform.deployments.loaded
