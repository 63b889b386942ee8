"""Serving that survives the real service: cold starts waited out within a warm-up window,
per-example errors kept (scored 0), reasoning switched off for thinking bases, tool turns sent
with their tools, and a deployment that fails its smoke test torn down. Simulated time: the
platform's clock and sleep are the fake's, so 20 minutes pass in well under a second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import drive_to_end
from pipeline.domain.machine import Phase
from pipeline.domain.platform import ChatMessage, DeploymentState, PlatformError
from pipeline.evaluation.scores import strip_thinking
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.store import runs
from pipeline.store.db import Database
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ALICE, BOB, open_runner, platform_for, running, until

DATA = DATASETS / "text2sql_dataset.jsonl"
BASE = "accounts/fireworks/models/qwen3-8b"


def simulated_time(fake: FakeFireworks) -> dict[str, object]:
    """Platform options whose every wait moves the fake's clock instead of the wall clock."""

    async def sleep(seconds: float) -> None:
        fake.clock.advance(seconds)
        await asyncio.sleep(0)

    return {"clock": fake.clock.now, "sleep": sleep}


async def test_a_20_minute_cold_start_and_10_percent_chat_errors_still_ship_and_the_report_counts_them(
    db: Database, tmp_path: Path
) -> None:
    async with FakeFireworks(job_seconds=0.15, deployment_seconds=0.05, cold_start_seconds=20 * 60) as fake:
        fake.chat_error_rate = 0.10
        platform = platform_for(fake, warmup_seconds=30 * 60, **simulated_time(fake))
        runner, log = open_runner(db, fake, tmp_path / "runs", platform=platform)
        started, simulated = time.monotonic(), fake.clock.now()
        try:
            run = await runner.start(f"dataset={DATA} model=qwen3-8b parallel=3 eval=generate", ALICE)
            after = await drive_to_end(runner, log, run.id, actor=BOB, timeout=60)
            cands = {str(c.slot): c for c in await runs.candidates(db, run.id)}
            plan = await runs.get_plan(db, run.id)
        finally:
            await runner.close()
            await platform.close()
        real = time.monotonic() - started
        assert after.phase is Phase.SUCCEEDED, after.error
        scaling_up = [r for r in fake.calls("POST", r"/chat/completions$") if r.status == 503]
        refused = [r for r in fake.calls("POST", r"/chat/completions$") if r.status == 400]
    assert fake.clock.now() - simulated >= 2 * 20 * 60  # two cold starts waited out: the shared and the production deployment
    assert real < 60 and scaling_up and refused
    failed = {slot: c.eval_failures for slot, c in cands.items()}
    assert set(failed) == {"c1", "c2", "c3", "final"} and all(n > 0 for n in failed.values())
    assert len(set(failed.values())) == 1  # the same prompts fail for every model: a per-example problem
    assert all(c.score is not None for c in cands.values())  # still scored: a failed answer counts 0
    report = (Path(after.workspace) / "final_report.md").read_text()
    n = failed["final"]
    assert plan is not None and plan.eval_examples == 10  # all the held-out split has
    assert f"{n} of its 10 held-out answers failed (the request was refused or errored) and count as score 0" in report
    assert f"- #1: {n} of its held-out answers failed and count as score 0" in report
    assert (await db.resources(run.id))[-1].state in ("ready", "deleted")


async def test_a_scaled_to_zero_deployment_is_waited_for_until_the_warm_up_window_ends(
    fake: FakeFireworks, tmp_path: Path
) -> None:
    platform = platform_for(fake, warmup_seconds=10 * 60, **simulated_time(fake))
    try:
        await platform.serving.create("sftbot-r1-dep", BASE)

        async def ready() -> bool:
            return (await platform.serving.get("sftbot-r1-dep")).state is DeploymentState.READY

        await until(ready)
        status = await platform.serving.get("sftbot-r1-dep")
        fake.cold_start_seconds = 5 * 60
        assert (
            await platform.inference.chat(status.model_string, [ChatMessage(role="user", content="hi")])
            == "echo: hi (as the base model)"
        )
        fake.cold_start_seconds = 60 * 60  # longer than the window: give up, with the platform's words
        fake.deployments["sftbot-r1-dep"].ready_at = fake.clock.now()
        with pytest.raises(PlatformError, match="scaled to zero and is scaling up") as err:
            await platform.inference.chat(status.model_string, [ChatMessage(role="user", content="hi")])
        assert err.value.retryable and "HTTP 503" in str(err.value)
    finally:
        await platform.close()


async def test_thinking_bases_answer_with_reasoning_off_and_refusals_of_none_are_retried(
    fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform]
) -> None:
    platform = make_platform()
    fake.chat_responder = lambda model, messages: "42"
    fake.reasoning_models = {BASE}  # serverless base, to keep this about the request
    asked = [ChatMessage(role="user", content="6*7?")]
    thought = await platform.inference.chat(BASE, asked, max_tokens=512)
    assert thought.startswith("<think>") and strip_thinking(thought) == ""  # thinking ate the whole budget
    assert await platform.inference.chat(BASE, asked, max_tokens=512, reasoning_effort="none") == "42"
    fake.rejects_reasoning_none = {BASE}  # GPT-OSS style: "Invalid reasoning effort: none"
    fake.reasoning_models = set()
    assert await platform.inference.chat(BASE, asked, max_tokens=512, reasoning_effort="none") == "42"
    sent = [r.json.get("reasoning_effort") for r in fake.calls("POST", r"/chat/completions$")]
    assert sent == [None, "none", "none", None]


async def test_tool_turns_go_with_their_tools_or_not_at_all(db: Database, fake: FakeFireworks, tmp_path: Path) -> None:
    from pipeline.evaluation.prompts import prompt_messages, tools_of

    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    call = [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]
    turns = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": call},
        {"role": "tool", "content": "15C", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "It is 15C."},
    ]
    platform = platform_for(fake)
    try:
        with_tools = {"messages": turns, "tools": tools}
        answer = await platform.inference.chat(BASE, prompt_messages(with_tools), tools=tools_of(with_tools))
        sent = fake.calls("POST", r"/chat/completions$")[-1].json
        assert answer.startswith("echo:") and sent["tools"] == tools
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"]
        assert sent["messages"][1]["tool_calls"] == call and sent["messages"][2]["tool_call_id"] == "call_1"
        without = {"messages": turns}  # tool turns but no tools: dropped, not refused
        await platform.inference.chat(BASE, prompt_messages(without), tools=tools_of(without))
        sent = fake.calls("POST", r"/chat/completions$")[-1].json
        assert [m["role"] for m in sent["messages"]] == ["user"] and "tools" not in sent
    finally:
        await platform.close()


async def test_a_deployment_that_fails_its_smoke_test_after_ready_is_torn_down(db: Database, tmp_path: Path) -> None:
    async with FakeFireworks(job_seconds=0.1, deployment_seconds=0.05) as fake:
        fake.chat_error_rate = 1.0  # READY, but every request is refused
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(f"dataset={DATA} model=qwen3-8b final=no", ALICE)
            after = await drive_to_end(runner, log, run.id, actor=BOB, timeout=60)
            dep = next(r for r in await db.resources(run.id) if r.resource_id == f"sftbot-{run.id}-dep")
        assert after.phase is Phase.FAILED
        assert after.error is not None and "was READY but failed its smoke test" in after.error
        assert "torn down so it does not bill" in after.error
        assert fake.deployments[f"sftbot-{run.id}-dep"].deleted_at is not None and dep.state in ("deleted", "deleting")
        actions = [a.action for a in await db.audit_trail(run.id)]
        assert "smoke_test_failed" in actions
