"""`/sft teardown N`: a confirm first, then only that run's deployment deleted, audited, said in
the thread. Signed requests into the real Bolt app, the fake Slack Web API, a real runner."""

from __future__ import annotations

from bot.testing.memory_platform import MemoryPlatform
from bot.testing.runs import drive_to_end
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, CAROL, CHANNEL, MakeBot, find_element, has, in_thread, text_of
from pipeline.domain.authz import Policy
from pipeline.domain.machine import Phase
from pipeline.domain.records import Actor
from pipeline.run import events
from tests.handlers.slack_support import plan_posted

DAVE = "U0DAVE"


async def test_teardown_confirms_then_deletes_only_this_runs_deployment_audited(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    platform = MemoryPlatform()
    platform.deployments["someone-elses-dep"] = "accounts/test/models/theirs"  # not the bot's: never touched
    bot = await bot_factory(platform, policy=Policy(approvers=[CAROL]))
    root, _plan = await plan_posted(bot, fake_slack)
    run = await bot.runner.get(1)
    await drive_to_end(bot.runner, bot.log, run.id, actor=Actor(id=CAROL, name="carol"))
    assert (await bot.runner.get(1)).phase is Phase.SUCCEEDED
    dep = f"sftbot-{run.id}-dep"
    assert dep in platform.deployments

    await bot.driver.command("teardown 1", user=DAVE)  # neither the requester nor an approver
    await fake_slack.wait_for(lambda: any("can't do that" in e["rendered"] for e in fake_slack.ephemerals(DAVE)))
    assert dep in platform.deployments
    assert (await bot.runner.db.audit_trail(run.id))[-1].action == "denied_teardown"

    await bot.driver.command("teardown 1", user=ALICE)
    confirm = await fake_slack.wait_for(lambda: [e for e in fake_slack.ephemerals(ALICE) if "Yes, delete" in e["rendered"]])
    assert f"Delete deployment `{dep}` of SFT run #1" in confirm[-1]["rendered"]
    assert dep in platform.deployments  # nothing happens before the confirmation
    assert find_element(confirm[-1]["blocks"], "sft_keep_deployment") is not None

    await bot.driver.click(confirm[-1], "sft_confirm_teardown", user=ALICE)
    done = await fake_slack.wait_for(
        lambda: [e for e in fake_slack.ephemerals(ALICE) if "torn down" in e["rendered"] and e.get("replace_original")]
    )
    assert f"Deployment `{dep}` of run #1 was torn down (read back: deleted)" in done[-1]["rendered"]
    assert dep not in platform.deployments and "someone-elses-dep" in platform.deployments
    said = await bot.log.wait_kind(events.DeploymentTornDown, run.id)
    assert said.actor is not None and said.actor.id == ALICE and said.state == "deleted"
    last = (await bot.runner.db.audit_trail(run.id))[-1]
    assert (last.action, last.actor, last.details) == ("teardown", ALICE, {"deployment_id": dep, "state": "deleted"})
    resource = next(r for r in await bot.runner.db.resources(run.id) if r.resource_id == dep)
    assert resource.state == "deleted"
    await in_thread(fake_slack, root, has("🧹", "torn down by u0alice", "it no longer bills"))
    final = await in_thread(fake_slack, root, has("Billing now", "nothing: the deployment was torn down"))  # ends true
    assert "Delete deployment" not in text_of(final) and final["edits"] >= 1
    ended = await fake_slack.wait_for(
        lambda: next((m for m in fake_slack.roots(CHANNEL) if "deployment torn down" in text_of(m)), None)
    )
    assert "nothing bills" in text_of(ended)

    await bot.driver.command("teardown 1", user=ALICE)  # twice: nothing left to do, said plainly
    await fake_slack.wait_for(lambda: any("is already deleted" in e["rendered"] for e in fake_slack.ephemerals(ALICE)))
    assert len([m for m in fake_slack.thread(CHANNEL, root["ts"]) if "🧹" in text_of(m)]) == 1


async def test_teardown_of_a_run_that_never_deployed_says_so(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform())
    await plan_posted(bot, fake_slack)
    await bot.driver.command("teardown 1", user=ALICE)
    note = await fake_slack.wait_for(
        lambda: [e for e in fake_slack.ephemerals(ALICE) if "teardown" in e["rendered"] or "deploy" in e["rendered"]]
    )
    assert "Run #1 has no deployment to tear down: it never deployed a model." in note[-1]["rendered"]
