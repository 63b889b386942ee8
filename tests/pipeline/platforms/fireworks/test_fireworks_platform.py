"""FireworksPlatform as a whole: the protocol, retries, faults, quotas and secrets."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.testing.fireworks import FakeFireworks, Faults
from pipeline.domain.platform import (
    Busy,
    ChatMessage,
    Platform,
    PlatformError,
)
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.platforms.fireworks.settings import FireworksSettings
from tests.pipeline.fireworks_support import ACCT, CHAT_ROWS, request, seed_datasets, until, write_jsonl


def test_implements_the_platform_protocol(platform: FireworksPlatform) -> None:
    assert isinstance(platform, Platform)


async def test_a_lost_create_response_is_reconciled_not_duplicated(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    await seed_datasets(fake)
    # The create takes effect, then the connection drops before the answer arrives.
    fake.faults = Faults(drop_rate=1.0, after_commit=1.0, limit=1, scope=f"/v1/accounts/{ACCT}/supervisedFineTuningJobs")
    status = await platform.training.create(request("sftbot-r1-c1"))
    assert status.job_id == "sftbot-r1-c1"
    assert list(fake.jobs) == ["sftbot-r1-c1"]
    assert [(r.status, r.fault) for r in fake.calls("POST", r"/supervisedFineTuningJobs$")] == [(200, "drop"), (409, None)]


async def test_faults_do_not_duplicate_anything(
    fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform], tmp_path: Path
) -> None:
    # Faults are drawn per request from the fake's seed, so this run is the same every time;
    # 8 retries leave margin against a long unlucky streak (0.34^9 per call).
    platform = make_platform(max_retries=8)
    fake.faults = Faults(error_rate=0.3, statuses=(500, 429, 503), drop_rate=0.05)
    path = write_jsonl(tmp_path / "train.jsonl", CHAT_ROWS)
    await platform.datasets.upload("sftbot-r1-train", path, examples=12)
    await platform.datasets.upload("sftbot-r1-test", path, examples=12)
    grid = {"sftbot-r1-c1": (8, 1.5e-4), "sftbot-r1-c2": (16, 1e-4), "sftbot-r1-c3": (32, 5e-5)}
    await asyncio.gather(*(platform.training.create(request(j, lr=lr, rank=r)) for j, (r, lr) in grid.items()))

    async def all_done() -> bool:
        fake.clock.advance(1.0)
        statuses = await asyncio.gather(*(platform.training.get(j) for j in grid))
        return all(s.state.terminal for s in statuses)

    await until(all_done, timeout=10)
    points = await platform.training.metrics("sftbot-r1-c2", tmp_path / "m.jsonl")
    assert points
    model = (await platform.training.get("sftbot-r1-c2")).model
    assert model is not None
    await platform.serving.create("sftbot-r1-dep", model)

    assert sorted(fake.jobs) == sorted(grid)
    assert all(n == 1 for n in fake.create_counts("supervisedFineTuningJobs").values())
    assert fake.create_counts("datasets") == {"sftbot-r1-train": 1, "sftbot-r1-test": 1}
    assert fake.create_counts("deployments") == {"sftbot-r1-dep": 1}
    assert fake.max_active_jobs == 3
    faults = [r.fault for r in fake.requests if r.fault]
    assert "error" in faults and "drop" in faults  # the faults really happened


async def test_a_job_refused_for_quota_or_capacity_is_busy_at_once(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    await seed_datasets(fake)
    fake.job_quota = 1
    await platform.training.create(request("sftbot-r1-c1"))
    with pytest.raises(Busy, match="quota is exhausted: quota_exceeded") as err:
        await platform.training.create(request("sftbot-r1-c2"))
    assert err.value.retryable
    refused = [r for r in fake.calls("POST", r"/supervisedFineTuningJobs$") if r.status == 429]
    assert len(refused) == 1  # no waiting here: the sweep queues the job and tries when one finishes
    assert list(fake.jobs) == ["sftbot-r1-c1"] and fake.max_active_jobs == 1
    fake.job_quota, fake.job_capacity_refusals = None, 1
    with pytest.raises(Busy, match="no capacity right now: no available capacity"):
        await platform.training.create(request("sftbot-r1-c2"))
    assert not [r for r in fake.requests if r.path.endswith(":cancel")]  # nothing running was touched


@pytest.mark.parametrize(
    ("reason", "message", "said"),
    [
        ("TRAINING_QUOTA_EXCEEDED", "no capacity for this shape", "a quota is exhausted"),  # the reason wins
        ("ACCELERATOR_UNAVAILABLE", "quota exceeded", "no capacity right now"),  # the reason wins
        (None, "no available capacity", "read from its message"),  # no ErrorInfo: the text, said as such
    ],
)
async def test_quota_or_capacity_is_told_by_the_error_info_reason(
    fake: FakeFireworks, platform: FireworksPlatform, reason: str | None, message: str, said: str
) -> None:
    await seed_datasets(fake)
    fake.job_refusal = (reason, message)
    with pytest.raises(Busy, match=said) as err:
        await platform.training.create(request("sftbot-r1-c1"))
    assert err.value.retryable and (reason is None or f"reason {reason}" in str(err.value))


async def test_slow_responses_time_out_and_are_retried(
    fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform]
) -> None:
    fake.add_dataset("slow-data", {"a.jsonl": b"{}\n"})
    fake.faults = Faults(slow_rate=1.0, slow_seconds=0.5, limit=None)
    platform = make_platform(timeout=0.2)

    async def fast_again() -> None:
        await until(lambda: _true_after(fake, 1), timeout=5)
        fake.faults = Faults()

    restore = asyncio.create_task(fast_again())
    info = await platform.datasets.check("slow-data")
    await restore
    assert info.ready
    assert fake.calls("GET", r"/datasets/slow-data$")[0].fault == "slow"


async def _true_after(fake: FakeFireworks, n: int) -> bool:
    return len(fake.calls("GET", r"/datasets/slow-data$")) >= n


async def test_rate_limits_exhaust_into_a_retryable_error(
    fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform]
) -> None:
    fake.faults = Faults(error_rate=1.0, statuses=(429,), retry_after_ms=5)
    platform = make_platform(max_retries=3)
    with pytest.raises(PlatformError, match="HTTP 429") as err:
        await platform.training.get("sftbot-r1-c1")
    assert err.value.retryable
    assert len(fake.calls("GET", r"/supervisedFineTuningJobs/")) == 4


async def test_an_auth_error_never_contains_the_key(fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform]) -> None:
    secret = "fw-SECRET-do-not-print-42"
    fake.echo_bad_key_in_401 = True  # even a server that echoes the key must not leak it
    platform = make_platform(api_key=secret)
    with pytest.raises(PlatformError) as err:
        await platform.datasets.check("anything")
    message = str(err.value)
    assert "401" in message and "FIREWORKS_API_KEY" in message and "invalid API key" in message
    assert secret not in message and secret not in repr(err.value)
    assert not err.value.retryable
    # Nor in a logged traceback: the SDK's exception (whose body echoed the key) is not chained.
    assert secret not in "".join(traceback.format_exception(err.value))
    with pytest.raises(PlatformError) as chat_err:
        await platform.inference.chat("accounts/fireworks/models/qwen3-8b", [ChatMessage(role="user", content="hi")])
    assert secret not in str(chat_err.value) and "401" in str(chat_err.value)


async def test_constructor_rejects_missing_credentials() -> None:
    with pytest.raises(PlatformError, match="FIREWORKS_API_KEY"):
        FireworksPlatform(FireworksSettings("", ACCT))
    with pytest.raises(PlatformError, match="FIREWORKS_ACCOUNT_ID"):
        FireworksPlatform(FireworksSettings("key", ""))


async def test_a_saturated_deployment_slows_only_its_own_requests() -> None:
    import httpx
    from fireworks import RateLimitError

    from pipeline.platforms.fireworks.calls import Caller, Inference, RetryPolicy

    def saturated() -> RateLimitError:
        response = httpx.Response(429, headers={"retry-after": "30"}, request=httpx.Request("POST", "http://x/v1/chat"))
        body = {"error": {"message": "deployment saturated", "code": 429}}
        return RateLimitError("saturated", response=response, body=body)

    for account_wide in (False, True):
        now, slept = [0.0], []

        async def sleep(seconds: float, now: list[float] = now, slept: list[float] = slept) -> None:
            slept.append(seconds)
            await asyncio.sleep(0)  # other calls run while this one waits (simulated time)
            now[0] += seconds

        caller = Caller(RetryPolicy(), secrets=(), clock=lambda now=now: now[0], sleep=sleep)
        tries = iter([saturated(), None])

        async def chat(tries=tries) -> str:  # type: ignore[no-untyped-def]
            if (exc := next(tries)) is not None:
                raise exc
            return "ok"

        async def control() -> str:
            return "read"

        chatting = asyncio.create_task(caller.run("chat", chat, inference=None if account_wide else Inference()))
        await asyncio.sleep(0)  # the chat got its 429 and waits 30 s
        assert await caller.run("read a job", control) == "read"  # meanwhile, a control-plane call
        assert await chatting == "ok"
        # The account's request limit pauses every call; one deployment's saturation only its own.
        assert slept == ([30.0, 30.0] if account_wide else [30.0])
