"""`sftbot teardown RUN`: the command line deletes a run's deployment on Fireworks, after a
confirmation or --yes, audited as the terminal user. The CLI runs as a real process against
the fake Fireworks served by this test."""

from __future__ import annotations

import os
from pathlib import Path

from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import drive_to_end
from pipeline.domain.machine import Phase
from pipeline.store.db import Database
from tests.bot.cli_support import cli_store, sftbot
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ALICE, BOB


async def test_sftbot_teardown_deletes_the_runs_deployment_after_confirmation(tmp_path: Path) -> None:
    async with FakeFireworks(job_seconds=0.1, deployment_seconds=0.05) as fake:
        async with cli_store(fake) as (_, runner, log):
            run = await runner.start(f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b final=no", ALICE)
            assert (await drive_to_end(runner, log, run.id, actor=BOB)).phase is Phase.SUCCEEDED
        dep = f"sftbot-{run.id}-dep"
        env = {
            **os.environ,
            "FIREWORKS_API_KEY": fake.api_key,
            "FIREWORKS_ACCOUNT_ID": fake.account,
            "FIREWORKS_BASE_URL": fake.base_url,
        }
        code, out, err = await sftbot("teardown", "1", env=env)  # no terminal to confirm on
        assert code == 2 and "add --yes" in err and fake.deployments[dep].deleted_at is None
        code, out, err = await sftbot("teardown", "1", "--yes", env=env)
        assert code == 0, err
        assert out.strip() == f"Deployment {dep} of run #1: deleted (recorded in the audit trail)."
        assert fake.deployments[dep].deleted_at is not None
        assert fake.calls("DELETE", rf"/deployments/{dep}$")[0].query.get("ignoreChecks") == "true"
        code, out, err = await sftbot("teardown", "1", "--yes", env=env)
        assert code == 1 and f"deployment {dep} is already deleted" in err
    db = await Database.open(Path(os.environ["SFTBOT_DATA_DIR"]) / "sftbot.sqlite3")
    try:
        trail = [a for a in await db.audit_trail(run.id) if a.action == "teardown"]
    finally:
        await db.close()
    assert len(trail) == 1 and trail[0].actor.startswith("cli:")
