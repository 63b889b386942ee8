"""The Slack surface end to end: signed requests into the real Bolt app, a real runner on the
in-process platform, and the fake Slack Web API; assertions are on what a person sees."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.testing.fireworks import FakeFireworks
from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, BOB, CAROL, CHANNEL, Bot, MakeBot, find_element, has, in_thread, root_of, text_of
from pipeline.domain.authz import Policy
from pipeline.domain.machine import Phase
from pipeline.platforms.fireworks.jobs import WandbSettings
from pipeline.platforms.fireworks.platform import FireworksPlatform
from pipeline.platforms.fireworks.settings import FireworksSettings
from pipeline.run import events
from pipeline.store import runs
from pipeline.store.db import Database
from tests.handlers.slack_support import plan_posted
from tests.paths import DATASETS, RUN

WANDB_KEY = "wandb-key-0123456789abcdef0123"


async def test_whole_run_from_slash_command_to_deployed_model(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    """The one full run: the real Fireworks platform code (official SDK) against the fake Fireworks."""
    async with FakeFireworks(job_seconds=0.15, deployment_seconds=0.05) as fireworks:
        platform = FireworksPlatform(
            FireworksSettings(
                fireworks.api_key,
                fireworks.account,
                base_url=fireworks.base_url,
                poll_seconds=0.01,
                retry_base_delay=0.01,
                quota_delay=0.05,
                wandb=WandbSettings(api_key=WANDB_KEY, project="team-sft"),  # echoed back on every job
            )
        )
        try:
            bot = await bot_factory(platform, policy=Policy(approvers=[BOB, CAROL]))
            await whole_run(bot, fake_slack, fireworks)
        finally:
            await platform.close()


async def whole_run(bot: Bot, fake_slack: FakeSlack, fireworks: FakeFireworks) -> None:
    reply = await bot.driver.command(RUN, user=ALICE)
    assert reply.status == 200 and reply.seconds < 3.0 and not reply.body  # acked at once, nothing awaited
    started = await fake_slack.wait_for(lambda: fake_slack.ephemerals(ALICE))
    assert len(started) == 1 and "Inspecting `text2sql_dataset.jsonl` for run #1" in started[0]["rendered"]

    root = await root_of(fake_slack)
    plan = await in_thread(fake_slack, root, has("Plan v1"))
    assert f"<@{BOB}> or <@{CAROL}>, please approve" in text_of(plan)  # the people who can approve are asked by name
    waiting = await fake_slack.wait_for(lambda: next((m for m in fake_slack.roots(CHANNEL) if "waiting for" in text_of(m)), None))
    assert "waiting for u0bob or u0carol to approve plan v1" in text_of(waiting)  # named, not pinged again
    assert "<@" not in text_of(waiting)  # the root never pings
    heading = plan["blocks"][0]["text"]["text"]
    assert re.search(r"^Plan v1 · run #1 · ≈ \$\d+\.\d\d · ~\d+ min$", heading), heading  # the total and the time
    for word in (
        "Training",
        "Deployment",
        "/h until deleted or scaled to zero",
        "Judged by",
        "range",
        "prices of",
        "Price details",
    ):
        assert word in text_of(plan)
    assert find_element(plan["blocks"], "sft_approve") is not None

    await bot.driver.click(plan, "sft_approve", user=BOB)
    stamped = await in_thread(fake_slack, root, lambda m: m["ts"] == plan["ts"] and "Approved by" in text_of(m))
    assert re.search(rf"✅ Approved by <@{BOB}> at <!date\^\d+\^{{time}}\|\d\d:\d\d UTC>", text_of(stamped))
    assert find_element(stamped["blocks"], "sft_approve") is None  # the stamp replaced the buttons

    gate = await in_thread(fake_slack, root, lambda m: find_element(m["blocks"], "sft_promote") is not None)
    assert f"<@{BOB}> or <@{CAROL}>: *promote #" in text_of(gate)  # a new message: it notifies the deciders
    boards = [m for m in fake_slack.thread(CHANNEL, root["ts"]) if "Sweep — run #1" in text_of(m)]
    assert len(boards) == 1 and boards[0]["ts"] != gate["ts"] and float(boards[0]["ts"]) < float(gate["ts"])
    assert "3/3 done in" in text_of(boards[0]) and "%" not in text_of(boards[0])  # the table's last edit: final states
    await fake_slack.wait_for(
        lambda: any(u.filename == "loss_curves.png" and u.thread_ts == root["ts"] for u in fake_slack.uploads())
    )

    ranked = gate_order(gate)
    await bot.driver.click(gate, "sft_choose_candidate", user=BOB, option=0)  # the second-best
    await in_thread(fake_slack, root, lambda m: m["ts"] == gate["ts"] and f"Promoted #{ranked[1]} by <@{BOB}>" in text_of(m))

    final = await in_thread(fake_slack, root, has("your model is live"))
    run = await bot.runner.get(1)
    assert f"<@{ALICE}>" in text_of(final)  # the requester learns the model is live
    snippet = next(b for b in final["blocks"] if b["type"] == "rich_text")  # code as code, not a mrkdwn fence
    code = snippet["elements"][0]["elements"][0]["text"]
    assert f"sftbot-{run.id}-dep" in code and "FIREWORKS_API_KEY" in code
    assert "Billing now" in text_of(final) and "/h until deleted or scaled to zero" in text_of(final)
    assert len(code.splitlines()) <= 6  # a call that fits a phone; the full snippet is in the report
    assert fireworks.api_key not in str(fake_slack.calls) and WANDB_KEY not in str(fake_slack.calls)  # secrets never reach Slack
    assert f"<https://wandb.ai/team-sft/runs/sftbot-{run.id}-final|W&B run>" in text_of(final)  # its curves, one click away
    assert any(u.filename == "final_report.md" and u.thread_ts == root["ts"] for u in fake_slack.uploads())
    await bot.settle()
    assert fake_slack.thread(CHANNEL, root["ts"])[-1]["ts"] == final["ts"]  # the thread ends with the answer
    done = await fake_slack.wait_for(lambda: next((m for m in fake_slack.roots(CHANNEL) if "✅" in text_of(m)), None))
    run = await bot.runner.get(1)
    assert run.phase is Phase.SUCCEEDED and run.promoted is not None and run.promoted.number == ranked[1]
    assert all(n == 1 for n in fireworks.create_counts("supervisedFineTuningJobs").values())
    assert f"sftbot-{run.id}-final" in text_of(done)


def gate_order(gate: dict[str, Any]) -> list[int]:
    """Candidate numbers best first, as the gate shows them (button = best, select = the rest)."""
    best = find_element(gate["blocks"], "sft_promote")
    select = find_element(gate["blocks"], "sft_choose_candidate")
    assert best is not None and select is not None
    return [int(best["text"]["text"].split("#")[1].split()[0])] + [
        int(o["value"].split("|")[1].removeprefix("c")) for o in select["options"]
    ]


async def test_unauthorized_click_is_denied_explained_and_audited(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    fake_slack.groups["S0APPROVERS"] = [CAROL]
    bot = await bot_factory(policy=Policy(approvers=["S0APPROVERS"], allow_self_approval=False))
    root, plan = await plan_posted(bot, fake_slack)
    await bot.driver.click(plan, "sft_approve", user=ALICE)
    said = "only <!subteam^S0APPROVERS> can approve this run; they were asked in its thread"
    await fake_slack.wait_for(lambda: any(said in e["rendered"] for e in fake_slack.ephemerals(ALICE)))
    run = await bot.runner.get(1)
    assert run.phase is Phase.AWAITING_PLAN_APPROVAL
    trail = await bot.runner.db.audit_trail(run.id)
    assert trail[-1].action == "denied_approve" and trail[-1].actor == ALICE
    await bot.settle()
    assert find_element(fake_slack.thread(CHANNEL, root["ts"])[1]["blocks"], "sft_approve") is not None  # still open
    await bot.driver.click(plan, "sft_approve", user=CAROL)  # a member of the approvers' user group
    await bot.log.wait_kind(events.PlanDecided, run.id)
    assert fake_slack.calls_to("usergroups.users.list")


async def test_double_click_gets_a_polite_note_and_no_second_action(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000))
    _root, plan = await plan_posted(bot, fake_slack)
    await bot.driver.click(plan, "sft_approve", user=BOB)
    await bot.log.wait_kind(events.PlanDecided)
    await bot.driver.click(plan, "sft_approve", user=CAROL)  # the same, now stale message
    note = await fake_slack.wait_for(lambda: fake_slack.ephemerals(CAROL))
    assert f"already approved by <@{BOB}>" in note[-1]["rendered"]
    run = await bot.runner.get(1)
    assert [a.action for a in await bot.runner.db.audit_trail(run.id)].count("approve") == 1
    assert [g.actor for g in await bot.runner.db.gate_decisions(run.id)] == [BOB]


async def test_revise_in_the_modal_with_inline_errors_then_plan_v2(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory()
    root, plan = await plan_posted(bot, fake_slack)
    await bot.driver.click(plan, "sft_revise", user=BOB, trigger="T-REVISE-1")
    view = await fake_slack.wait_for(lambda: next(iter(fake_slack.views.values()), None))
    initial = {b["block_id"]: b["element"].get("initial_value") for b in view["blocks"] if b["type"] == "input"}
    assert initial["models"] == "qwen3-8b" and initial["grid"] == "8:0.00015, 16:0.0001, 32:5e-05" and initial["epochs"] == "5"

    bad = await bot.driver.submit(view, user=BOB, epochs="lots", grid="7:1e-4")
    assert bad.json()["response_action"] == "errors"
    assert "whole number" in bad.json()["errors"]["epochs"] and "LoRA rank 7" in bad.json()["errors"]["grid"]
    assert (await bot.runner.get(1)).plan_version == 1

    ok = await bot.driver.submit(view, user=BOB, epochs="2")
    assert ok.status == 200 and not ok.body
    v2 = await in_thread(fake_slack, root, has("Plan v2"))
    assert "Changed by u0bob:* epochs 5 → 2" in text_of(v2)  # named: a revision does not ping its reviser
    v1 = await in_thread(fake_slack, root, lambda m: m["ts"] == plan["ts"] and "plan v2 below" in text_of(m))
    assert f"revised by <@{BOB}>" in text_of(v1) and find_element(v1["blocks"], "sft_approve") is None  # an edit: no ping
    assert len(v1["blocks"]) == 1  # the superseded plan shrinks to one line
    run = await bot.runner.get(1)
    assert (await runs.plan_statuses(bot.runner.db, run.id)) == {1: "superseded", 2: "proposed"}

    await bot.driver.click(plan, "sft_revise", user=BOB, trigger="T-REVISE-2")  # the old plan: closed
    note = await fake_slack.wait_for(lambda: fake_slack.ephemerals(BOB))
    assert "already revised" in note[-1]["rendered"]


async def test_cancel_mid_sweep_after_confirming(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    platform = MemoryPlatform()
    platform.hold = True
    bot = await bot_factory(platform)
    root, plan = await plan_posted(bot, fake_slack)
    await bot.driver.click(plan, "sft_approve", user=BOB)
    await in_thread(fake_slack, root, has("Sweep — run #1"))
    await bot.driver.command("cancel 1", user=ALICE)
    confirm = await fake_slack.wait_for(
        lambda: [e for e in fake_slack.ephemerals(ALICE) if "Yes, cancel run #1" in e["rendered"]]
    )
    assert (await bot.runner.get(1)).phase is Phase.SWEEPING  # nothing happens before the confirmation
    await bot.driver.click(confirm[-1], "sft_confirm_cancel", user=ALICE)
    await fake_slack.wait_for(
        lambda: any("cancelled" in e["rendered"] and e.get("replace_original") for e in fake_slack.ephemerals(ALICE))
    )
    run = await bot.runner.get(1)
    await bot.log.wait_kind(events.RunCancelled, run.id)
    assert run.phase is Phase.CANCELLED and platform.jobs and platform.cancelled == set(platform.jobs)
    await fake_slack.wait_for(lambda: any("🚫" in text_of(m) for m in fake_slack.roots(CHANNEL)))
    await in_thread(fake_slack, root, has("Run #1 cancelled by"))


async def test_a_click_on_the_plan_still_works_after_a_restart(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    path = tmp_path / "restart.sqlite3"
    db1 = await Database.open(path)
    first = await bot_factory(db=db1)
    root, plan = await plan_posted(first, fake_slack)
    await first.settle()
    await first.close()
    await db1.close()

    db2 = await Database.open(path)
    try:
        second = await bot_factory(MemoryPlatform(), db=db2)
        assert await second.runner.resume_all() == []  # waiting at a gate: nothing to redo
        await second.driver.click(plan, "sft_approve", user=BOB)
        await in_thread(fake_slack, root, lambda m: m["ts"] == plan["ts"] and "Approved by" in text_of(m))
        await in_thread(fake_slack, root, lambda m: find_element(m["blocks"], "sft_promote") is not None)
        assert len(fake_slack.roots(CHANNEL)) == 1  # the same root, edited; no new one
        assert sum("Plan v1" in text_of(m) for m in fake_slack.thread(CHANNEL, root["ts"])) == 1
    finally:
        await second.close()
        await db2.close()


async def test_a_broken_dataset_is_told_to_the_requester_only_and_spends_nothing(
    bot_factory: MakeBot, fake_slack: FakeSlack
) -> None:
    platform = MemoryPlatform()
    bot = await bot_factory(platform)
    await bot.driver.command(f"run dataset={DATASETS / 'chat_minimal.jsonl'} model=qwen3-8b", user=ALICE)
    failed = await fake_slack.wait_for(lambda: [e for e in fake_slack.ephemerals(ALICE) if "failed" in e["rendered"]])
    text = failed[-1]["rendered"]
    assert "❌" in text and "fewer than 3 examples" in text and "Nothing was started or spent" in text
    assert "Or by hand: `/sft run dataset=" in text and "Retry" in text
    await bot.log.wait_kind(events.RunFailed, (await bot.runner.get(1)).id)
    await bot.settle()
    assert not fake_slack.roots(CHANNEL)  # a run that never had a plan stays the requester's business
    assert not platform.jobs and not platform.uploaded
    await bot.driver.click(failed[-1], "sft_retry", user=ALICE)  # the same request, as a new run
    again = await fake_slack.wait_for(lambda: [e for e in fake_slack.ephemerals(ALICE) if "run #2 failed" in e["rendered"]])
    assert "fewer than 3 examples" in again[-1]["rendered"]
    assert (await bot.runner.get(2)).instruction == (await bot.runner.get(1)).instruction


async def test_scoreboard_edits_are_coalesced_per_run(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    from pipeline.domain.records import CandidateRecord
    from pipeline.domain.slots import CandidateState, Slot

    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000), live_interval=60.0)
    root, _ = await plan_posted(bot, fake_slack)
    run = await bot.runner.get(1)
    for step in range(1, 11):
        cands = [
            CandidateRecord(
                run_id=run.id,
                slot=Slot.candidate(i),
                job_id=f"j{i}",
                base_model="qwen3-8b",
                lora_rank=8 * i,
                learning_rate=1e-4,
                epochs=1,
                train_samples=10,
                state=CandidateState.RUNNING,
                progress=step * 10.0,
            )
            for i in (1, 2)
        ]
        await bot.runner.bus.publish(events.ScoreboardChanged(run=run, candidates=tuple(cands)))
    await bot.runner.bus.publish(events.PromotionRequested(run=run, ranked=tuple(cands), summary="winner #1"))
    await bot.settle()
    board = next(m for m in fake_slack.thread(CHANNEL, root["ts"]) if "Sweep — run #1" in m["rendered"])
    writes = [
        c
        for c in fake_slack.calls
        if c["method"] in ("chat.postMessage", "chat.update") and "Sweep for run #1" in str(c["args"].get("text"))
    ]
    assert len(writes) == 2  # the first state at once, the last one flushed before the gate
    assert "100%" in str(writes[-1]["args"]["blocks"])
    assert board["edits"] == 1
    gate = next(m for m in fake_slack.thread(CHANNEL, root["ts"]) if "nothing can be promoted" in m["rendered"])
    assert gate["ts"] != board["ts"]  # the gate is a message of its own (it notifies); the table stays a table


async def test_rate_limits_and_server_errors_are_retried(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    fake_slack.fail_next.extend([("chat.postMessage", 429), ("chat.postMessage", 503)])
    fake_slack.retry_after = 1
    bot = await bot_factory(MemoryPlatform(polls_to_finish=10_000))
    _root, _plan = await plan_posted(bot, fake_slack)
    assert fake_slack.injected == 2
    posts = fake_slack.calls_to("chat.postMessage")
    assert [c["status"] for c in posts][:3] == [429, 503, 200]
    assert posts[1]["at"] - posts[0]["at"] >= 1.0  # Retry-After was honoured
