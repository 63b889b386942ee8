"""FireworksPlatform against the fake Fireworks server, through the real ``fireworks-ai`` SDK."""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.platforms.base import (
    ChatMessage,
    DeploymentState,
    JobRequest,
    JobState,
    JobStatus,
    NotFound,
    Platform,
    PlatformError,
)
from pipeline.platforms.fireworks import FireworksPlatform
from pipeline.platforms.fireworks_metrics import parse_metrics
from tests.fakes.fireworks_server import FakeFireworks, Faults

ACCT = "test-acct"
CHAT_ROWS = [
    {"messages": [{"role": "user", "content": f"What is {i}+{i}?"}, {"role": "assistant", "content": str(2 * i)}]}
    for i in range(12)
]


class Clock:
    """A hand-driven clock for the platform's own caches."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def fake() -> AsyncIterator[FakeFireworks]:
    async with FakeFireworks(account=ACCT, job_seconds=10.0, deployment_seconds=0.05) as server:
        yield server


@pytest.fixture
async def make_platform(fake: FakeFireworks) -> AsyncIterator[Callable[..., FireworksPlatform]]:
    made: list[FireworksPlatform] = []

    def make(**overrides: Any) -> FireworksPlatform:
        options: dict[str, Any] = {
            "base_url": fake.base_url,
            "poll_seconds": 0.01,
            "retry_base_delay": 0.01,
            "quota_delay": 0.01,
            "chat_ready_timeout": 5.0,
            "timeout": 5.0,
        }
        options.update(overrides)
        api_key = options.pop("api_key", fake.api_key)
        platform = FireworksPlatform(api_key, ACCT, **options)
        made.append(platform)
        return platform

    yield make
    for p in made:
        await p.close()


@pytest.fixture
def platform(make_platform: Callable[..., FireworksPlatform]) -> FireworksPlatform:
    return make_platform()


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll ``check`` every 10 ms until it holds; fail after ``timeout`` seconds."""

    async def loop() -> None:
        while not await check():  # noqa: ASYNC110 (the fake's state has no event to await)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), timeout)


def request(job_id: str, *, lr: float = 1e-4, rank: int = 16, eval_dataset: str | None = "sftbot-r1-test") -> JobRequest:
    return JobRequest(
        job_id=job_id,
        base_model="qwen3-8b",
        dataset="sftbot-r1-train",
        eval_dataset=eval_dataset,
        epochs=2,
        lora_rank=rank,
        learning_rate=lr,
        output_model=job_id,
        display_name=f"candidate {job_id}",
    )


async def seed_datasets(fake: FakeFireworks) -> None:
    data = "".join(json.dumps(r) + "\n" for r in CHAT_ROWS).encode()
    fake.add_dataset("sftbot-r1-train", {"train.jsonl": data})
    fake.add_dataset("sftbot-r1-test", {"test.jsonl": data[: len(data) // 3]})


def test_implements_the_platform_protocol(platform: FireworksPlatform) -> None:
    assert isinstance(platform, Platform)


# -- datasets ----------------------------------------------------------------------------------


async def test_upload_creates_uploads_validates_and_never_twice(
    fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", CHAT_ROWS)
    info = await make_platform().upload_dataset("sftbot-r1-train", path, examples=12)
    assert info.ready and info.examples == 12 and info.name == f"accounts/{ACCT}/datasets/sftbot-r1-train"
    assert fake.datasets["sftbot-r1-train"].files == {"train.jsonl": path.read_bytes()}

    # A restarted bot uploads the same id again: the create answers 409, nothing is re-uploaded.
    again = await make_platform().upload_dataset("sftbot-r1-train", path, examples=12)
    assert again.ready
    assert fake.create_counts("datasets") == {"sftbot-r1-train": 1}
    assert [r.status for r in fake.calls("POST", r"/datasets$")] == [200, 409]
    assert len(fake.calls("POST", r":upload$")) == 1
    assert len(fake.calls("POST", r":validateUpload$")) == 1


async def test_upload_resumes_a_dataset_left_uploading(fake: FakeFireworks, platform: FireworksPlatform, tmp_path: Path) -> None:
    fake.add_dataset("sftbot-r2-train", {}, ready=False)  # created, then the bot crashed
    path = write_jsonl(tmp_path / "train.jsonl", CHAT_ROWS)
    info = await platform.upload_dataset("sftbot-r2-train", path, examples=12)
    assert info.ready and fake.datasets["sftbot-r2-train"].files == {"train.jsonl": path.read_bytes()}


async def test_upload_counts_examples_when_not_told(fake: FakeFireworks, platform: FireworksPlatform, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "eval.jsonl", CHAT_ROWS[:5])
    info = await platform.upload_dataset("sftbot-r2-eval", path, examples=0)
    assert info.examples == 5
    assert fake.calls("POST", r"/datasets$")[0].json["dataset"]["exampleCount"] == "5"


async def test_large_upload_goes_through_the_signed_url(
    fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "big.jsonl", CHAT_ROWS)
    info = await make_platform(direct_upload_limit=10).upload_dataset("sftbot-r3-train", path, examples=12)
    assert info.ready
    assert fake.datasets["sftbot-r3-train"].files == {"big.jsonl": path.read_bytes()}
    assert not fake.calls("POST", r":upload$")
    # The fake refuses a signed PUT that carries an Authorization header, so this also proves
    # the API key never went to storage.
    assert [r.status for r in fake.calls("PUT", r"^/signed/upload/")] == [200]


async def test_check_dataset_names_the_problem(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    with pytest.raises(NotFound, match=f"dataset accounts/{ACCT}/datasets/nope not found"):
        await platform.check_dataset("nope")
    fake.add_dataset("half", {"a.jsonl": b"{}\n"}, ready=False)
    with pytest.raises(PlatformError, match=f"dataset accounts/{ACCT}/datasets/half is still uploading"):
        await platform.check_dataset(f"accounts/{ACCT}/datasets/half")
    fake.add_dataset("holdout", {"a.jsonl": b"{}\n{}\n{}\n"})
    for ref in ("holdout", f"accounts/{ACCT}/datasets/holdout"):
        info = await platform.check_dataset(ref)
        assert info.ready and info.examples == 3 and info.id == "holdout"
    with pytest.raises(PlatformError, match="neither a dataset id"):
        await platform.check_dataset("datasets/holdout")


async def test_stage_downloads_once_and_concatenates_shards(
    fake: FakeFireworks, platform: FireworksPlatform, tmp_path: Path
) -> None:
    fake.add_dataset("user-data", {"b.jsonl": b'{"n": 2}\n', "a.jsonl": b'{"n": 1}'})  # a.jsonl lacks a final newline
    dest = tmp_path / "staged" / "user-data.jsonl"
    assert await platform.stage_dataset("user-data", dest) == dest
    assert dest.read_bytes() == b'{"n": 1}\n{"n": 2}\n'
    seen = len(fake.requests)
    assert await platform.stage_dataset(f"accounts/{ACCT}/datasets/user-data", dest) == dest
    assert len(fake.requests) == seen  # cached: not a single request


# -- jobs ------------------------------------------------------------------------------------


async def test_create_job_sends_the_plan_and_is_idempotent(
    fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform]
) -> None:
    await seed_datasets(fake)
    first = await make_platform().create_job(request("sftbot-r1-c1"))
    assert first.job_id == "sftbot-r1-c1" and first.state is JobState.PENDING
    second = await make_platform().create_job(request("sftbot-r1-c1"))  # a restart re-issues the create
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
    await platform.create_job(request("sftbot-r1-c2", eval_dataset=None))
    body = fake.calls("POST", r"/supervisedFineTuningJobs$")[0].json
    assert "evaluationDataset" not in body and "evalAutoCarveout" not in body


async def test_job_walks_through_states_with_progress_and_cost(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    await seed_datasets(fake)
    await platform.create_job(request("sftbot-r1-c1"))
    seen: list[JobStatus] = []
    for _ in range(12):  # the job takes 10 s on the fake clock; look every 1 s
        seen.append(await platform.get_job("sftbot-r1-c1"))
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
    await platform.create_job(request("sftbot-r1-c1", lr=5e-3))
    await platform.create_job(request("sftbot-r1-c2"))
    fake.clock.advance(10)
    diverged, oom = await platform.get_job("sftbot-r1-c1"), await platform.get_job("sftbot-r1-c2")
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
        ("JOB_STATE_CANCELLED", JobState.CANCELLED, None),
        ("JOB_STATE_SOMETHING_NEW", JobState.RUNNING, "unknown job state"),
    ],
)
async def test_raw_states_map_to_job_states(
    fake: FakeFireworks, platform: FireworksPlatform, raw: str, state: JobState, note: str | None
) -> None:
    await seed_datasets(fake)
    await platform.create_job(request("sftbot-r1-c1"))
    fake.forced_job_states["sftbot-r1-c1"] = raw
    status = await platform.get_job("sftbot-r1-c1")
    assert (status.state, status.raw_state) == (state, raw)
    if note is None:
        assert state is JobState.CANCELLED or status.message is None
    else:
        assert status.message is not None and note in status.message


async def test_get_job_unknown_is_not_found(platform: FireworksPlatform) -> None:
    with pytest.raises(NotFound, match="sftbot-nope"):
        await platform.get_job("sftbot-nope")


async def test_cancel_only_what_the_bot_created(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    await seed_datasets(fake)
    await platform.create_job(request("sftbot-r1-c1"))
    fake.clock.advance(3)
    cancelled = await platform.cancel_job("sftbot-r1-c1")
    assert cancelled.state is JobState.CANCELLED and fake.job_state("sftbot-r1-c1") == "JOB_STATE_CANCELLED"
    assert (await platform.cancel_job("sftbot-r1-c1")).state is JobState.CANCELLED  # twice is fine

    before = len(fake.requests)
    with pytest.raises(PlatformError, match="refusing to cancel job someone-elses-job"):
        await platform.cancel_job("someone-elses-job")
    assert len(fake.requests) == before  # refused locally, nothing sent

    await platform.create_job(request("sftbot-r1-c2"))
    fake.clock.advance(10)
    done = await platform.cancel_job("sftbot-r1-c2")  # finished before the cancel arrived
    assert done.state is JobState.COMPLETED


# -- metrics -----------------------------------------------------------------------------------


async def test_metrics_are_parsed_and_kept_and_pick_a_clear_winner(
    fake: FakeFireworks, platform: FireworksPlatform, tmp_path: Path
) -> None:
    await seed_datasets(fake)
    fake.metrics_extra_lines = ["not json at all", "[1, 2, 3]", '{"step": 0, "note": "no loss here"}', '{"loss": NaN}', "{broken"]
    grid = {"sftbot-r1-c1": (8, 1.5e-4), "sftbot-r1-c2": (16, 1e-4), "sftbot-r1-c3": (32, 5e-5)}
    for job_id, (rank, lr) in grid.items():
        await platform.create_job(request(job_id, lr=lr, rank=rank))
    assert await platform.job_metrics("sftbot-r1-c1", tmp_path / "early.jsonl") == []  # not running yet: no file
    fake.clock.advance(10)
    final_val: dict[str, float] = {}
    for job_id in grid:
        dest = tmp_path / "metrics" / f"{job_id}.jsonl"
        points = await platform.job_metrics(job_id, dest)
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
        await platform.job_metrics("sftbot-missing", tmp_path / "m.jsonl")


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


# -- models ------------------------------------------------------------------------------------


async def test_models_are_tunable_only_sized_and_cached(
    fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform]
) -> None:
    clock = Clock()
    fake.max_page_size = 3  # force the SDK to follow nextPageToken
    platform = make_platform(clock=clock, models_ttl=600)
    models = {m.id: m for m in await platform.list_models()}
    assert "llama-v3p1-8b-instruct" not in models and "deepseek-v3" not in models
    assert models["qwen3-8b"].params_b == 8.2 and models["qwen3-8b"].max_context == 256000
    assert models["qwen3-8b"].name == "accounts/fireworks/models/qwen3-8b"
    assert models["qwen3p5-9b"].params_b == 9.0  # the platform gave no size: the bundled catalogue did
    lists = len(fake.calls("GET", r"/accounts/fireworks/models$"))
    assert lists >= 3

    await platform.list_models()
    assert (await platform.model_info("accounts/fireworks/models/qwen3-32b")) is not None
    assert len(fake.calls("GET", r"/accounts/fireworks/models$")) == lists  # served from the cache
    clock.t += 601
    await platform.list_models()
    assert len(fake.calls("GET", r"/accounts/fireworks/models$")) == 2 * lists  # expired: fetched again


async def test_model_info(platform: FireworksPlatform) -> None:
    info = await platform.model_info("qwen3-32b")
    assert info is not None and info.params_b == 32.8
    assert await platform.model_info("llama-v3p1-8b-instruct") is None  # exists but not tunable
    assert await platform.model_info("no-such-model") is None


async def test_model_info_falls_back_to_the_catalogue_when_offline(make_platform: Callable[..., FireworksPlatform]) -> None:
    offline = make_platform(base_url="http://127.0.0.1:9", max_retries=0, timeout=0.5)
    info = await offline.model_info("qwen3-8b")
    assert info is not None and info.params_b == 8.2


# -- deployments and chat -----------------------------------------------------------------------


async def completed_model(fake: FakeFireworks, platform: FireworksPlatform, job_id: str = "sftbot-r1-final") -> str:
    await seed_datasets(fake)
    await platform.create_job(request(job_id))
    fake.clock.advance(10)
    status = await platform.get_job(job_id)
    assert status.model is not None
    return status.model


async def test_deploy_chat_snippet_and_teardown(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    model = await completed_model(fake, platform)
    fake.cold_start_errors = 2  # a fresh deployment answers 503 twice before it serves
    created = await platform.create_deployment("sftbot-r1-dep", model)
    assert created.state is DeploymentState.CREATING
    again = await platform.create_deployment("sftbot-r1-dep", model)  # a resume: read back, not created
    assert again.deployment_id == "sftbot-r1-dep" and fake.create_counts("deployments") == {"sftbot-r1-dep": 1}
    body = fake.calls("POST", r"/deployments$")[0]
    assert body.query == {"deploymentId": "sftbot-r1-dep"}
    assert body.json is not None and body.json["baseModel"] == model and body.json["deploymentShape"] == "default"

    async def ready() -> bool:
        return (await platform.get_deployment("sftbot-r1-dep")).state is DeploymentState.READY

    await until(ready)
    status = await platform.get_deployment("sftbot-r1-dep")
    assert status.model == model
    assert status.model_string == f"{model}#accounts/{ACCT}/deployments/sftbot-r1-dep"
    assert status.endpoint == f"{fake.base_url}/v1"

    reply = await platform.chat(status.model_string, [ChatMessage(role="user", content="Say OK.")], max_tokens=16)
    assert reply == "echo: Say OK."
    assert [r.status for r in fake.calls("POST", r"/chat/completions$")] == [503, 503, 200]

    snippet = platform.snippet(status)
    assert status.model_string in snippet.code and 'os.environ["FIREWORKS_API_KEY"]' in snippet.code
    assert fake.api_key not in snippet.code and snippet.env == ["FIREWORKS_API_KEY"]
    compile(snippet.code, "snippet.py", "exec")

    with pytest.raises(PlatformError, match="refusing to delete deployment prod-dep"):
        await platform.delete_deployment("prod-dep")
    gone = await platform.delete_deployment("sftbot-r1-dep")
    assert gone.state in (DeploymentState.DELETING, DeploymentState.DELETED)
    assert fake.calls("DELETE", r"/deployments/sftbot-r1-dep$")[0].query.get("ignoreChecks") == "true"


async def test_default_snippet_targets_the_public_api(
    make_platform: Callable[..., FireworksPlatform], fake: FakeFireworks
) -> None:
    platform = make_platform(base_url=None)
    status = await make_platform().create_deployment("sftbot-r9-dep", "accounts/fireworks/models/qwen3-8b")
    code = platform.snippet(status).code
    assert "base_url" not in code and status.model_string in code
    assert platform.endpoint == "https://api.fireworks.ai/inference/v1"


async def test_inference_goes_to_its_own_root(fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform]) -> None:
    # The base-URL gotcha: chat must reach {inference}/v1/chat/completions, not the control root.
    platform = make_platform(inference_url=f"{fake.base_url}/inference/v1")
    fake.chat_responder = lambda model, messages: "<think>2+2 is 4</think>\n4"
    reply = await platform.chat("accounts/fireworks/models/qwen3-8b", [ChatMessage(role="user", content="2+2?")])
    assert reply == "4"  # the reasoning block is not the answer
    assert [r.path for r in fake.calls("POST", r"chat/completions$")] == ["/inference/v1/chat/completions"]
    assert platform.endpoint == f"{fake.base_url}/inference/v1"


async def test_chat_with_an_unknown_model_fails_fast(platform: FireworksPlatform) -> None:
    with pytest.raises(PlatformError, match="HTTP 404") as err:
        await platform.chat("accounts/test-acct/models/nope", [ChatMessage(role="user", content="hi")])
    assert "Model not found" in str(err.value)


async def test_get_deployment_unknown_is_not_found(platform: FireworksPlatform) -> None:
    with pytest.raises(NotFound):
        await platform.get_deployment("sftbot-none")


# -- faults, quota, secrets -------------------------------------------------------------------


async def test_a_lost_create_response_is_reconciled_not_duplicated(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    await seed_datasets(fake)
    # The create takes effect, then the connection drops before the answer arrives.
    fake.faults = Faults(drop_rate=1.0, after_commit=1.0, limit=1, scope=f"/v1/accounts/{ACCT}/supervisedFineTuningJobs")
    status = await platform.create_job(request("sftbot-r1-c1"))
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
    await platform.upload_dataset("sftbot-r1-train", path, examples=12)
    await platform.upload_dataset("sftbot-r1-test", path, examples=12)
    grid = {"sftbot-r1-c1": (8, 1.5e-4), "sftbot-r1-c2": (16, 1e-4), "sftbot-r1-c3": (32, 5e-5)}
    await asyncio.gather(*(platform.create_job(request(j, lr=lr, rank=r)) for j, (r, lr) in grid.items()))

    async def all_done() -> bool:
        fake.clock.advance(1.0)
        statuses = await asyncio.gather(*(platform.get_job(j) for j in grid))
        return all(s.state.terminal for s in statuses)

    await until(all_done, timeout=10)
    points = await platform.job_metrics("sftbot-r1-c2", tmp_path / "m.jsonl")
    assert points
    model = (await platform.get_job("sftbot-r1-c2")).model
    assert model is not None
    await platform.create_deployment("sftbot-r1-dep", model)

    assert sorted(fake.jobs) == sorted(grid)
    assert all(n == 1 for n in fake.create_counts("supervisedFineTuningJobs").values())
    assert fake.create_counts("datasets") == {"sftbot-r1-train": 1, "sftbot-r1-test": 1}
    assert fake.create_counts("deployments") == {"sftbot-r1-dep": 1}
    assert fake.max_active_jobs == 3
    faults = [r.fault for r in fake.requests if r.fault]
    assert "error" in faults and "drop" in faults  # the faults really happened


async def test_quota_exhaustion_backs_off_then_gives_up_retryably(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    await seed_datasets(fake)
    fake.job_quota = 1
    await platform.create_job(request("sftbot-r1-c1"))
    with pytest.raises(PlatformError, match="quota") as err:
        await platform.create_job(request("sftbot-r1-c2"))
    assert err.value.retryable
    refused = [r for r in fake.calls("POST", r"/supervisedFineTuningJobs$") if r.status == 429]
    assert len(refused) == 2  # one quota retry, then the runner decides (no retry storm)
    assert list(fake.jobs) == ["sftbot-r1-c1"] and fake.max_active_jobs == 1


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
    info = await platform.check_dataset("slow-data")
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
        await platform.get_job("sftbot-r1-c1")
    assert err.value.retryable
    assert len(fake.calls("GET", r"/supervisedFineTuningJobs/")) == 4


async def test_an_auth_error_never_contains_the_key(fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform]) -> None:
    secret = "fw-SECRET-do-not-print-42"
    fake.echo_bad_key_in_401 = True  # even a server that echoes the key must not leak it
    platform = make_platform(api_key=secret)
    with pytest.raises(PlatformError) as err:
        await platform.check_dataset("anything")
    message = str(err.value)
    assert "401" in message and "FIREWORKS_API_KEY" in message and "invalid API key" in message
    assert secret not in message and secret not in repr(err.value)
    assert not err.value.retryable
    # Nor in a logged traceback: the SDK's exception (whose body echoed the key) is not chained.
    assert secret not in "".join(traceback.format_exception(err.value))
    with pytest.raises(PlatformError) as chat_err:
        await platform.chat("accounts/fireworks/models/qwen3-8b", [ChatMessage(role="user", content="hi")])
    assert secret not in str(chat_err.value) and "401" in str(chat_err.value)


async def test_constructor_rejects_missing_credentials() -> None:
    with pytest.raises(PlatformError, match="FIREWORKS_API_KEY"):
        FireworksPlatform("", ACCT)
    with pytest.raises(PlatformError, match="FIREWORKS_ACCOUNT_ID"):
        FireworksPlatform("key", "")
