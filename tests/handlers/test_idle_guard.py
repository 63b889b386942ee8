"""The idle-deployment guard: a deployment up past the idle time gets exactly one DM to its
requester with Keep / Scale to zero / Delete; Delete removes only that deployment, audited;
a restart does not ask again. Signed requests into the real Bolt app, the fake Slack."""

from __future__ import annotations

import time

from bot.testing.memory_platform import MemoryPlatform
from bot.testing.runs import drive_to_end
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, CAROL, MakeBot, buttons, has, in_thread
from pipeline.domain.authz import Policy
from pipeline.domain.machine import Phase
from pipeline.domain.provenance import ResourceState
from pipeline.domain.records import Actor, Resource
from pipeline.run import events
from pipeline.run.idle import due, flag_idle, live_deployments
from tests.handlers.slack_support import plan_posted

DAY = 24 * 3600.0


def dep(**marks: float) -> Resource:
    return Resource(kind="deployment", resource_id="sftbot-r-dep", run_id="r", state="ready", created_at=0.0,
                    updated_at=0.0, **marks)  # type: ignore[arg-type]  # fmt: skip


def test_due_once_per_idle_period_and_never_for_what_is_gone() -> None:
    assert not due(dep(), now=DAY - 1, idle_seconds=DAY)
    assert due(dep(), now=DAY, idle_seconds=DAY)
    assert not due(dep(idle_asked_at=DAY), now=3 * DAY, idle_seconds=DAY)  # asked: quiet until someone keeps it
    assert not due(dep(idle_asked_at=DAY, kept_at=DAY + 10), now=2 * DAY, idle_seconds=DAY)
    assert due(dep(idle_asked_at=DAY, kept_at=DAY + 10), now=2 * DAY + 10, idle_seconds=DAY)  # a new period
    assert not due(dep().model_copy(update={"state": ResourceState.DELETED}), now=9 * DAY, idle_seconds=DAY)


async def _deployed(bot_factory: MakeBot, fake_slack: FakeSlack, platform: MemoryPlatform):  # type: ignore[no-untyped-def]
    bot = await bot_factory(platform, policy=Policy(approvers=[CAROL]))
    root, _ = await plan_posted(bot, fake_slack)
    run = await bot.runner.get(1)
    await drive_to_end(bot.runner, bot.log, run.id, actor=Actor(id=CAROL, name="carol"))
    assert (await bot.runner.get(1)).phase is Phase.SUCCEEDED
    return bot, root, run


async def age(db, run_id: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """The deployment was created ``seconds`` earlier (the clock cannot be wound forward)."""
    async with db.write() as tx:
        await tx.execute(
            "UPDATE resources SET created_at = created_at - ? WHERE run_id=? AND kind='deployment'", (seconds, run_id)
        )


def dms(slack: FakeSlack, user: str) -> list[dict]:  # type: ignore[type-arg]
    return [m.view() for m in slack.messages.get("D" + user[1:], [])]


async def test_one_dm_with_three_buttons_and_delete_removes_only_that_deployment(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    platform = MemoryPlatform()
    platform.deployments["someone-elses-dep"] = "accounts/test/models/theirs"  # not the bot's: never touched
    bot, root, run = await _deployed(bot_factory, fake_slack, platform)
    dep_id = f"sftbot-{run.id}-dep"
    db = bot.runner.db
    assert await flag_idle(db, idle_seconds=DAY) == []  # just deployed: nothing to ask
    await age(db, run.id, DAY + 60)
    later = time.time()
    flagged = await flag_idle(db, idle_seconds=DAY, now=later)
    assert [f.deployment.resource_id for f in flagged] == [dep_id]
    dm = (await fake_slack.wait_for(lambda: dms(fake_slack, ALICE)))[0]
    assert buttons(dm) == ["Keep it", "Scale to zero", "Delete it"]
    assert f"Deployment `{dep_id}` of SFT run #1" in dm["rendered"] and "has been up 24 h" in dm["rendered"]
    await in_thread(fake_slack, root, has("⏰", "I asked u0alice by DM whether to keep it"))  # her DM was the ping
    # Asked once: another check, and a restarted bot on the same database, stay quiet.
    assert await flag_idle(db, idle_seconds=DAY, now=later + 3600) == []
    await bot.settle()
    await bot.close()
    bot = await bot_factory(platform, policy=Policy(approvers=[CAROL]))  # the bot restarted (same database)
    assert await flag_idle(bot.runner.db, idle_seconds=DAY, now=later + 7200) == []
    await bot.settle()
    assert len(dms(fake_slack, ALICE)) == 1
    assert [a.action for a in await db.audit_trail(run.id)].count("deployment_idle") == 1

    await bot.driver.click(dm, "sft_idle_delete", user=ALICE, channel="D" + ALICE[1:])
    await bot.log.wait_kind(events.DeploymentTornDown, run.id)
    assert dep_id not in platform.deployments and "someone-elses-dep" in platform.deployments
    last = (await db.audit_trail(run.id))[-1]
    assert (last.action, last.actor, last.details) == ("teardown", ALICE, {"deployment_id": dep_id, "state": "deleted"})
    assert await live_deployments(db) == []


async def test_keep_asks_again_after_another_period_and_scale_to_zero_stops_the_bill(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    platform = MemoryPlatform()
    bot, root, run = await _deployed(bot_factory, fake_slack, platform)
    db = bot.runner.db
    await age(db, run.id, DAY + 60)
    assert len(await flag_idle(db, idle_seconds=DAY)) == 1
    dm = (await fake_slack.wait_for(lambda: dms(fake_slack, ALICE)))[0]
    await bot.driver.click(dm, "sft_idle_keep", user=ALICE, channel="D" + ALICE[1:])
    await bot.log.wait_kind(events.DeploymentKept, run.id)
    await in_thread(fake_slack, root, has("👍", "stays up"))
    assert await flag_idle(db, idle_seconds=DAY, now=time.time() + DAY / 2) == []  # a new period has begun
    assert len(await flag_idle(db, idle_seconds=DAY, now=time.time() + DAY + 120)) == 1
    second = (await fake_slack.wait_for(lambda: dms(fake_slack, ALICE)[1:]))[0]
    await bot.driver.click(second, "sft_idle_scale_to_zero", user="U0DAVE", channel="D0DAVE")  # not theirs to decide
    await fake_slack.wait_for(lambda: any("can't do that" in e["rendered"] for e in fake_slack.ephemerals("U0DAVE")))
    assert platform.scaled_to_zero == []
    await bot.driver.click(second, "sft_idle_scale_to_zero", user=ALICE, channel="D" + ALICE[1:])
    await in_thread(fake_slack, root, has("⏬", "scaled to zero by"))
    assert platform.scaled_to_zero == [f"sftbot-{run.id}-dep"]
    trail = [a.action for a in await db.audit_trail(run.id)]
    assert trail.count("deployment_kept") == 1 and trail.count("deployment_scaled_to_zero") == 1
    assert [d.run.id for d in await live_deployments(db)] == [run.id]  # still deployed, not billing
