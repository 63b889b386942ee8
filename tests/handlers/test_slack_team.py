"""The team's view: runs listed where they were asked, what waits for whom on the App Home,
and a run started from the Home tab's form — through the real Bolt app."""

from __future__ import annotations

from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, BOB, CAROL, CHANNEL, MakeBot, buttons, find_element, press, root_of, text_of
from pipeline.domain.authz import Policy
from pipeline.run import events
from pipeline.store import runs
from tests.handlers.slack_support import plan_posted
from tests.paths import TEXT2SQL


async def test_runs_lists_the_channels_runs_for_someone_who_started_nothing(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000))
    await plan_posted(bot, fake_slack, user=ALICE)
    await bot.driver.command(f"run dataset={TEXT2SQL} model=qwen3-8b", user=ALICE, channel="C0OTHER")
    await bot.settle()
    await bot.driver.command("runs", user=CAROL)
    answer = await fake_slack.wait_for(
        lambda: [e for e in fake_slack.ephemerals(CAROL) if "Runs in this channel" in e["rendered"]]
    )
    text = answer[-1]["rendered"]
    assert f"by <@{ALICE}>" in text and "#1" in text and "#2" not in text  # this channel's run, not the other's
    assert "https://fake.slack.com/archives/C0TEAM/p" in text  # the number links to the run's thread
    await bot.driver.command("runs mine", user=CAROL)
    mine = await fake_slack.wait_for(lambda: [e for e in fake_slack.ephemerals(CAROL) if "Your runs" in e["rendered"]])
    assert "none yet" in mine[-1]["rendered"]


async def test_the_home_tab_says_what_waits_for_whom(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), policy=Policy(approvers=[BOB], allow_self_approval=False))
    await plan_posted(bot, fake_slack, user=ALICE)

    async def home_of(user: str) -> str:
        fake_slack.home.pop(user, None)
        event = {"type": "app_home_opened", "user": user, "channel": "D0X", "tab": "home", "event_ts": "1.1"}
        await bot.driver.event(event)
        view = await fake_slack.wait_for(lambda: fake_slack.home.get(user))
        return "\n".join(str(b) for b in view["blocks"])

    bob, alice = await home_of(BOB), await home_of(ALICE)
    waiting_bob = bob.split("Waiting for you")[1].split("Your recent runs")[0]
    waiting_alice = alice.split("Waiting for you")[1].split("Your recent runs")[0]
    assert "#1" in waiting_bob and "approve or revise its plan" in waiting_bob  # BOB approves
    assert "#1" not in waiting_alice and "Nothing waits for you" in waiting_alice  # ALICE wrote it
    assert "Start a run" in bob


async def test_a_run_started_from_the_home_tab_form(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), policy=Policy(channels=[CHANNEL]))
    event = {"type": "app_home_opened", "user": ALICE, "channel": "D0X", "tab": "home", "event_ts": "1.1"}
    await bot.driver.event(event)
    home = await fake_slack.wait_for(lambda: fake_slack.home.get(ALICE))
    start = find_element(home["blocks"], "sft_start_run")
    assert start is not None
    await bot.driver.click({"ts": "0.0", "blocks": home["blocks"]}, "sft_start_run", user=ALICE, trigger="T-START")
    form = await fake_slack.wait_for(lambda: next(iter(fake_slack.views.values()), None))

    bad = await bot.driver.submit(form, user=ALICE, dataset="", model="qwen3-8b")
    assert bad.json()["response_action"] == "errors" and "Name one dataset" in bad.json()["errors"]["dataset"]
    bad = await bot.driver.submit(form, user=ALICE, dataset=str(TEXT2SQL), model="qwen3-8b", more="purple monkey")
    assert "purple monkey" in bad.json()["errors"]["more"]
    assert await runs.list_runs(bot.runner.db) == []  # nothing exists before the form is right

    ok = await bot.driver.submit(form, user=ALICE, dataset=str(TEXT2SQL), model="qwen3-8b", more="epochs=2")
    assert ok.status == 200 and not ok.body
    root = await root_of(fake_slack)  # posted in the channel the form preselected (SFTBOT_CHANNELS)
    run = await bot.runner.get(1)
    assert run.channel == CHANNEL and run.spec.epochs == 2 and root["ts"]


async def test_approvers_can_be_told_by_dm_once_per_gate(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), policy=Policy(approvers=[BOB, CAROL]), dm_approvers=True)
    _root, plan = await plan_posted(bot, fake_slack, user=ALICE)
    await bot.settle()
    for person in ("D0BOB", "D0CAROL"):
        dms = [m.view() for m in fake_slack.messages.get(person, [])]
        assert len(dms) == 1 and "*Plan v1 of run #1* by u0alice waits for your approval: ≈ $" in dms[0]["rendered"]
        assert buttons(dms[0])[:2] == ["Approve", "Revise"] and "fake.slack.com/archives" in dms[0]["rendered"]
    assert "<@" not in text_of(plan).split("please approve")[0]  # the thread names them: the DM was their ping
    assert await bot.runner.resume_all() == []  # a restart re-announces the plan...
    await bot.runner.bus.publish(
        events.PlanProposed(run=(run := await bot.runner.get(1)), plan=await runs.get_plan(bot.runner.db, run.id, 1))
    )  # type: ignore[arg-type]
    await bot.settle()
    assert len(fake_slack.messages.get("D0BOB", [])) == 1  # ...but nobody is DMed twice
    dm = fake_slack.messages["D0CAROL"][0].view()
    await press(bot, dm, "Approve", user=BOB)  # BOB decides from his DM; CAROL's DM says so
    await fake_slack.wait_for(lambda: "Approved by <@U0BOB>" in fake_slack.messages["D0CAROL"][0].view()["rendered"])
    assert not buttons(fake_slack.messages["D0CAROL"][0].view())
