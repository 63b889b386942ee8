"""Bookkeeping right on Fireworks: a cancel records the state read back, model strings come from
the model asked for, a job without a recognisable validation loss is said plainly, and W&B
logging is a setting. Through the real SDK against the fake."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.engine import make_platform
from bot.settings import SettingsError, load_settings
from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import drive_to_end
from handlers.render.board import Ended, scoreboard
from pipeline.domain.machine import Phase
from pipeline.domain.platform import DeploymentState
from pipeline.domain.slots import CandidateState
from pipeline.platforms.fireworks.jobs import WandbSettings
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.run import events
from pipeline.run.decisions import Approve, Cancel
from pipeline.store import runs
from pipeline.store.db import Database
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ACCT, ALICE, BOB, request, running, seed_datasets, until

DATA = DATASETS / "text2sql_dataset.jsonl"


async def test_a_cancel_that_arrives_too_late_keeps_the_completed_job_and_its_model(db: Database, tmp_path: Path) -> None:
    async with FakeFireworks(job_seconds=0.6) as fake:
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(f"dataset={DATA} model=qwen3-8b", ALICE)
            await log.wait_kind(events.PlanProposed, run.id)
            await runner.decide(run.id, Approve(plan_version=1), BOB)

            async def all_running() -> bool:
                return len(fake.jobs) == 3 and all(fake.job_state(j) == "JOB_STATE_RUNNING" for j in fake.jobs)

            await until(all_running, timeout=10)
            late = f"sftbot-{run.id}-c1"
            fake.cancel_arrives_late = {late}  # past the point where a cancel stops it: it completes
            await runner.decide(run.id, Cancel(), ALICE)
            cands = {str(c.slot): c for c in await runs.candidates(db, run.id)}
            resources = {r.resource_id: r for r in await db.resources(run.id)}
    assert sorted(fake.cancels) == sorted(fake.jobs)  # every active job was asked to stop
    assert cands["c1"].state is CandidateState.COMPLETED and cands["c1"].raw_state == "JOB_STATE_COMPLETED"
    assert cands["c1"].model == f"accounts/{fake.account}/models/{late}" and cands["c1"].note is None
    assert resources[cands["c1"].model].kind == "model"  # the model that exists is in the provenance
    assert cands["c2"].state is CandidateState.CANCELLED and cands["c3"].state is CandidateState.CANCELLED


async def test_a_job_without_a_recognisable_validation_loss_is_said_plainly_with_the_keys_seen(
    db: Database, tmp_path: Path
) -> None:
    async with FakeFireworks(job_seconds=0.1) as fake:
        fake.metrics_renamed = {"eval/loss": "eval/nll"}  # a key the parser does not know
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(f"dataset={DATA} model=qwen3-8b final=no deploy=no", ALICE)
            await drive_to_end(runner, log, run.id, actor=BOB)
            gate = next(e for e in log.events if isinstance(e, events.PromotionRequested))
            after = await runner.get(run.id)
    assert after.phase is Phase.SUCCEEDED, after.error
    notes = {c.note for c in gate.ranked}
    assert notes == {"no validation loss recognised in its metrics (keys seen: epoch, eval/nll, step, timestamp, train/epoch, "
                     "train/learning_rate, train/loss)"}  # fmt: skip
    assert gate.summary == "No candidate reported a validation loss."
    board = scoreboard(run, list(gate.ranked), ended=Ended.DONE)  # the sweep's last table, above the gate
    shown = " ".join(b["elements"][0]["text"] for b in board.blocks if b["type"] == "context")
    assert "#1, #2, #3: no validation loss recognised" in shown and "eval/nll" in shown
    report = (Path(after.workspace) / "final_report.md").read_text()
    assert "- #1: no validation loss recognised in its metrics (keys seen: epoch, eval/nll," in report


async def test_the_model_string_is_built_from_the_model_asked_for(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    await seed_datasets(fake)
    await platform.training.create(request("sftbot-r1-final"))
    fake.clock.advance(10)
    model = (await platform.training.get("sftbot-r1-final")).model
    assert model is not None
    fake.echo_resolved_base = True  # the server answers with the base, not the fine-tuned model
    created = await platform.serving.create("sftbot-r1-dep", model)

    async def ready() -> bool:
        return (await platform.serving.get("sftbot-r1-dep")).state is DeploymentState.READY

    await until(ready)
    status = await platform.serving.get("sftbot-r1-dep")
    assert fake.calls("GET", r"/deployments/sftbot-r1-dep$")[-1].status == 200
    assert created.model == status.model == model
    assert status.model_string == f"{model}#accounts/{ACCT}/deployments/sftbot-r1-dep"


async def test_wandb_logging_is_sent_with_each_job(fake: FakeFireworks, make_platform: Callable[..., FireworksPlatform]) -> None:
    await seed_datasets(fake)
    platform = make_platform(wandb=WandbSettings(api_key="wandb-SECRET-123", project="sft", entity="acme"))
    await platform.training.create(request("sftbot-r1-c1"))
    sent = fake.calls("POST", r"/supervisedFineTuningJobs$")[0].json
    assert sent["wandbConfig"] == {"enabled": True, "apiKey": "wandb-SECRET-123", "project": "sft", "entity": "acme",
                                   "runId": "sftbot-r1-c1"}  # fmt: skip
    plain = make_platform()
    await plain.training.create(request("sftbot-r1-c2"))
    assert "wandbConfig" not in fake.calls("POST", r"/supervisedFineTuningJobs$")[1].json


def test_wandb_settings_need_a_key_and_a_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREWORKS_API_KEY", "fw-key")
    monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", "acct")
    monkeypatch.setenv("SFTBOT_WANDB_API_KEY", "wandb-SECRET-123")
    with pytest.raises(SettingsError, match="missing setting SFTBOT_WANDB_PROJECT") as err:
        make_platform(load_settings())
    assert "wandb-SECRET-123" not in str(err.value)
    monkeypatch.setenv("SFTBOT_WANDB_PROJECT", "sft")
    platform = make_platform(load_settings())
    assert isinstance(platform, FireworksPlatform)
    asyncio.run(platform.close())
