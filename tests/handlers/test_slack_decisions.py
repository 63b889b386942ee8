"""Decisions that reach the right people once and end true, through the real Bolt app (signed
requests) and the fake Slack Web API: who each notifying message reaches, per decision; DMs
edited for everyone when one decider decides; a cancelled sweep's last scoreboard; a gate
whose evidence says not to promote yet.

A notifying message is a new message that mentions someone, or a DM (Slack notifies on new
messages and DMs, never on edits: https://docs.slack.dev/messaging/#mentioning-users).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import (
    ALICE,
    BOB,
    CAROL,
    CHANNEL,
    MakeBot,
    block_actions,
    buttons,
    find_element,
    in_thread,
    press,
    text_of,
)
from pipeline.domain.authz import Policy
from pipeline.domain.machine import Phase
from pipeline.run import events
from tests.handlers.slack_support import plan_posted, scoreboard_of
from tests.paths import TEXT2SQL
from tests.pipeline.run.evaluation_support import sql_platform

TEAM = Policy(approvers=[BOB, CAROL], allow_self_approval=False)
# The block ids that tie a message to its decision: plan|run|v, gate|run, budget|run|n, q|run|n; DMs dm|run|<gate>.
_GATE_OF_BLOCK = re.compile(r"^(?:plan\|[^|]+\|(?P<v>\d+)|gate\|[^|]+|budget\|[^|]+\|(?P<b>\d+)|dm\|[^|]+\|(?P<dm>.+))$")


def notified(call: dict[str, Any]) -> set[str]:
    """Who a chat.postMessage notifies: the people it mentions, and the person a DM is for."""
    args = call["args"]
    people = set(re.findall(r"<@([UW][A-Z0-9]+)>", json.dumps([args.get("text"), args.get("blocks")])))
    channel = str(args.get("channel") or "")
    if channel[:1] in ("U", "W", "D"):
        people.add("U" + channel[1:])
    return people


def gate_of(call: dict[str, Any]) -> str | None:
    """The decision a posted message asks for (from its buttons' block id), or None."""
    for block in call["args"].get("blocks") or []:
        found = _GATE_OF_BLOCK.match(str(block.get("block_id", "")))
        if block.get("type") == "actions" and found:
            if found["dm"]:
                return found["dm"]
            return f"plan:v{found['v']}" if found["v"] else f"budget:{found['b']}" if found["b"] else "promotion"
    return None


def pings(fake_slack: FakeSlack) -> list[tuple[int, str | None, set[str]]]:
    """(call index, decision, who) for every notifying message the bot posted."""
    out = []
    for i, call in enumerate(fake_slack.calls):
        if call["method"] == "chat.postMessage" and (who := notified(call)):
            out.append((i, gate_of(call), who))
    return out


def first_edit(fake_slack: FakeSlack, ts: str) -> int:
    return next(i for i, c in enumerate(fake_slack.calls) if c["method"] == "chat.update" and c["args"].get("ts") == ts)


@pytest.mark.parametrize("dm", [True, False], ids=["dm", "mentions"])
async def test_each_decider_is_notified_once_per_decision_and_every_dm_ends_with_who_decided(
    bot_factory: MakeBot, fake_slack: FakeSlack, dm: bool
) -> None:
    """With DMs on, the DM is each decider's one notification (the thread names them); with
    them off, the decision's thread message mentions them. Either way: once."""
    platform = sql_platform()
    platform.job_cost_usd = 10.0  # the jobs overrun: a budget gate before the final run
    bot = await bot_factory(platform, policy=TEAM, dm_approvers=dm)
    root, plan = await plan_posted(bot, fake_slack)

    await bot.driver.click(plan, "sft_revise", user=BOB, trigger="T-REV")
    view = await fake_slack.wait_for(lambda: next(iter(fake_slack.views.values()), None))
    await bot.driver.submit(view, user=BOB, epochs="2")
    v2 = await in_thread(fake_slack, root, lambda m: "Plan v2" in text_of(m) and find_element(m["blocks"], "sft_approve"))
    if dm:
        carol_v2 = await fake_slack.wait_for(
            lambda: len(fake_slack.messages.get("D0CAROL", [])) == 2 and fake_slack.messages["D0CAROL"][1]
        )
        assert "*Plan v2 of run #1* by u0alice waits for your approval: ≈ $" in carol_v2.view()["rendered"]  # amount, requester
        await bot.driver.click(carol_v2.view(), "sft_approve", user=CAROL, channel="D0CAROL")  # decided from her DM
    else:
        assert f"<@{CAROL}>, please approve" in text_of(v2) and not fake_slack.messages.get("D0CAROL")
        await press(bot, v2, "Approve", user=CAROL)

    gate = await in_thread(fake_slack, root, lambda m: find_element(m["blocks"], "sft_promote") is not None)
    await press(bot, gate, buttons(gate)[0], user=BOB)
    budget = await in_thread(fake_slack, root, lambda m: find_element(m["blocks"], "sft_budget_raise") is not None)
    await press(bot, budget, buttons(budget)[0], user=CAROL)
    await bot.log.wait_kind(events.ReportReady)
    await bot.settle()
    assert (await bot.runner.get(1)).phase is Phase.SUCCEEDED

    # Who decides what: plan v1 bob+carol; plan v2 carol (bob revised it: four eyes); the
    # promotion bob+carol; the budget carol (more money is approved like a plan).
    deciders = {"plan:v1": {BOB, CAROL}, "plan:v2": {CAROL}, "promotion": {BOB, CAROL}, "budget:1": {CAROL}}
    asks = {g: [who for _, gate_, who in pings(fake_slack) if gate_ == g] for g in deciders}
    for g, people in deciders.items():
        for person in (ALICE, BOB, CAROL):
            got = sum(person in who for who in asks[g])
            assert got == (1 if person in people else 0), f"{person} was notified {got}x about {g}"
    # Nothing else notified anyone but the final result, once, to the requester.
    stray = [(i, who) for i, g, who in pings(fake_slack) if g is None]
    assert [who for _, who in stray] == [{ALICE}]
    assert "your model is" in str(fake_slack.calls[stray[0][0]]["args"]["blocks"])  # the final result
    # No notification about a decision after it was decided (stamps and DM updates are edits).
    for g, message in (("plan:v1", plan), ("plan:v2", v2), ("promotion", gate), ("budget:1", budget)):
        decided = first_edit(fake_slack, message["ts"])
        assert all(i < decided for i, gate_, _ in pings(fake_slack) if gate_ == g), g

    if not dm:
        return
    # One decision updates every decider's DM: bob promoted, carol's DM says so, its buttons gone.
    carol_dms = [m.view() for m in fake_slack.messages["D0CAROL"]]
    promotion_dm = next(m for m in carol_dms if "the sweep is done" in m["rendered"])
    assert "Promoted #" in promotion_dm["rendered"] and f"by <@{BOB}>" in promotion_dm["rendered"]
    assert not buttons(promotion_dm) and promotion_dm["edits"] == 1
    v1_dms = [v for box in ("D0BOB", "D0CAROL") for m in fake_slack.messages[box] if "Plan v1" in (v := m.view())["rendered"]]
    assert len(v1_dms) == 2 and all(f"revised by <@{BOB}>" in m["rendered"] and not buttons(m) for m in v1_dms)


async def test_a_cancel_mid_sweep_leaves_every_job_in_its_final_state_on_the_scoreboard(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    platform = MemoryPlatform(polls_to_finish=400)
    bot = await bot_factory(platform)
    root, plan = await plan_posted(bot, fake_slack)
    await press(bot, plan, "Approve", user=BOB)
    running = await in_thread(fake_slack, root, lambda m: "Sweep — run #1" in text_of(m) and "done ≈" in text_of(m))
    assert re.search(r"⏳ \d+%", text_of(running))  # it was live: a percentage and a clock time
    await bot.driver.command("cancel 1", user=ALICE)
    confirm = await fake_slack.wait_for(
        lambda: [e for e in fake_slack.ephemerals(ALICE) if "Yes, cancel run #1" in e["rendered"]]
    )
    await bot.driver.click(confirm[-1], "sft_confirm_cancel", user=ALICE)
    await bot.log.wait_kind(events.RunCancelled)
    await bot.settle()
    last = text_of(scoreboard_of(fake_slack, root))
    assert "%" not in last and "left" not in last and "done ≈" not in last and "⏳" not in last
    assert "cancelled after" in last and last.count("🚫 cancelled") == 3
    said = [m for m in fake_slack.thread(CHANNEL, root["ts"])[1:] if "cancelled by" in text_of(m)]
    assert len(said) == 1 and "cancelled by u0alice" in text_of(said[0]) and text_of(said[0]).count("alice") == 1


@pytest.mark.parametrize(
    ("knob", "check", "evidence"),
    [
        ("base_knows", "does not beat the base model (0.000 vs 1.000)", "Compare examples"),
        ("nobody_knows", "every score is 0.000 — the evaluator may be broken", "Evaluation spec"),
    ],
)
async def test_the_promote_button_is_not_primary_when_the_evidence_says_check_first(
    bot_factory: MakeBot, fake_slack: FakeSlack, knob: str, check: str, evidence: str
) -> None:
    platform = sql_platform()
    platform.good_lr = None  # no candidate learns the task
    platform.base_knows = knob == "base_knows"
    bot = await bot_factory(platform, policy=Policy(approvers=[BOB]))
    root, plan = await plan_posted(bot, fake_slack, text=f"run dataset={TEXT2SQL} model=qwen3-8b eval=generate")
    await press(bot, plan, "Approve", user=BOB)
    gate = await in_thread(fake_slack, root, lambda m: find_element(m["blocks"], "sft_promote") is not None)
    assert "⚠️ *Check first:* " in text_of(gate) and check in text_of(gate)
    styled = {
        el["text"]["text"]: el.get("style")
        for b in gate["blocks"]
        if b["type"] == "actions"
        for el in b["elements"]
        if el["type"] == "button"
    }
    promote = next(label for label in styled if label.startswith("Promote #"))
    assert styled[promote] is None and styled[evidence] == "primary"
    assert f"<@{BOB}>: promote #" in text_of(gate)  # still his decision, asked once


async def test_the_home_tab_lists_a_budget_gate_with_its_buttons_and_a_click_there_decides_it(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    platform = MemoryPlatform()
    platform.job_cost_usd = 10.0  # a budget gate before the final run
    bot = await bot_factory(platform, policy=Policy(approvers=[CAROL], allow_self_approval=False, channels=[CHANNEL]))
    root, plan = await plan_posted(bot, fake_slack)
    await press(bot, plan, "Approve", user=CAROL)
    gate = await in_thread(fake_slack, root, lambda m: find_element(m["blocks"], "sft_promote") is not None)
    await press(bot, gate, buttons(gate)[0], user=CAROL)
    await bot.log.wait_kind(events.BudgetRequested)
    await bot.settle()

    fake_slack.home.pop(CAROL, None)
    await bot.driver.event({"type": "app_home_opened", "user": CAROL, "channel": "D0X", "tab": "home", "event_ts": "1.1"})
    home = await fake_slack.wait_for(lambda: fake_slack.home.get(CAROL))
    waiting = json.dumps(home["blocks"]).split("Waiting for you")[1].split("Your recent runs")[0]
    assert "approve more money, or skip the step" in waiting and "Approve $" in waiting and "Skip the final run" in waiting
    raise_ = find_element(home["blocks"], "sft_budget_raise")
    assert raise_ is not None
    # A click on the Home tab: no channel, a view container (judged in the run's own channel).
    action = {
        "action_id": "sft_budget_raise",
        "block_id": "b",
        "type": "button",
        "value": raise_["value"],
        "text": raise_["text"],
    }
    payload = block_actions(
        action, user=CAROL, channel=CHANNEL, message=None, response_url=fake_slack.response_url(CAROL, CHANNEL)
    )
    payload.pop("channel", None)
    payload["container"] = {"type": "view", "view_id": "VHU0CAROL"}
    payload["view"] = {"id": "VHU0CAROL", "type": "home"}
    fake_slack.home.pop(CAROL, None)
    assert (await bot.driver.interact(payload)).status == 200
    await bot.log.wait_kind(events.ReportReady)
    refreshed = await fake_slack.wait_for(lambda: fake_slack.home.get(CAROL))
    assert "approve more money" not in json.dumps(refreshed["blocks"])  # decided: it no longer waits for her
    await bot.settle()
    fake_slack.home.pop(CAROL, None)
    await bot.driver.event({"type": "app_home_opened", "user": CAROL, "channel": "D0X", "tab": "home", "event_ts": "1.2"})
    later = await fake_slack.wait_for(lambda: fake_slack.home.get(CAROL))
    deployments = json.dumps(later["blocks"]).split("Live deployments")[1]
    assert '"action_id": "sft_teardown"' in deployments and '"text": "Delete"' in deployments
