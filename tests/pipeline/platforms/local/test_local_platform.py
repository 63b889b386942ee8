"""The local platform for real: a tiny Llama trained by the trainer subprocess on this machine.

The tiny model (4 layers, hidden 128, ~0.85M parameters, byte-level BPE tokenizer trained on
the fly) is built in-process; nothing is downloaded. One training job is shared by the
tests that need a trained adapter (module fixture), so the module stays well under 90 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.local

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")
psutil = pytest.importorskip("psutil")

from pipeline.dataset.demo_data import generate, render  # noqa: E402
from pipeline.domain.platform import ChatMessage, DeploymentState, JobRequest, JobState, JobStatus  # noqa: E402
from pipeline.platforms.local.encode import encode, load_rows, mask_by_generation, mask_by_prefix  # noqa: E402
from pipeline.platforms.local.jobs import LaunchRecord, TrainerStatus  # noqa: E402
from pipeline.platforms.local.loss import evaluate  # noqa: E402
from pipeline.platforms.local.models import TINY_MODEL_ID  # noqa: E402
from pipeline.platforms.local.platform import LocalPlatform  # noqa: E402
from pipeline.platforms.local.server import EndpointConfig  # noqa: E402
from tests.pipeline.platforms.local.tiny_model import tiny_model  # noqa: E402

os.environ["HF_HUB_OFFLINE"] = "1"


def _write_data(root: Path) -> tuple[str, str]:
    """Two datasets as if uploaded to the platform (it reads only its own datasets folder)."""
    rows = generate(96, seed=11)
    (root / "datasets").mkdir(parents=True, exist_ok=True)
    (root / "datasets" / "train-data.jsonl").write_text(render(rows[:80]), encoding="utf-8")
    (root / "datasets" / "val-data.jsonl").write_text(render(rows[80:]), encoding="utf-8")
    return "train-data", "val-data"


def _request(job_id: str, train: str, val: str, *, epochs: int = 3, lr: float = 3e-3) -> JobRequest:
    return JobRequest(
        job_id=job_id,
        base_model=TINY_MODEL_ID,
        dataset=train,
        eval_dataset=val,
        epochs=epochs,
        lora_rank=8,
        learning_rate=lr,
        output_model=job_id,
    )


async def _wait(platform: LocalPlatform, job_id: str, *, until: Any, timeout: float = 120) -> JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = await platform.training.get(job_id)
        if until(status):
            return status
        assert time.monotonic() < deadline, f"timed out waiting on {job_id}: {status}"
        await asyncio.sleep(0.05)


def _launch(root: Path, job_id: str) -> LaunchRecord:
    return LaunchRecord.model_validate_json((root / "jobs" / job_id / "launch.json").read_text())


def _trainer(root: Path, job_id: str) -> TrainerStatus | None:
    path = root / "jobs" / job_id / "status.json"
    with contextlib.suppress(FileNotFoundError, ValueError):
        return TrainerStatus.model_validate_json(path.read_text())
    return None


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, JobStatus, JobStatus]]:
    """One real job on the tiny model; yields (root, first create's status, final status)."""
    root = tmp_path_factory.mktemp("local")
    train, val = _write_data(root)

    async def run() -> tuple[JobStatus, JobStatus]:
        platform = LocalPlatform(root, port=0)
        try:
            first = await platform.training.create(_request("job-a", train, val))
            again = await platform.training.create(_request("job-a", train, val))  # idempotent: same job
            assert again.job_id == first.job_id
            final = await _wait(platform, "job-a", until=lambda s: s.state.terminal)
            return first, final
        finally:
            await platform.close()

    first, final = asyncio.run(run())
    yield root, first, final


def test_assistant_mask_matches_prompt_prefix_method(tmp_path: Path) -> None:
    _, tok = tiny_model(tmp_path)
    conversations = [row["messages"] for row in generate(5, seed=3)]
    conversations.append(
        [  # multi-turn, no system message
            {"role": "user", "content": "Lea Kim, 30, works as a chef in Rome."},
            {"role": "assistant", "content": '{"name": "Lea Kim"}'},
            {"role": "user", "content": "And her age?"},
            {"role": "assistant", "content": "30"},
        ]
    )
    for messages in conversations:
        by_template, by_prefix = mask_by_generation(tok, messages), mask_by_prefix(tok, messages)
        assert by_template == by_prefix
        assert encode(tok, messages) == by_template  # the template has generation blocks: that path is used
        kept = tok.decode([t for t, m in zip(by_template.input_ids, by_template.mask, strict=False) if m])
        expected = "".join(m["content"] + "<|im_end|>\n" for m in messages if m["role"] == "assistant")
        assert kept == expected  # only the replies and their end marker are trained on
        assert 0 < sum(by_template.mask) < len(by_template.mask)


def test_training_lowers_validation_loss(trained: tuple[Path, JobStatus, JobStatus]) -> None:
    root, first, final = trained
    assert first.state in (JobState.PENDING, JobState.RUNNING)
    assert final.state is JobState.COMPLETED, final.message
    assert final.progress == 100.0 and final.model == "job-a"
    model, tok = tiny_model(root)
    base_val = evaluate(model, load_rows(root / "datasets" / "val-data.jsonl", tok, 512), tok.pad_token_id, "cpu", 16)
    rows = [json.loads(line) for line in (root / "jobs" / "job-a" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1.0, 2.0, 3.0]
    assert len([r for r in rows if r["kind"] == "step"]) == 15  # 80 rows / batch 16 x 3 epochs
    assert base_val is not None and final.val_loss is not None
    assert final.val_loss < 0.9 * base_val, (base_val, [r["val_loss"] for r in epochs])
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"]
    assert _launch(root, "job-a").attempts == 1  # the second create did not start it again
    assert (root / "jobs" / "job-a" / "adapter" / "adapter_config.json").exists()


async def test_artifacts_metrics_and_throughput_survive_a_new_instance(
    trained: tuple[Path, JobStatus, JobStatus], tmp_path: Path
) -> None:
    root, _, _ = trained
    platform = LocalPlatform(root, port=0)
    try:
        status = await platform.training.get("job-a")
        assert status.state is JobState.COMPLETED
        art = platform.artifacts("job-a")
        assert art.adapter is not None and art.base_model == TINY_MODEL_ID
        points = await platform.training.metrics("job-a", tmp_path / "m.jsonl")
        assert (tmp_path / "m.jsonl").read_text() == art.metrics.read_text()
        assert [p.val_loss for p in points if p.val_loss is not None][-1] == status.val_loss
        sample = root / "datasets" / "train-data.jsonl"
        measured = await platform.training.throughput(TINY_MODEL_ID, sample=sample)  # a few timed steps in a child process
        assert measured is not None and not measured.cached
        assert 0 < measured.tokens_per_second_low <= measured.tokens_per_second_high and measured.startup_seconds > 0
        again = await LocalPlatform(root, port=0).training.throughput(TINY_MODEL_ID, sample=sample)  # another instance: the cache
        assert again is not None and again.cached and again.tokens_per_second_low == measured.tokens_per_second_low
        assert await platform.training.throughput("nope", sample=sample) is None  # unknown model: no estimate, no error
        again = await platform.training.create(_request("job-a", "train-data", "val-data"))
        assert again.state is JobState.COMPLETED
        info = await platform.models.model_info(TINY_MODEL_ID)
        assert info is not None and info.params_b is not None and 0.0008 < info.params_b < 0.0009
    finally:
        await platform.close()


def test_merged_model_gives_the_same_logits_as_adapter_on_base(trained: tuple[Path, JobStatus, JobStatus]) -> None:
    from peft import PeftModel

    from pipeline.platforms.local.serve import load_model

    root, _, _ = trained
    adapter = root / "jobs" / "job-a" / "adapter"
    base, tok = tiny_model(root)
    unmerged = PeftModel.from_pretrained(base, str(adapter)).eval()
    merged = load_model("m", root / "models" / TINY_MODEL_ID, adapter, "cpu")
    ids = torch.tensor([tok.apply_chat_template(generate(1, seed=5)[0]["messages"], return_dict=True)["input_ids"]])
    with torch.no_grad():
        a, b = unmerged(input_ids=ids).logits, merged.model(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    assert not any("lora" in name for name, _ in merged.model.named_parameters())


async def test_batched_generate_equals_one_by_one(trained: tuple[Path, JobStatus, JobStatus]) -> None:
    root, _, _ = trained
    platform = LocalPlatform(root, port=0)
    try:
        prompts = [[ChatMessage.model_validate(m) for m in row["messages"][:-1]] for row in generate(6, seed=21)]
        prompts[2] = [ChatMessage(role="user", content="Hi")]  # a much shorter prompt: real left padding
        batched = await platform.inference.generate("job-a", prompts, max_tokens=24)
        single = [(await platform.inference.generate("job-a", [p], max_tokens=24))[0] for p in prompts]
        assert batched == single
        assert len(batched) == len(prompts)
    finally:
        await platform.close()


async def test_endpoint_answers_the_openai_client_and_the_snippet_runs(trained: tuple[Path, JobStatus, JobStatus]) -> None:
    from openai import AsyncOpenAI

    root, _, _ = trained
    platform = LocalPlatform(root, port=0)
    try:
        dep = await platform.serving.create("dep-a", "job-a")
        assert dep.state is DeploymentState.READY, dep.message
        assert dep.endpoint.startswith("http://127.0.0.1:") and dep.endpoint.endswith("/v1")
        assert dep.model_string == "dep-a"
        assert (await platform.serving.create("dep-a", "job-a")).endpoint == dep.endpoint  # idempotent
        messages = [ChatMessage.model_validate(m) for m in generate(1, seed=8)[0]["messages"][:-1]]
        client = AsyncOpenAI(base_url=dep.endpoint, api_key="local")
        reply = await client.chat.completions.create(
            model=dep.model_string, max_tokens=16, temperature=0, messages=[m.model_dump() for m in messages]
        )
        text = reply.choices[0].message.content or ""  # greedy: the platform's own answer, unstripped
        assert text.strip() == await platform.inference.chat("dep-a", messages, max_tokens=16)
        assert reply.usage is not None and reply.usage.prompt_tokens > 0
        await client.close()

        snippet = platform.serving.snippet(dep)
        assert dep.endpoint in snippet.code and 'api_key="local"' in snippet.code
        out = io.StringIO()
        code = compile(snippet.code, "snippet.py", "exec")
        # The snippet is synchronous: run it in a thread so this loop keeps serving it.
        await asyncio.to_thread(exec, code, {"__name__": "__main__", "print": lambda *a: print(*a, file=out)})
        # Its request is a held-out prompt of the job's own validation data: the task it was tuned for.
        example = [ChatMessage.model_validate(m) for m in platform.example_prompt(dep.model)]
        assert example[-1].content == generate(96, seed=11)[80]["messages"][1]["content"]  # val-data's first row
        assert out.getvalue().strip() == await platform.inference.chat("dep-a", example, max_tokens=256)

        deleted = await platform.serving.delete("dep-a")
        assert deleted.state is DeploymentState.DELETED
    finally:
        await platform.close()


async def test_cap_queues_jobs_and_cancel_kills_the_trainer(tmp_path: Path) -> None:
    train, val = _write_data(tmp_path)
    platform = LocalPlatform(tmp_path, port=0, max_parallel=1)
    try:
        first = await platform.training.create(_request("job-1", train, val, epochs=50))
        second = await platform.training.create(_request("job-2", train, val, epochs=50))
        assert first.state is JobState.RUNNING and second.state is JobState.PENDING  # the cap holds it back
        pid = _launch(tmp_path, "job-1").pid
        assert pid is not None and psutil.pid_exists(pid)
        cancelled = await platform.training.cancel("job-1")
        assert cancelled.state is JobState.CANCELLED
        assert not psutil.pid_exists(pid)
        started = await _wait(platform, "job-2", until=lambda s: s.state is JobState.RUNNING)  # slot freed
        assert started.state is JobState.RUNNING
        pid2 = _launch(tmp_path, "job-2").pid
        assert (await platform.training.cancel("job-2")).state is JobState.CANCELLED
        assert pid2 is not None and not psutil.pid_exists(pid2)
        assert (await platform.training.get("job-1")).state is JobState.CANCELLED
    finally:
        await platform.close()


async def test_a_trainer_that_dies_under_a_running_bot_is_failed_clearly(tmp_path: Path) -> None:
    train, val = _write_data(tmp_path)
    platform = LocalPlatform(tmp_path, port=0)
    try:
        await platform.training.create(_request("job-d", train, val))
        pid = _launch(tmp_path, "job-d").pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # e.g. the OOM killer; the bot itself keeps running
        failed = await _wait(platform, "job-d", until=lambda s: s.state.terminal)
        assert failed.state is JobState.FAILED
        assert failed.message is not None and "killed by signal 9" in failed.message and "train.log" in failed.message
        assert _launch(tmp_path, "job-d").attempts == 1  # a crash is not retried
    finally:
        await platform.close()


async def test_job_interrupted_by_a_restart_is_rerun_once(tmp_path: Path) -> None:
    train, val = _write_data(tmp_path)
    old = LocalPlatform(tmp_path, port=0)
    await old.training.create(_request("job-r", train, val, epochs=6))
    # Wait until it is mid-training (at least one step done, far from the last).
    deadline = time.monotonic() + 120
    while (status := _trainer(tmp_path, "job-r")) is None or status.step < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await old.close()  # the bot goes away...
    pid = _launch(tmp_path, "job-r").pid
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)  # ...and so does its trainer (a machine/container restart)
    psutil.wait_procs([psutil.Process(pid)], timeout=10)
    assert status.step < status.total_steps

    new = LocalPlatform(tmp_path, port=0)
    try:
        resumed = await new.training.get("job-r")
        assert resumed.state in (JobState.PENDING, JobState.RUNNING)
        assert resumed.message is not None and "restarted" in resumed.message
        final = await _wait(new, "job-r", until=lambda s: s.state.terminal)
        assert final.state is JobState.COMPLETED, final.message
        assert _launch(tmp_path, "job-r").attempts == 2
        trainer = _trainer(tmp_path, "job-r")
        assert trainer is not None and trainer.attempt == 2
        assert final.message is not None and "attempt 2" in final.message
    finally:
        await new.close()


async def test_unknown_model_and_dataset_are_refused_clearly(tmp_path: Path) -> None:
    from pipeline.domain.platform import Platform, PlatformError

    train, val = _write_data(tmp_path)
    platform = LocalPlatform(tmp_path, port=0)
    assert isinstance(platform, Platform)
    assert {m.id for m in await platform.models.list_models()} >= {TINY_MODEL_ID}
    try:
        with pytest.raises(PlatformError, match="base model 'nope'"):
            await platform.training.create(_request("job-x", train, val).model_copy(update={"base_model": "nope"}))
        with pytest.raises(PlatformError, match="dataset"):
            await platform.training.create(_request("job-y", str(tmp_path / "missing.jsonl"), val))
        assert not (tmp_path / "jobs" / "job-x").exists() and not (tmp_path / "jobs" / "job-y").exists()
        files = tmp_path / "datasets"
        info = await platform.datasets.upload("ds-1", files / f"{train}.jsonl", examples=80)
        assert (await platform.datasets.upload("ds-1", files / f"{val}.jsonl", examples=16)).name == info.name  # idempotent
        elsewhere = tmp_path / "elsewhere.jsonl"
        elsewhere.write_text(render(generate(4, seed=1)), encoding="utf-8")
        with pytest.raises(PlatformError, match="not found on the local platform"):
            await platform.datasets.check(str(elsewhere))  # a file outside its own folder is not its dataset
        assert (await platform.datasets.check("ds-1")).examples == 80
    finally:
        await platform.close()


async def test_with_a_key_the_endpoint_refuses_requests_without_it(
    trained: tuple[Path, JobStatus, JobStatus], monkeypatch: pytest.MonkeyPatch
) -> None:
    from openai import AsyncOpenAI, AuthenticationError

    root, _, _ = trained
    platform = LocalPlatform(root, port=0, endpoint=EndpointConfig(api_key="s3cret-local-key"))
    try:
        dep = await platform.serving.create("dep-k", "job-a")
        assert dep.endpoint.startswith("http://127.0.0.1:")  # loopback only
        hello = [{"role": "user", "content": "Hello!"}]
        async with AsyncOpenAI(base_url=dep.endpoint, api_key="local") as wrong:
            with pytest.raises(AuthenticationError):
                await wrong.chat.completions.create(model=dep.model_string, max_tokens=4, messages=hello)  # type: ignore[arg-type]
        async with AsyncOpenAI(base_url=dep.endpoint, api_key="s3cret-local-key") as right:
            reply = await right.chat.completions.create(model=dep.model_string, max_tokens=4, messages=hello)  # type: ignore[arg-type]
        assert reply.choices[0].message.content is not None
        snippet = platform.serving.snippet(dep)
        assert 'os.environ["SFTBOT_LOCAL_API_KEY"]' in snippet.code and "s3cret" not in snippet.code
    finally:
        await platform.close()
