"""The money guard in the thread: spend past 80% of the cap is said once; the budget gate asks
the approvers by name with the amount on its button, refuses the requester, and an approver's
click lets the final run start. Signed requests into the real Bolt app, the fake Slack."""

from __future__ import annotations

from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, CAROL, CHANNEL, MakeBot, buttons, has, in_thread, press, text_of
from pipeline.domain.authz import Policy
from pipeline.domain.gates import BudgetStep
from pipeline.domain.machine import Phase
from pipeline.domain.platform import DeploymentStatus
from pipeline.run import events
from tests.handlers.slack_support import plan_posted


async def test_an_overrun_is_said_once_and_the_budget_gate_waits_for_an_approvers_click(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    platform = MemoryPlatform()
    platform.job_cost_usd = 10.0  # each job bills far above what the plan estimated
    bot = await bot_factory(platform, policy=Policy(approvers=[CAROL], allow_self_approval=False))
    root, plan = await plan_posted(bot, fake_slack)
    await press(bot, plan, "Approve", user=CAROL)
    gate = await bot.log.wait_kind(events.PromotionRequested)
    promote = await in_thread(fake_slack, root, lambda m: any(b.startswith("Promote #") for b in buttons(m)))
    await press(bot, promote, f"Promote #{gate.ranked[0].slot.number}", user=CAROL)
    asked = await bot.log.wait_kind(events.BudgetRequested)
    await bot.settle()
    msg = await in_thread(fake_slack, root, has("Budget gate — run #1", "needs ≈"))
    more = f"Approve ${asked.request.more_usd:,.2f} more"
    assert buttons(msg) == [more, "Skip the final run", "Cancel run"] and f"<@{CAROL}>" in text_of(msg)
    warnings = [m for m in fake_slack.thread(CHANNEL, root["ts"]) if "of its" in text_of(m) and "cap" in text_of(m)]
    assert len(warnings) == 1  # said once, though the scoreboard was edited many times
    assert len(platform.jobs) == 3  # no final job while it waits

    await press(bot, msg, more, user=ALICE)  # the requester may not raise their own cap
    await fake_slack.wait_for(
        lambda: any("can approve more money for this run" in e["rendered"] for e in fake_slack.ephemerals(ALICE))
    )
    assert len(platform.jobs) == 3 and (await bot.runner.get(1)).phase is Phase.AWAITING_BUDGET

    await press(bot, msg, more, user=CAROL)
    # The click is acted on after Bolt's ack: wait for the run's report, not for the runner's
    # current task (there is none while the run waits at the gate).
    done = await bot.log.wait_kind(events.ReportReady)
    await bot.runner.wait(done.run.id)
    assert (await bot.runner.get(1)).phase is Phase.SUCCEEDED
    assert len(platform.jobs) == 4  # the final job, once
    await in_thread(fake_slack, root, has("more approved by", f"<@{CAROL}>"))


async def test_the_80_percent_warning_is_a_new_thread_message_before_the_deployment(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    platform = MemoryPlatform()
    bot = await bot_factory(platform)
    root, plan = await plan_posted(bot, fake_slack)
    create = platform.serving.create
    said_at_create: list[int] = []

    async def create_deployment(deployment_id: str, model: str) -> DeploymentStatus:  # what the thread held then
        said_at_create.append(sum("past 80%" in text_of(m) for m in fake_slack.thread(CHANNEL, root["ts"])))
        return await create(deployment_id, model)

    platform.serving.create = create_deployment  # type: ignore[method-assign]
    await press(bot, plan, "Approve", user=ALICE)
    gate = await bot.log.wait_kind(events.PromotionRequested)
    promote = await in_thread(fake_slack, root, lambda m: any(b.startswith("Promote #") for b in buttons(m)))
    await press(bot, promote, f"Promote #{gate.ranked[0].slot.number}", user=ALICE)
    said = await bot.log.wait_kind(events.SpendWarning)
    done = await bot.log.wait_kind(events.ReportReady)
    await bot.runner.wait(done.run.id)
    await bot.settle()
    thread = fake_slack.thread(CHANNEL, root["ts"])
    warnings = [m for m in thread if "past 80%" in text_of(m)]
    assert said.step is BudgetStep.DEPLOY and said_at_create == [1]  # in the thread before the deployment was created
    assert len(warnings) == 1 and said.step.label in text_of(warnings[0])  # once, a new message (edits do not notify)
    assert not [m for m in thread if "has committed ≈" in text_of(m)]  # the after-the-fact warning is not said again
