"""Base vs tuned in Slack, through the real Bolt app: the promotion gate shows base vs leader
and three side-by-side examples; a run whose adapter is never applied stops before deploy
with a "Deploy anyway" only an approver can press (the press is audited)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, BOB, CHANNEL, MakeBot, buttons, has, in_thread, press, root_of, text_of
from pipeline.domain.authz import Policy
from pipeline.domain.machine import Phase
from tests.handlers.slack_support import opened, refusal
from tests.paths import TEXT2SQL
from tests.pipeline.run.evaluation_support import sql_platform

ONLY_BOB = Policy(approvers=[BOB])
EVAL_RUN = f"run dataset={TEXT2SQL} model=qwen3-8b eval=generate"


def slackview_state(fake_slack: FakeSlack, root: dict[str, Any]) -> dict[str, Any]:
    """The thread as slackview (a dev tool, run by hand) reads it: to look at it at 480 and 420 px."""
    thread = fake_slack.thread(CHANNEL, root["ts"])
    return {
        "channel_name": "ml-team",
        "bot_name": "sftbot",
        "names": {ALICE: "alice", BOB: "bob"},
        "messages": [
            {"channel": CHANNEL, "ts": m["ts"], "thread_ts": root["ts"], "text": m.get("text", ""), "blocks": m.get("blocks")}
            for m in thread
        ],
    }


async def _gate(
    bot_factory: MakeBot, fake_slack: FakeSlack, platform: MemoryPlatform
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    bot = await bot_factory(platform, policy=ONLY_BOB)
    await bot.driver.command(EVAL_RUN, user=ALICE)
    root = await root_of(fake_slack)
    plan = await in_thread(fake_slack, root, has("Plan v1"))
    spec = await opened(bot, fake_slack, plan, "Evaluation spec")
    assert "The base model answers the same" in spec  # said before anyone approves the spend
    await press(bot, plan, "Approve", user=BOB)
    gate = await in_thread(fake_slack, root, lambda m: "sft_promote" in json.dumps(m["blocks"]))
    return bot, root, gate


async def test_the_gate_shows_base_vs_leader_and_three_examples(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot, root, gate = await _gate(bot_factory, fake_slack, sql_platform())
    shown = text_of(gate)
    assert "It scores *1.000* on 10 held-out prompts; the base model scores 0.000 (+1.000)" in shown
    assert "⚠️" not in shown and buttons(gate)[:2] == ["Promote #3", "Compare examples"]
    assert next(b for b in gate["blocks"] if b["type"] == "actions")["elements"][0].get("style") == "primary"
    examples = await opened(bot, fake_slack, gate, "Compare examples")  # three rows, one click away
    assert "*Base vs leader* on" in examples and "Base `qwen3-8b`: score *0.000*" in examples
    assert "score *1.000* (+1.000)" in examples and "✅ The leader beats the base model." in examples
    rows = [ln for ln in examples.splitlines() if ln.startswith("*Example ")]
    assert len(rows) == 3 and all("base 0.000 → leader 1.000" in ln for ln in rows)
    for label in ("*Prompt:*", "*Base:*", "*Leader:*", "*Expected:*"):
        assert examples.count(label) == 3
    assert "```" not in shown  # no monospace table: it would wrap on a phone
    (tmp_path / "slackview_gate.json").write_text(json.dumps(slackview_state(fake_slack, root)))
    print(f"slackview state: {tmp_path / 'slackview_gate.json'}")


async def test_identical_answers_block_the_deploy_until_an_approver_presses_deploy_anyway(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    platform = sql_platform()
    platform.ignores_adapter = True  # the adapter is never applied
    bot, root, gate = await _gate(bot_factory, fake_slack, platform)
    assert "⚠️ *Check first:* #" in text_of(gate) and "answers exactly like the base model on every prompt" in text_of(gate)
    primary = [el["text"]["text"] for b in gate["blocks"] if b["type"] == "actions" for el in b["elements"] if el.get("style")]
    assert primary == ["Compare examples"]  # the evidence is the primary button, not Promote
    await press(bot, gate, next(b for b in buttons(gate) if b.startswith("Promote")), user=BOB)
    blocked = await in_thread(fake_slack, root, has("deploy blocked"))
    stamped = await in_thread(fake_slack, root, lambda m: m["ts"] == gate["ts"] and f"by <@{BOB}>" in text_of(m))
    assert "⚠️ The leader answers exactly like the base model" in text_of(stamped)  # the verdict outlives the buttons
    said = "deploy blocked: waiting for u0bob to deploy anyway or cancel"  # the approver, not the requester
    waiting = await fake_slack.wait_for(lambda: next((m for m in fake_slack.roots(CHANNEL) if said in text_of(m)), None))
    assert "<@" not in text_of(waiting) and "alice" not in text_of(waiting).split("·", 1)[1]
    assert buttons(blocked) == ["Deploy anyway", "Cancel run"]
    assert "adapter was probably not loaded" in text_of(blocked) and f"*Decide:* <@{BOB}>" in text_of(blocked)
    run = await bot.runner.get(1)
    assert run.phase is Phase.AWAITING_INPUT

    await press(bot, blocked, "Deploy anyway", user=ALICE)  # she asked for the run, but may not spend on it
    said = await refusal(fake_slack, ALICE, "can deploy this run")
    assert f"<@{BOB}>" in said
    assert (await bot.runner.get(1)).phase is Phase.AWAITING_INPUT

    (tmp_path / "slackview_blocked.json").write_text(json.dumps(slackview_state(fake_slack, root)))
    await press(bot, blocked, "Deploy anyway", user=BOB)
    await in_thread(
        fake_slack, root, lambda m: m["ts"] == blocked["ts"] and f"*Deploy anyway*, decided by <@{BOB}>" in text_of(m)
    )
    await bot.runner.wait(run.id)
    await bot.settle()
    assert (await bot.runner.get(1)).phase is Phase.SUCCEEDED
    trail = await bot.runner.db.audit_trail(run.id)
    assert [(a.actor, a.action) for a in trail if a.action in ("deploy_blocked", "denied_answer", "answer")][-3:] == [
        ("sftbot", "deploy_blocked"),
        (ALICE, "denied_answer"),
        (BOB, "answer"),
    ]
