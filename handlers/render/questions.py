"""What a run asks before it has a plan: the question with its buttons, the request for an
evaluator file, and the stamp that replaces the buttons once it is answered."""

from __future__ import annotations

from handlers.render.action_ids import ANSWER, ANSWER_SELECT, CANCEL
from handlers.render.mrkdwn import (
    Block,
    Message,
    actions,
    button,
    clip,
    code,
    confirm,
    context,
    encode,
    escape,
    option,
    section,
    text_size,
    user,
)
from handlers.render.people import Ask
from pipeline.domain.gates import Question, QuestionKind
from pipeline.domain.records import RunRecord

# How each evaluation answer reads on a button and in its stamp (never "Path A/B/C").
EVALUATION_CHOICES = {"loss": "Validation loss is fine", "evaluator": "Use my evaluator", "generate": "Generate one for me"}
FAILED_CHOICES = {"loss": "Continue with validation loss", "cancel": "Cancel run"}


def _cancel_button(run: RunRecord, text: str = "Cancel run", *, spent: bool = False) -> Block:
    then = "what it trained stays; nothing is deployed" if spent else "nothing has been spent yet"
    return button(
        text,
        CANCEL,
        encode(run=run.id, v=run.plan_version),
        confirm_=confirm("Cancel this run?", f"Run #{run.number} stops here; {then}.", "Cancel run", "Keep it"),
    )


def _evaluation_question(run: RunRecord, q: Question) -> Message:
    """How to judge the candidates, in plain words: three buttons (or two after a broken evaluator)."""
    body = section(f"❓ {user(run.requester)}, *run #{run.number} needs an answer:* {escape(q.text)}")
    if q.kind is QuestionKind.EVALUATOR_FAILED:
        elements = [
            button(FAILED_CHOICES["loss"], ANSWER, encode(run=run.id, q=q.number, a="loss"), style="primary"),
            _cancel_button(run, FAILED_CHOICES["cancel"]),
        ]
        help_ = context("Or attach a fixed evaluator (`.py`) in this thread and I'll check it again.")
    else:
        elements = [
            button(EVALUATION_CHOICES[c], ANSWER, encode(run=run.id, q=q.number, a=c), style="primary" if c == "loss" else None)
            for c in ("loss", "evaluator", "generate")
        ]
        elements.append(_cancel_button(run))
        help_ = context(
            "*Validation loss is fine*: rank candidates by their loss on held-out data; no extra cost.",
            "*Use my evaluator*: a Python file with `evaluate(messages, ground_truth)` that scores each answer 0–1; "
            "you attach it in this thread.",
            "*Generate one for me*: I write one from your data's answers and show it to you with the plan.",
        )
    blocks = [body, help_, actions(*elements, block_id=f"q|{run.id}|{q.number}")]
    return Message(text=f"Run #{run.number} needs an answer: {escape(clip(q.text, 1000))}", blocks=blocks)


DEPLOY_ANYWAY = "deploy anyway"


def deploy_anyway(run: RunRecord, q: Question) -> Block:
    """The deploy block's one decision (red, confirmed, audited)."""
    return button(
        "Deploy anyway",
        ANSWER,
        encode(run=run.id, q=q.number, a=DEPLOY_ANYWAY),
        style="danger",
        confirm_=confirm(
            "Deploy anyway?",
            "Its answers match the base model's on every held-out prompt. Your name goes in the audit trail.",
            "Deploy anyway",
        ),
    )


def _deploy_block(run: RunRecord, q: Question, ask: Ask | None) -> Message:
    """The run stopped before deploy: deploy anyway (approvers, confirmed, audited) or cancel."""
    who = f"\n👉 *Decide:* {ask.mentions()}" if ask is not None else ""
    why = q.text.removeprefix("Deploy blocked: ")
    body = section(f"🛑 *Run #{run.number}: deploy blocked.* {escape(why[:1].upper() + why[1:])}{who}")
    elements = [deploy_anyway(run, q), _cancel_button(run, spent=True)]
    help_ = context("Same answers as the base usually mean the adapter was never applied: the base model would ship.")
    return Message(
        text=f"Run #{run.number}: deploy blocked: {escape(clip(q.text, 1000))}",
        blocks=[body, help_, actions(*elements, block_id=f"q|{run.id}|{q.number}")],
    )


def question(run: RunRecord, q: Question, *, ask: Ask | None = None) -> Message:
    """A question the run needs answered (a select for many choices, buttons for a few)."""
    if q.kind.blocks_deploy:
        return _deploy_block(run, q, ask)
    if q.kind.about_evaluation:
        return _evaluation_question(run, q)
    body = section(f"❓ {user(run.requester)}, *run #{run.number} needs an answer:* {escape(q.text)}")
    elements: list[Block] = []
    choices = [c for c in q.choices if 0 < len(f"{run.id}|{q.number}|{c}") <= 150]
    if 0 < len(choices) <= 5:
        elements += [
            button(c, ANSWER, encode(run=run.id, q=q.number, a=c), style="primary" if i == 0 else None)
            for i, c in enumerate(choices)
        ]
    elif choices:
        options, size = [], 0
        for c in choices[:100]:
            opt = option(c, f"{run.id}|{q.number}|{c}")
            size += text_size(opt)
            if size > 7000:  # options count towards Slack's total message size
                break
            options.append(opt)
        choices = choices[: len(options)]
        elements.append(
            {
                "type": "static_select",
                "action_id": ANSWER_SELECT,
                "placeholder": {"type": "plain_text", "text": "Choose…"},
                "options": options,
            }
        )
    elements.append(
        button(
            "Cancel run",
            CANCEL,
            encode(run=run.id, v=run.plan_version),
            confirm_=confirm("Cancel this run?", f"Run #{run.number} stops here.", "Cancel run", "Keep it"),
        )
    )
    blocks = [body]
    if len(q.choices) > len(choices):
        blocks.append(context("More choices exist than fit here: `/sft models` lists them; start a new run naming the model."))
    blocks.append(actions(*elements, block_id=f"q|{run.id}|{q.number}"))
    return Message(text=f"Run #{run.number} needs an answer: {escape(clip(q.text, 1000))}", blocks=blocks)


def answer_label(kind: QuestionKind, answer: str) -> str:
    """An answer as its button read: *Generate one for me*, *Use my evaluator* `x.py`, or `qwen3-8b`."""
    if kind.blocks_deploy:
        return "*Deploy anyway*"
    if kind.about_evaluation:
        if answer.lower().startswith("evaluator:"):
            return f"*{EVALUATION_CHOICES['evaluator']}* {code(answer.split(':', 1)[1].strip())}"
        labels = FAILED_CHOICES if kind is QuestionKind.EVALUATOR_FAILED else EVALUATION_CHOICES
        if answer in labels:
            return f"*{labels[answer]}*"
    return code(answer)


def evaluator_request(run: RunRecord) -> Message:
    """What "Use my evaluator" leads to: attach the file here, or name one the bot already has."""
    lines = [
        f"📎 *Send me your evaluator for run #{run.number}:* attach the `.py` file here in this thread "
        "(drag it into the reply box).",
        "It needs a function `evaluate(messages, ground_truth=None, **kwargs)` that returns "
        '`{"score": 0..1, "reason": "…"}`; `messages` ends with the model\'s answer, `ground_truth` is the reference answer.',
        "Already in the bot's evaluator folder (`SFTBOT_EVALUATOR_DIR`)? Reply `evaluator: my_eval.py` instead.",
    ]
    return Message(
        text=f"Run #{run.number}: attach your evaluator .py file in this thread",
        blocks=[
            section("\n".join(lines)),
            context(
                "I try it on a few of your data's own answers before proposing the plan; nothing is spent until someone approves."
            ),
        ],
    )


def question_stamped(run: RunRecord, q: Question, stamp_text: str) -> Message:
    return Message(
        text=clip(f"Run #{run.number}: {escape(clip(q.text, 1000))} — {stamp_text}", 3000),
        blocks=[section(f"❓ *Run #{run.number} asked:* {escape(q.text)}"), section(stamp_text)],
    )
