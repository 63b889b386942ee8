"""W&B logging on Fireworks: each job's W&B run is linked in the report, and the W&B key the
platform echoes back on the job is never kept: not in the database, the workspace or the report."""

from __future__ import annotations

from pathlib import Path

from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import drive_to_end
from pipeline.domain.machine import Phase
from pipeline.platforms.fireworks.jobs import WandbSettings
from pipeline.store.db import Database
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ALICE, BOB, platform_for, running

KEY = "wandb-secret-key-0123456789abcdef"


async def test_the_wandb_run_is_linked_and_its_key_never_kept(db: Database, tmp_path: Path) -> None:
    async with FakeFireworks(job_seconds=0.15, deployment_seconds=0.05) as fake:
        platform = platform_for(fake, wandb=WandbSettings(api_key=KEY, project="team-sft"))
        async with running(db, fake, tmp_path / "runs", platform=platform) as (runner, log):
            run = await runner.start(f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b parallel=3", ALICE)
            after = await drive_to_end(runner, log, run.id, actor=BOB, timeout=60)
        assert after.phase is Phase.SUCCEEDED, after.error
        sent = fake.calls("POST", r"/supervisedFineTuningJobs$")[0].json
        assert sent["wandbConfig"]["apiKey"] == KEY  # it did go to Fireworks, and came back on the job
    report = (Path(after.workspace) / "final_report.md").read_text()
    assert f"[W&B run](https://wandb.ai/team-sft/runs/sftbot-{run.id}-c1)" in report
    assert f"[W&B run](https://wandb.ai/team-sft/runs/sftbot-{run.id}-final)" in report
    kept = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert kept and not [p for p in kept if KEY.encode() in p.read_bytes()]  # the database (under tmp_path) too
    assert KEY not in str([e for e in log.events])
