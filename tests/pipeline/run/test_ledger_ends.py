"""A ledger that ends things, on the fake Fireworks through the real SDK with a fake clock: a
deployment deleted hard, whose read-back answers 404 (as the SDK's own helper expects:
training/sdk/deployment.py:484-507 "Poll until the deployment is gone (404) or in DELETED
state"), stops accruing at the delete time, however long the ledger is read after it and
however late the 404 is seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.testing.fireworks import FakeFireworks
from bot.testing.runs import drive_to_end
from pipeline.domain import ids
from pipeline.domain.authz import Policy
from pipeline.domain.machine import Phase
from pipeline.domain.provenance import Ref, ResourceKind, ResourceState
from pipeline.planning.ledger import ledger
from pipeline.run.teardown import teardown
from pipeline.store import runs
from pipeline.store.db import Database
from tests.paths import DATASETS
from tests.pipeline.fireworks_support import ALICE, BOB, running

INSTRUCTION = f"dataset={DATASETS / 'text2sql_dataset.jsonl'} model=qwen3-8b parallel=3"
HOUR = 3600.0


@pytest.mark.parametrize("delete_seconds", [0.0, 600.0], ids=["404-at-once", "deleting-then-404"])
async def test_a_deployment_deleted_on_the_fake_stops_accruing_at_the_delete_time(
    db: Database, tmp_path: Path, delete_seconds: float
) -> None:
    async with FakeFireworks(job_seconds=0.1, deployment_seconds=0.05, deployment_delete_seconds=delete_seconds) as fake:
        db.clock = fake.clock.now  # the provenance rows and the fake platform on one clock
        async with running(db, fake, tmp_path / "runs") as (runner, log):
            run = await runner.start(INSTRUCTION, ALICE)
            assert (await drive_to_end(runner, log, run.id, actor=BOB)).phase is Phase.SUCCEEDED
            ref = Ref(kind=ResourceKind.DEPLOYMENT, id=ids.deployment_id(run.id))
            live = await db.resource(ref)
            assert live is not None and live.state is ResourceState.READY and live.usd_per_hour
            fake.clock.advance(2 * HOUR)  # up two hours
            deleted_at = fake.clock.now()
            _, said = await teardown(db, runner.platform, Policy(), run.number, ALICE, channel=None)
            if delete_seconds:  # the read-back still said DELETING; the 404 comes ten minutes on
                assert said == "deleting"
                fake.clock.advance(delete_seconds + 1)
                with pytest.raises(Exception, match="not found"):
                    await runner.platform.serving.get(ref.id)
                async with db.write() as tx:  # what a later read-back records
                    await db.move_resource(tx, run.id, ref, ResourceState.DELETED)
            else:
                assert said == "deleted"
            assert [c.status for c in fake.calls("GET", rf"/deployments/{ref.id}$")][-1] == 404
            fake.clock.advance(24 * HOUR)  # read a day later
            gone = await db.resource(ref)
            cands = await runs.candidates(db, run.id)
            plan = await runs.get_plan(db, run.id)
            book = ledger(cands, await db.resources(run.id), plan, approved_usd=run.approved_usd, now=fake.clock.now())
    assert gone is not None and gone.state is ResourceState.DELETED
    assert gone.ended_at == pytest.approx(deleted_at, abs=5.0)  # the delete, not the late 404 nor now
    line = next(ln for ln in book.lines if ln.label == f"deployment {ref.id}")
    up_hours = (gone.ended_at - live.created_at) / HOUR
    assert 2.0 <= up_hours < 2.01 and not line.running
    assert line.usd == pytest.approx(up_hours * live.usd_per_hour, abs=1e-4)  # ~2 h, not 26 h
    assert book.live_usd_per_hour == 0.0
