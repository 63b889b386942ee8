"""Plan time on Fireworks: serving priced from the shape Fireworks matches, a base that cannot be
deployed on the account refused before anything is spent, and the context length a job asks
for. Through the real SDK against the fake."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.testing.fireworks import FakeFireworks
from bot.testing.fireworks.shapes import shape
from pipeline.domain.catalog import price_table
from pipeline.domain.platform import PlatformError
from pipeline.planning.preflight import PreflightFailed
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.run import events
from pipeline.store import runs
from pipeline.store.db import Database
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ACCT, ALICE, request, running, seed_datasets

DATA = DATASETS / "text2sql_dataset.jsonl"
BIG = "accounts/fireworks/models/qwen3-235b-a22b-instruct-2507"


async def test_a_base_served_on_8_b200_is_priced_from_that_shape(db: Database, tmp_path: Path) -> None:
    async with FakeFireworks() as fake:
        fake.shapes[BIG] = [shape("qwen3-235b-b200", BIG, "NVIDIA_B200_180GB", 8, "FP8", addons=False)]
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(f"dataset={DATA} model=qwen3-235b-a22b-instruct-2507", ALICE)
            proposed = await log.wait_kind(events.PlanProposed, run.id)
    plan = proposed.plan
    line = next(ln for ln in plan.cost.lines if ln.label == "deployment (first hour)")
    b200 = price_table().gpu_usd("NVIDIA_B200_180GB")
    assert b200 is not None and line.usd == pytest.approx(8 * b200 * 1.0)  # 8 GPUs x $13.00 x 1 h, not 1 x H100
    assert "8 x B200 180GB" in line.detail and "shape qwen3-235b-b200" in line.detail
    assert plan.shapes["qwen3-235b-a22b-instruct-2507"].count == 8
    sent = fake.calls("POST", r"/deploymentShapeVersions:match$")[0].json
    assert sent == {
        "createDeploymentRequest": {"parent": f"accounts/{fake.account}", "deployment": {"baseModel": BIG, "enableAddons": False}}
    }
    # What keeps billing is said before approval, with the exact teardown command.
    assert plan.serving_note is not None and "8 x B200 180GB" in plan.serving_note
    assert f"`/sft teardown {run.number}`" in plan.serving_note and "7 days without traffic" in plan.serving_note


async def test_a_base_this_account_cannot_deploy_is_refused_before_anything_is_spent(db: Database, tmp_path: Path) -> None:
    """Preflight: refused in one line before a run exists (no run number, no upload, no job)."""
    async with FakeFireworks() as fake:
        fake.undeployable = {"accounts/fireworks/models/qwen3-32b"}
        async with running(db, fake, tmp_path / "runs") as (runner, _log):
            with pytest.raises(PreflightFailed, match=r"^qwen3-32b cannot be deployed on this fireworks account") as refused:
                await runner.start(f"dataset={DATA} model=qwen3-32b", ALICE)
            spent = (dict(fake.create_counts("datasets")), dict(fake.create_counts("supervisedFineTuningJobs")))
    assert "deploy=no" in str(refused.value)
    assert spent == ({}, {}) and await runs.list_runs(db) == []


async def test_no_deployment_and_validation_loss_need_no_shape(db: Database, tmp_path: Path) -> None:
    async with FakeFireworks() as fake:
        fake.undeployable = {"accounts/fireworks/models/qwen3-32b"}
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(f"dataset={DATA} model=qwen3-32b deploy=no", ALICE)
            proposed = await log.wait_kind(events.PlanProposed, run.id)
    assert not fake.calls("POST", r":match$") and proposed.plan.serving_note is None


async def test_max_context_length_is_sent_in_multiples_of_16(fake: FakeFireworks, platform: FireworksPlatform) -> None:
    await seed_datasets(fake)
    await platform.training.create(request("sftbot-r1-c1").model_copy(update={"max_context_length": 44_000}))
    assert fake.calls("POST", r"/supervisedFineTuningJobs$")[0].json["maxContextLength"] == 44_000
    with pytest.raises(PlatformError, match="must be divisible by 16"):  # the fake holds the bot to the rule
        await platform.training.create(request("sftbot-r1-c2").model_copy(update={"max_context_length": 44_001}))
    await platform.training.create(request("sftbot-r1-c3"))
    assert "maxContextLength" not in fake.calls("POST", r"/supervisedFineTuningJobs$")[-1].json
    assert fake.account == ACCT


def test_lifecycle_text_is_the_platforms_own_and_only_where_it_has_one() -> None:
    from pipeline.domain.platform import Capabilities, ShapeInfo
    from pipeline.platforms.lifecycle import serving_note

    h100 = ShapeInfo(name="s", accelerator="NVIDIA_H100_80GB", count=2)
    idle = serving_note("fireworks", Capabilities(replicas=(0, 1)), deployment_id="sftbot-x-dep", run_number=7, shape=h100)
    assert idle is not None and "scales between 0 and 1 replica of 2 x H100 80GB" in idle
    assert "deletes it after 7 days without traffic" in idle and "`sftbot teardown 7`" in idle
    pinned = serving_note("fireworks", Capabilities(replicas=(1, 1)), deployment_id="sftbot-x-dep", run_number=7)
    assert pinned is not None and "bills for them around the clock" in pinned and "7 days" not in pinned
    assert serving_note("local", Capabilities(replicas=(0, 1)), deployment_id="d", run_number=7) is None  # no template
    assert serving_note("fireworks", Capabilities(), deployment_id="d", run_number=7) is None  # no replicas
