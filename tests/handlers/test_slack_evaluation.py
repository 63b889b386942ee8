"""Evaluation through Slack, end to end: signed requests into the real Bolt app, a real runner
(asking how to evaluate, as the bot does) on the in-process platform, and the fake Slack Web
API — the question's buttons, evaluator files attached in the thread, the generated
evaluator's review with the plan, scores on the board and the gate."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from bot.testing.slack import FakeSlack
from bot.testing.slack_app import (
    ALICE,
    BOB,
    CHANNEL,
    Bot,
    MakeBot,
    buttons,
    find_element,
    has,
    in_thread,
    press,
    root_of,
    text_of,
)
from handlers.render import board, details, plan_message, questions
from handlers.stamps import stamp_text
from pipeline.domain.gates import GateKey, Question, QuestionKind
from pipeline.domain.machine import Phase
from pipeline.domain.records import GateDecision
from pipeline.domain.spec import EvalKind, Evaluation
from pipeline.evaluation.eval_types import EvaluatorInfo
from pipeline.run import events
from pipeline.store import runs
from pipeline.store.db import Database
from tests.handlers.render.samples import NASTY, cands, plan, run
from tests.handlers.slack_checks import check_blocks, check_message
from tests.handlers.slack_support import attach, opened, scoreboard_of
from tests.paths import RUN
from tests.pipeline.run.evaluation_support import sql_platform

EXACT = (
    "def evaluate(messages, ground_truth=None, **kwargs):\n"
    "    out = messages[-1]['content'].strip().lower()\n"
    "    return {'score': float(out == (ground_truth or '').strip().lower()), 'reason': 'exact match'}\n"
)
BROKEN = "def evaluate(messages, ground_truth=None, **kw):\n    raise RuntimeError('boom')\n"
# Scores the data's own answers, but cannot cope with what the weak candidates write.
PICKY = (
    "def evaluate(messages, ground_truth=None, **kwargs):\n"
    "    out = messages[-1]['content']\n"
    "    if 'nowhere' in out:\n"
    "        raise ValueError('cannot parse this answer')\n"
    "    return {'score': 1.0, 'reason': 'parsed'}\n"
)


async def asked(bot: Bot, slack: FakeSlack, text: str = RUN) -> tuple[dict[str, Any], dict[str, Any]]:
    await bot.driver.command(text, user=ALICE)
    root = await root_of(slack)
    return root, await in_thread(slack, root, has("needs an answer"))


def ephemeral_with(slack: FakeSlack, user: str, fragment: str) -> Awaitable[Any]:
    return slack.wait_for(lambda: [e for e in slack.ephemerals(user) if fragment in e["rendered"]])


async def test_generated_evaluator_reviewed_with_the_plan_and_ranking_the_gate(
    bot_factory: MakeBot, fake_slack: FakeSlack, db: Database
) -> None:
    platform = sql_platform()
    bot = await bot_factory(platform, ask_evaluation=True)
    root, question = await asked(bot, fake_slack)
    assert buttons(question) == ["Validation loss is fine", "Use my evaluator", "Generate one for me", "Cancel run"]
    assert "How should I judge the candidates?" in text_of(question) and "Path" not in text_of(question)

    await press(bot, question, "Generate one for me", user=ALICE)
    await in_thread(
        fake_slack, root, lambda m: m["ts"] == question["ts"] and f"Answered *Generate one for me* by <@{ALICE}>" in text_of(m)
    )
    posted = await in_thread(fake_slack, root, has("Plan v1"))
    shown = text_of(posted)
    assert "*Judged by*\nan evaluator generated from the data" in shown and "tried on 3 rows ✓" in shown
    spec = await opened(bot, fake_slack, posted, "Evaluation spec")  # the evidence, one click away
    assert "How candidates are judged:* an evaluator I generated from your data (SQL check)" in spec
    assert "I tried it on 3 reference answers from your data" in spec and "held-out prompts" in spec
    assert "*Evaluation spec (SQL query)*" in spec  # eval_spec.md as mrkdwn: the heading bold, not "# …"
    assert "# Evaluation" not in spec and "**Detected" not in spec, spec

    run_ = await bot.runner.get(1)
    proposed = await runs.get_plan(db, run_.id, 1)
    assert proposed is not None and proposed.evaluator is not None
    files = {"evaluator.py": Path(proposed.evaluator.evaluator_path)}  # the spec is the modal, not a second file
    ups = await fake_slack.wait_for(
        lambda: (got := [u for u in fake_slack.uploads() if u.thread_ts == root["ts"]]) and len(got) == 1 and got
    )
    assert {u.filename: u.data for u in ups} == {name: path.read_bytes() for name, path in files.items()}
    await bot.settle()
    order = [m["ts"] for m in fake_slack.thread(CHANNEL, root["ts"])]
    assert order.index(posted["ts"]) < min(order.index(m["ts"]) for m in fake_slack.thread(CHANNEL, root["ts"]) if m["files"])

    # A restarted bot re-announcing the plan edits the same message and uploads nothing again.
    await bot.close()
    bot = await bot_factory(platform, ask_evaluation=True)
    assert await bot.runner.resume_all() == []  # at a gate: it announces itself again, nothing is redone
    await bot.settle()
    assert len(fake_slack.uploads()) == 1
    assert sum("Plan v1" in text_of(m) for m in fake_slack.thread(CHANNEL, root["ts"])) == 1

    await press(bot, posted, "Approve", user=BOB)
    gate = await in_thread(fake_slack, root, lambda m: find_element(m["blocks"], "sft_promote") is not None)
    assert "It scores *1.000*" in text_of(gate) and "ranked by mean evaluator score" in text_of(gate)
    cs = {c.slot: c for c in await runs.candidates(db, run_.id)}
    good = next(c for c in cs.values() if c.learning_rate == platform.good_lr)
    lowest_loss = min(cs.values(), key=lambda c: c.val_loss or 0.0)
    assert lowest_loss.slot != good.slot  # validation loss alone would have picked another one
    best = find_element(gate["blocks"], "sft_promote")
    assert best is not None and best["text"]["text"] == f"Promote #{good.slot.number}"
    select = find_element(gate["blocks"], "sft_choose_candidate")
    assert select is not None and all("score 0.000" in o["text"]["text"] for o in select["options"])
    row = next(line for line in text_of(scoreboard_of(fake_slack, root)).splitlines() if f"*#{good.slot.number}*" in line)
    assert row.startswith("🏆") and "score *1.000*" in row  # the leader by score, marked


async def test_use_my_evaluator_asks_for_the_file_and_the_attachment_answers(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await bot_factory(sql_platform(), ask_evaluation=True)
    root, question = await asked(bot, fake_slack)
    await press(bot, question, "Use my evaluator", user=ALICE)
    request = await in_thread(fake_slack, root, has("Send me your evaluator"))
    assert "attach the `.py` file here in this thread" in text_of(request) and "`evaluator: my_eval.py`" in text_of(request)
    run_ = await bot.runner.get(1)
    assert run_.phase is Phase.AWAITING_INPUT and run_.question is not None and run_.question.kind.value == "evaluation"

    await press(bot, question, "Use my evaluator", user=BOB)  # asked once; a second click gets a pointer
    await ephemeral_with(fake_slack, BOB, "I've asked for your evaluator")
    await attach(bot, fake_slack, root, "notes.txt", "not python")
    await ephemeral_with(fake_slack, ALICE, "Python file (`.py`)")
    await attach(bot, fake_slack, root, "big.py", "#" * 300_000)
    await ephemeral_with(fake_slack, ALICE, "must be under 256 KB")
    await bot.driver.event(fake_slack.user_says(CHANNEL, "evaluator: missing.py", user=ALICE, thread_ts=root["ts"]))
    await ephemeral_with(fake_slack, ALICE, "evaluator missing.py not found")

    event = await attach(bot, fake_slack, root, "my exact/eval!.py", EXACT)
    posted = await in_thread(fake_slack, root, has("Plan v1"))
    # <data dir>/evaluators without SFTBOT_EVALUATOR_DIR, under a name of its own
    (saved,) = (tmp_path / "data" / "evaluators").glob(f"{run_.id}-*-my_exact_eval.py")
    assert saved.read_text() == EXACT
    spec = await opened(bot, fake_slack, posted, "Evaluation spec")
    assert f"u0alice's evaluator file `{saved.name}`" in text_of(posted)  # named: the plan does not ping its owner
    assert f"<@{ALICE}>'s evaluator file `{saved.name}`" in spec and "I tried it on 3 reference answers" in spec
    await in_thread(
        fake_slack,
        root,
        lambda m: m["ts"] == question["ts"] and f"Answered *Use my evaluator* `{saved.name}` by <@{ALICE}>" in text_of(m),
    )
    await in_thread(fake_slack, root, has(f"Got `{saved.name}` from <@{ALICE}>"))
    downloads = fake_slack.calls_to("files.download")
    assert downloads and all(c["status"] == 200 for c in downloads)  # fetched with the bot token
    assert "xoxb" not in json.dumps([c["args"] for c in fake_slack.calls if c["method"] != "files.download"])

    # The same message delivered again as a mention: nothing more happens.
    await bot.driver.event({**event, "type": "app_mention", "text": "<@UBOT>"})
    await bot.settle()
    decisions = await bot.runner.db.gate_decisions(run_.id)
    assert [(str(g.gate), g.actor, g.details["answer"]) for g in decisions] == [("input:1", ALICE, f"evaluator:{saved.name}")]
    assert not any(u.filename == "evaluator.py" for u in fake_slack.uploads())  # their own file is not echoed back


async def test_a_reply_naming_a_file_in_the_evaluator_folder_answers(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = await bot_factory(sql_platform(), ask_evaluation=True)
    folder = tmp_path / "data" / "evaluators"
    folder.mkdir(parents=True)
    (folder / "team_exact.py").write_text(EXACT)
    root, _ = await asked(bot, fake_slack)
    said = fake_slack.user_says(CHANNEL, "<@UBOT> evaluator: `team_exact.py`", user=BOB, thread_ts=root["ts"])
    await bot.driver.event({**said, "type": "app_mention"})
    await bot.driver.event(said)  # the same message as a channel message event
    posted = await in_thread(fake_slack, root, has("Plan v1"))
    assert "u0bob's evaluator file `team_exact.py`" in text_of(posted)  # BOB named it: his, not the requester's
    await bot.settle()
    assert len(await bot.runner.db.gate_decisions((await bot.runner.get(1)).id)) == 1


async def test_a_broken_evaluator_asks_again_with_two_buttons(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    platform = sql_platform()
    bot = await bot_factory(platform, ask_evaluation=True)
    root, question = await asked(bot, fake_slack)
    await press(bot, question, "Use my evaluator", user=ALICE)
    await in_thread(fake_slack, root, has("Send me your evaluator"))
    await attach(bot, fake_slack, root, "broken.py", BROKEN)
    failed = await in_thread(fake_slack, root, has("needs an answer", "evaluator failed"))
    assert buttons(failed) == ["Continue with validation loss", "Cancel run"]
    assert "boom" not in text_of(failed)  # the evaluator's own error text is not for the channel...
    told = await fake_slack.wait_for(lambda: [e for e in fake_slack.ephemerals(ALICE) if "boom" in e["rendered"]])
    assert told and all("boom" not in e["rendered"] for e in fake_slack.ephemerals(BOB))  # ...only for who attached it
    assert "Nothing has been spent" in text_of(failed) and not platform.jobs

    await press(bot, failed, "Continue with validation loss", user=ALICE)
    await in_thread(
        fake_slack, root, lambda m: m["ts"] == failed["ts"] and "Answered *Continue with validation loss*" in text_of(m)
    )
    posted = await in_thread(fake_slack, root, has("Plan v1"))
    assert "*Judged by*\nvalidation loss" in text_of(posted) and "How candidates are judged" not in text_of(posted)
    assert (await bot.runner.get(1)).spec.evaluation == Evaluation(kind=EvalKind.LOSS)


async def test_cancel_on_a_broken_evaluator_cancels_the_run(bot_factory: MakeBot, fake_slack: FakeSlack) -> None:
    bot = await bot_factory(sql_platform(), ask_evaluation=True)
    root, question = await asked(bot, fake_slack, f"{RUN} eval=evaluator:broken.py")
    assert "not found" in text_of(question)  # no such file yet: asked how to judge instead
    await attach(bot, fake_slack, root, "broken.py", BROKEN)
    failed = await in_thread(fake_slack, root, has("needs an answer", "evaluator failed"))
    await press(bot, failed, "Cancel run", user=ALICE)
    run_ = await bot.runner.get(1)
    await bot.log.wait_kind(events.RunCancelled, run_.id)
    await in_thread(fake_slack, root, lambda m: m["ts"] == failed["ts"] and f"Cancelled by <@{ALICE}>" in text_of(m))
    assert (await bot.runner.get(1)).phase is Phase.CANCELLED


async def test_an_evaluator_failing_on_candidates_is_noticed_in_the_thread(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    folder = tmp_path / "data" / "evaluators"
    folder.mkdir(parents=True)
    (folder / "picky.py").write_text(PICKY)
    bot = await bot_factory(sql_platform(), ask_evaluation=True)
    await bot.driver.command(f"{RUN} eval=evaluator:picky.py", user=ALICE)
    root = await root_of(fake_slack)
    posted = await in_thread(fake_slack, root, has("Plan v1"))
    await press(bot, posted, "Approve", user=BOB)
    notice = await in_thread(fake_slack, root, has("The evaluator failed on"))
    assert text_of(notice).startswith("⚠️") and "cannot parse this answer" in text_of(notice)
    gate = await in_thread(fake_slack, root, lambda m: find_element(m["blocks"], "sft_promote") is not None)
    assert "It has the lowest validation loss" in text_of(gate) and "The evaluator failed on" in text_of(gate)


async def test_free_text_falls_back_to_validation_loss_and_the_plan_says_so(
    bot_factory: MakeBot, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    data = tmp_path / "prose.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Tell me something {i}"},
                {"role": "assistant", "content": f"The weather {'quite ' * (i % 4)}differs because of reason {i} and more."},
            ]
        }
        for i in range(40)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bot = await bot_factory(ask_evaluation=True, dataset_dir=tmp_path)
    root, question = await asked(bot, fake_slack, f"run dataset={data} model=qwen3-8b")
    await press(bot, question, "Generate one for me", user=ALICE)
    posted = await in_thread(fake_slack, root, has("Plan v1"))
    assert "*Judged by*\nvalidation loss" in text_of(posted) and "validation loss instead" in text_of(posted)
    await bot.settle()
    assert not fake_slack.uploads()


def _review_plan(text: str, n: int) -> Any:
    p = plan(n, text=text)
    ev = EvaluatorInfo(
        kind="sql",
        summary=f"Outputs are SQL {text}",
        evaluator_path="/nope/evaluator.py",
        spec_path="/nope/eval_spec.md",
        validated_on=3,
    )
    return p.model_copy(update={"evaluator": ev, "evaluation": Evaluation(kind=EvalKind.GENERATE), "eval_examples": 200})


@pytest.mark.parametrize(("text", "n"), [("", 3), (NASTY, 3), (NASTY * 60, 150)], ids=["plain", "nasty", "extreme"])
def test_evaluation_messages_fit_slack_limits(text: str, n: int) -> None:
    r = run(text=text)
    excerpt = f"# Evaluation spec {text}\n" + f"- a line {text}\n" * 400
    fallback = plan(n, text=text).model_copy(
        update={"fallback_note": f"Free text {text}. so the plan uses validation loss instead."}
    )
    user_plan = _review_plan(text, n).model_copy(
        update={
            "evaluator": EvaluatorInfo(kind="user", summary=f"your evaluator x{text}", evaluator_path="/x.py", validated_on=1),
            "evaluation": Evaluation(kind=EvalKind.EVALUATOR, ref=f"x{text}.py"),
        }
    )
    answered = GateDecision(
        run_id=r.id,
        gate="input:4",
        decision="answer",
        actor="U0BOB",
        details={"question": "evaluation", "answer": "loss"},
        decided_at=0.0,
    )
    stamp = stamp_text(GateKey.input(4), answered)
    scored = cands(n, text=text)
    for i, c in enumerate(scored):
        c.score = i / max(n, 1)
    msgs = {
        "question": questions.question(
            r, Question(kind=QuestionKind.EVALUATION, text=f"How? {text}", choices=["loss", "evaluator", "generate"], number=4)
        ),
        "failed": questions.question(
            r, Question(kind=QuestionKind.EVALUATOR_FAILED, text=f"Broken: {text}", choices=["loss", "cancel"], number=5)
        ),
        "request": questions.evaluator_request(r),
        "plan_generated": plan_message.plan_message(r, _review_plan(text, n)),
        "plan_user": plan_message.plan_message(r, user_plan),
        "plan_fallback": plan_message.plan_message(r, fallback),
        "plan_stamped": plan_message.plan_stamped(r, _review_plan(text, n), stamp),
        "board": board.scoreboard(r, scored),
        "gate": board.promotion_gate(r, scored),
    }
    spec_view = details.evaluation_spec(r, _review_plan(text, n), excerpt)
    check_blocks(spec_view["blocks"], max_blocks=100)
    for name, msg in msgs.items():
        try:
            check_message(msg)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
    if not text:
        assert "How candidates are judged" in json.dumps(spec_view["blocks"])
        assert "validation loss instead" in json.dumps(msgs["plan_fallback"].blocks)
    assert questions.answer_label(QuestionKind.EVALUATION, "generate") == "*Generate one for me*"
    assert questions.answer_label(QuestionKind.EVALUATOR_FAILED, "loss") == "*Continue with validation loss*"
    assert questions.answer_label(QuestionKind.EVALUATION, "evaluator:a.py") == "*Use my evaluator* `a.py`"
    assert questions.answer_label(QuestionKind.BASE_MODEL, "qwen3-8b") == "`qwen3-8b`"
