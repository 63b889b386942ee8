"""Fireworks SFT jobs, metrics and models through the real SDK against the fake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.testing.fireworks import FakeFireworks
from pipeline.domain.platform import (
    JobState,
    JobStatus,
    NotFound,
    PlatformError,
)
from pipeline.platforms.fireworks.metrics import parse_metrics
from pipeline.platforms.fireworks.platform import FireworksPlatform
from tests.pipeline.fireworks_support import ACCT, Clock, request, seed_datasets


async def test_create_job_sends_the_plan_and_is_idempotent(
    fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform]
) -> None:
    await seed_datasets(fake)
    first = await make_platform().training.create(request("sftbot-r1-c1"))
    assert first.job_id == "sftbot-r1-c1" and first.state is JobState.PENDING
    second = await make_platform().training.create(request("sftbot-r1-c1"))  # a restart re-issues the create
    assert second.job_id == "sftbot-r1-c1"
    assert list(fake.jobs) == ["sftbot-r1-c1"]
    creates = fake.calls("POST", r"/supervisedFineTuningJobs$")
    assert [r.status for r in creates] == [200, 409]
    sent = creates[0]
    assert sent.query == {"supervisedFineTuningJobId": "sftbot-r1-c1"}
    assert sent.json == {
        "dataset": f"accounts/{ACCT}/datasets/sftbot-r1-train",
        "baseModel": "accounts/fireworks/models/qwen3-8b",
        "evaluationDataset": f"accounts/{ACCT}/datasets/sftbot-r1-test",
        "evalAutoCarveout": False,
        "epochs": 2,
        "loraRank": 16,
        "learningRate": 1e-4,
        "outputModel": "sftbot-r1-c1",
        "displayName": "candidate sftbot-r1-c1",
    }


async def test_without_eval_dataset_the_platform_default_applies(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    await seed_datasets(fake)
    await platform.training.create(request("sftbot-r1-c2", eval_dataset=None))
    body = fake.calls("POST", r"/supervisedFineTuningJobs$")[0].json
    assert "evaluationDataset" not in body and "evalAutoCarveout" not in body


async def test_job_walks_through_states_with_progress_and_cost(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    await seed_datasets(fake)
    await platform.training.create(request("sftbot-r1-c1"))
    seen: list[JobStatus] = []
    for _ in range(12):  # the job takes 10 s on the fake clock; look every 1 s
        seen.append(await platform.training.get("sftbot-r1-c1"))
        fake.clock.advance(1.0)
    raw = [s.raw_state for s in seen]
    assert raw[0] == "JOB_STATE_CREATING" and "JOB_STATE_PENDING" in raw and "JOB_STATE_WRITING_RESULTS" in raw
    assert [s.state for s in seen if s.raw_state == "JOB_STATE_RUNNING"] and seen[-1].state is JobState.COMPLETED
    states = [s.state for s in seen]
    assert states == sorted(states, key=[JobState.PENDING, JobState.RUNNING, JobState.COMPLETED].index)
    progress = [s.progress for s in seen]
    assert progress == sorted(progress) and 0 < progress[4] < 100 and progress[-1] == 100
    assert seen[-1].epoch == 1.0  # Fireworks counts epochs from 0
    assert seen[-1].cost_usd is not None and seen[-1].cost_usd > 0
    assert seen[-1].model == f"accounts/{ACCT}/models/sftbot-r1-c1"
    assert all(s.model is None for s in seen[:-1] if s.state is not JobState.COMPLETED)
    assert f"accounts/{ACCT}/models/sftbot-r1-c1" in fake.models  # the output model now exists


async def test_failed_job_carries_the_platform_message(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    await seed_datasets(fake)
    fake.fail_lr_above = 1e-3
    fake.fail_jobs["sftbot-r1-c2"] = "CUDA out of memory"
    await platform.training.create(request("sftbot-r1-c1", lr=5e-3))
    await platform.training.create(request("sftbot-r1-c2"))
    fake.clock.advance(10)
    diverged, oom = await platform.training.get("sftbot-r1-c1"), await platform.training.get("sftbot-r1-c2")
    assert diverged.state is JobState.FAILED and diverged.raw_state == "JOB_STATE_FAILED"
    assert diverged.message is not None and "learning rate 0.005 is too high" in diverged.message
    assert oom.state is JobState.FAILED and oom.message == "CUDA out of memory"
    assert diverged.model is None


@pytest.mark.parametrize(
    ("raw", "state", "note"),
    [
        ("JOB_STATE_VALIDATING", JobState.PENDING, None),
        ("JOB_STATE_RE_QUEUEING", JobState.PENDING, None),
        ("JOB_STATE_WRITING_RESULTS", JobState.RUNNING, None),
        ("JOB_STATE_PAUSED", JobState.RUNNING, "paused"),
        ("JOB_STATE_CANCELLING", JobState.RUNNING, "being cancelled"),
        ("JOB_STATE_EARLY_STOPPED", JobState.COMPLETED, None),
        ("JOB_STATE_EXPIRED", JobState.FAILED, "expired"),
        ("JOB_STATE_DELETING_CLEANING_UP", JobState.FAILED, "deleted"),
        ("JOB_STATE_DELETED", JobState.FAILED, "deleted"),  # in the API's enum, not SDK 1.2.30's: terminal
        ("JOB_STATE_ARCHIVED", JobState.FAILED, "archived"),
        ("JOB_STATE_CANCELLED", JobState.CANCELLED, None),
        ("JOB_STATE_SOMETHING_NEW", JobState.RUNNING, "unknown job state"),
    ],
)
async def test_raw_states_map_to_job_states(
    fake: FakeFireworks, platform: FireworksPlatform, raw: str, state: JobState, note: str | None
) -> None:
    await seed_datasets(fake)
    await platform.training.create(request("sftbot-r1-c1"))
    fake.forced_job_states["sftbot-r1-c1"] = raw
    status = await platform.training.get("sftbot-r1-c1")
    assert (status.state, status.raw_state) == (state, raw)
    if note is None:
        assert state is JobState.CANCELLED or status.message is None
    else:
        assert status.message is not None and note in status.message


async def test_get_job_unknown_is_not_found(platform: FireworksPlatform) -> None:
    with pytest.raises(NotFound, match="sftbot-nope"):
        await platform.training.get("sftbot-nope")


async def test_cancel_only_what_the_bot_created(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    await seed_datasets(fake)
    await platform.training.create(request("sftbot-r1-c1"))
    fake.clock.advance(3)
    cancelled = await platform.training.cancel("sftbot-r1-c1")
    assert cancelled.state is JobState.CANCELLED and fake.job_state("sftbot-r1-c1") == "JOB_STATE_CANCELLED"
    assert (await platform.training.cancel("sftbot-r1-c1")).state is JobState.CANCELLED  # twice is fine

    before = len(fake.requests)
    with pytest.raises(PlatformError, match="refusing to cancel job someone-elses-job"):
        await platform.training.cancel("someone-elses-job")
    assert len(fake.requests) == before  # refused locally, nothing sent

    await platform.training.create(request("sftbot-r1-c2"))
    fake.clock.advance(10)
    done = await platform.training.cancel("sftbot-r1-c2")  # finished before the cancel arrived
    assert done.state is JobState.COMPLETED


async def test_metrics_are_parsed_and_kept_and_pick_a_clear_winner(
    fake: FakeFireworks, platform: FireworksPlatform, tmp_path: Path
) -> None:
    await seed_datasets(fake)
    fake.metrics_extra_lines = ["not json at all", "[1, 2, 3]", '{"step": 0, "note": "no loss here"}', '{"loss": NaN}', "{broken"]
    grid = {"sftbot-r1-c1": (8, 1.5e-4), "sftbot-r1-c2": (16, 1e-4), "sftbot-r1-c3": (32, 5e-5)}
    for job_id, (rank, lr) in grid.items():
        await platform.training.create(request(job_id, lr=lr, rank=rank))
    assert await platform.training.metrics("sftbot-r1-c1", tmp_path / "early.jsonl") == []  # not running yet: no file
    fake.clock.advance(10)
    final_val: dict[str, float] = {}
    for job_id in grid:
        dest = tmp_path / "metrics" / f"{job_id}.jsonl"
        points = await platform.training.metrics(job_id, dest)
        assert dest.exists() and "not json at all" in dest.read_text()  # the raw file is kept as is
        train = [p for p in points if p.train_loss is not None]
        val = [p for p in points if p.val_loss is not None]
        assert len(train) == 20 and [p.step for p in train] == list(range(1, 21))
        assert [p.epoch for p in val] == [1.0, 2.0]
        assert train[-1].train_loss is not None and train[0].train_loss is not None and train[-1].train_loss < train[0].train_loss
        assert val[-1].val_loss is not None
        final_val[job_id] = val[-1].val_loss
    assert min(final_val, key=final_val.__getitem__) == "sftbot-r1-c2"


async def test_metrics_of_an_unknown_job_is_not_found(platform: FireworksPlatform, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        await platform.training.metrics("sftbot-missing", tmp_path / "m.jsonl")


def test_metrics_parser_accepts_every_known_shape() -> None:
    lines = [
        '{"step": 1, "train/loss": 2.0, "train/epoch": 0.5}',
        '{"step": 2, "data": {"loss": 1.5, "epoch": 1}}',
        '{"step": 2, "timestamp": "2026-01-01T00:00:00Z", "data": {"eval_loss": "1.25"}}',
        '{"step": 3, "validation/loss": 1.1, "epoch": 2}',
        '{"step": 4, "train/interval_loss": 9.9}',  # "interval" is not "val"
        '{"step": 5, "train/loss": true}',
        '{"step": 6, "train/loss": Infinity}',
        "",
        "garbage",
        "42",
    ]
    points = parse_metrics(lines)
    assert [(p.step, p.epoch, p.train_loss, p.val_loss) for p in points] == [
        (1, 0.5, 2.0, None),
        (2, 1.0, 1.5, None),
        (2, None, None, 1.25),
        (3, 2.0, None, 1.1),
    ]


async def test_models_are_tunable_only_sized_and_cached(
    fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform]
) -> None:
    clock = Clock()
    fake.max_page_size = 3  # force the SDK to follow nextPageToken
    platform = make_platform(clock=clock, models_ttl=600)
    models = {m.id: m for m in await platform.models.list_models()}
    assert "llama-v3p1-8b-instruct" not in models and "deepseek-v3" not in models
    assert models["qwen3-8b"].params_b == 8.2 and models["qwen3-8b"].max_context == 256000
    assert models["qwen3-8b"].name == "accounts/fireworks/models/qwen3-8b"
    assert models["qwen3p5-9b"].params_b == 9.0  # the platform gave no size: the bundled catalogue did
    lists = len(fake.calls("GET", r"/accounts/fireworks/models$"))
    assert lists >= 3

    await platform.models.list_models()
    assert (await platform.models.model_info("accounts/fireworks/models/qwen3-32b")) is not None
    assert len(fake.calls("GET", r"/accounts/fireworks/models$")) == lists  # served from the cache
    clock.t += 601
    await platform.models.list_models()
    assert len(fake.calls("GET", r"/accounts/fireworks/models$")) == 2 * lists  # expired: fetched again


async def test_model_info(platform: FireworksPlatform) -> None:
    info = await platform.models.model_info("qwen3-32b")
    assert info is not None and info.params_b == 32.8
    assert await platform.models.model_info("llama-v3p1-8b-instruct") is None  # exists but not tunable
    assert await platform.models.model_info("no-such-model") is None


async def test_model_info_falls_back_to_the_catalogue_when_offline(make_platform: Callable[..., FireworksPlatform]) -> None:
    offline = make_platform(base_url="http://127.0.0.1:9", max_retries=0, timeout=0.5)
    info = await offline.models.model_info("qwen3-8b")
    assert info is not None and info.params_b == 8.2
