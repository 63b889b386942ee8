"""Four eyes through the real Bolt app, and a long DM that must not freeze anyone's acks.

Strict settings (approvers set, self-approval off, a channel list, a budget), the way a team
that cares about spend runs the bot.
"""

from __future__ import annotations

import asyncio
import time

from bot.testing.memory_platform import MemoryModels, MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, BOB, CAROL, CHANNEL, MakeBot, find_element, has, in_thread, press, root_of, text_of
from pipeline.domain.authz import Policy
from pipeline.domain.catalog import BaseModelInfo
from pipeline.store import runs
from tests.handlers.slack_support import answer_to, dm, plan_posted, refusal
from tests.paths import TEXT2SQL

DAVE = "U0DAVE"  # a channel member with no role
STRICT = Policy(approvers=[BOB, CAROL], admins=[DAVE + "-not"], channels=[CHANNEL], allow_self_approval=False, budget_usd=50)


async def test_the_approver_who_revised_the_plan_cannot_approve_it(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), policy=STRICT)
    root, plan = await plan_posted(bot, fake_slack, user=ALICE)
    await bot.driver.click(plan, "sft_revise", user=BOB, trigger="T-REV")
    view = await fake_slack.wait_for(lambda: next(iter(fake_slack.views.values()), None))
    assert (await bot.driver.submit(view, user=BOB, epochs="2")).status == 200
    v2 = await in_thread(fake_slack, root, has("Plan v2"))

    await bot.driver.click(v2, "sft_approve", user=BOB)  # BOB wrote v2: not his to approve
    said = await refusal(fake_slack, BOB, "someone else must approve it")
    assert f"<@{CAROL}>" in said
    assert (await bot.runner.get(1)).phase.value == "awaiting_plan_approval"

    await bot.driver.click(v2, "sft_approve", user=CAROL)  # the second pair of eyes
    await in_thread(fake_slack, root, lambda m: m["ts"] == v2["ts"] and f"Approved by <@{CAROL}>" in text_of(m))
    decisions = await bot.runner.db.gate_decisions((await bot.runner.get(1)).id)
    assert [(g.actor, g.decision) for g in decisions] == [(BOB, "revise"), (CAROL, "approve")]


async def test_a_member_cannot_revise_or_answer_someone_elses_run(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), policy=STRICT)
    await bot.driver.command(f"run dataset={TEXT2SQL}", user=ALICE)  # no model: the run asks
    root = await root_of(fake_slack)
    asked = await in_thread(fake_slack, root, has("needs an answer"))
    select = find_element(asked["blocks"], "sft_answer_select")
    assert select is not None
    pick = next(i for i, o in enumerate(select["options"]) if o["text"]["text"] == "qwen3-8b")

    await bot.driver.click(asked, "sft_answer_select", user=DAVE, option=pick)
    said = await refusal(fake_slack, DAVE, "only the person who started this run")
    assert "answer" in said
    assert (await bot.runner.get(1)).spec.base_models == ()  # the question is still open

    await bot.driver.click(asked, "sft_answer_select", user=ALICE, option=pick)  # the requester answers
    plan = await in_thread(fake_slack, root, has("Plan v1"))
    await bot.driver.click(plan, "sft_revise", user=DAVE, trigger="T-DAVE")
    await refusal(fake_slack, DAVE, "can revise it")
    assert not fake_slack.views  # no modal opened for him


class UnpricedModels(MemoryModels):
    """A model whose size the platform does not report, so no price band applies."""

    async def list_models(self) -> list[BaseModelInfo]:
        return [m.model_copy(update={"params_b": None}) for m in await super().list_models()]


class UnpricedPlatform(MemoryPlatform):
    def __init__(self) -> None:
        super().__init__()
        self.models = UnpricedModels()


async def test_an_unknown_estimate_under_a_budget_needs_an_admin(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    policy = STRICT.model_copy(update={"admins": [DAVE]})
    bot = await bot_factory(UnpricedPlatform(), policy=policy)
    root, plan = await plan_posted(bot, fake_slack, user=ALICE)
    assert "unknown" in text_of(plan).lower()
    await bot.driver.click(plan, "sft_approve", user=BOB)
    said = await refusal(fake_slack, BOB, "could not be estimated")
    assert f"<@{DAVE}>" in said and "$50" in said
    await bot.driver.click(plan, "sft_approve", user=DAVE)
    await in_thread(fake_slack, root, lambda m: m["ts"] == plan["ts"] and f"Approved by <@{DAVE}>" in text_of(m))


async def test_a_40k_character_dm_is_answered_within_a_second_and_acks_stay_fast(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000))
    # The shape that used to be quadratic: 'run ... with' and unclosed mentions, repeated.
    flood = dm(fake_slack, ("run sft on data with <@U " * 2000)[:40_000])
    start = time.perf_counter()
    reply = await bot.driver.event(flood)
    acks = [reply.seconds]
    # While it is handled, other people keep clicking and typing: every ack stays quick.
    others = await asyncio.gather(*(bot.driver.command("help", user=BOB) for _ in range(5)))
    acks += [r.seconds for r in others]
    answer = await answer_to(fake_slack, "D0BOB", flood, "4,000")
    answered = time.perf_counter() - start
    assert max(acks) < 1.0 and answered < 1.0, (acks, answered)
    assert "40,000 characters long" in answer["rendered"]
    assert await runs.list_runs(bot.runner.db) == []


async def test_an_approver_who_chose_the_base_model_in_an_answer_cannot_approve_the_plan(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    """Four eyes over the whole lineage: BOB answered the first question (the base model), ALICE
    the last one (how to judge); the plan is BOB's work too, so CAROL has to approve it."""
    platform = MemoryPlatform(polls_to_finish=10_000)
    bot = await bot_factory(platform, policy=STRICT, ask_evaluation=True)
    await bot.driver.command(f"run dataset={TEXT2SQL}", user=ALICE)  # no model: the run asks
    root = await root_of(fake_slack)
    asked = await in_thread(fake_slack, root, has("needs an answer"))
    select = find_element(asked["blocks"], "sft_answer_select")
    assert select is not None
    pick = next(i for i, o in enumerate(select["options"]) if o["text"]["text"] == "qwen3-8b")
    await bot.driver.click(asked, "sft_answer_select", user=BOB, option=pick)  # an approver chooses the model
    judged = await in_thread(fake_slack, root, has("How should I judge"))
    await press(bot, judged, "Validation loss is fine", user=ALICE)  # the requester answers last
    plan = await in_thread(fake_slack, root, has("Plan v1"))

    await bot.driver.click(plan, "sft_approve", user=BOB)
    said = await refusal(fake_slack, BOB, "someone else must approve it")
    assert f"<@{CAROL}>" in said
    assert (await bot.runner.get(1)).phase.value == "awaiting_plan_approval" and not platform.jobs
    denied = await bot.runner.db.fetchall("SELECT actor FROM audit_events WHERE action='denied_approve'")
    assert [r[0] for r in denied] == [BOB]

    await bot.driver.click(plan, "sft_approve", user=CAROL)  # the second pair of eyes
    await in_thread(fake_slack, root, lambda m: m["ts"] == plan["ts"] and f"Approved by <@{CAROL}>" in text_of(m))
