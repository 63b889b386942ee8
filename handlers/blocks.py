"""Pure Block Kit renderers of a run's messages: root, plan, stamps, scoreboard, gate, final.

Every function takes plain domain values and returns a :class:`Message` with a text
fallback; user and platform text is escaped and clipped, so each message fits Slack's
limits whatever the data (tests render each one with extreme values).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from handlers.mrkdwn import (
    Block,
    Message,
    actions,
    at_time,
    button,
    chunked_sections,
    clip,
    code,
    code_block,
    confirm,
    context,
    encode,
    escape,
    fields,
    fit,
    header,
    option,
    section,
    text_size,
    user,
)
from pipeline.cost import money
from pipeline.machine import Phase
from pipeline.plan import Plan, PlannedJob, Source
from pipeline.platforms.base import JobState
from pipeline.scoreboard import leader
from pipeline.store.records import CandidateRecord, Question, RunRecord

# How each evaluation answer reads on a button and in its stamp (never "Path A/B/C").
EVALUATION_CHOICES = {"loss": "Validation loss is fine", "evaluator": "Use my evaluator", "generate": "Generate one for me"}
FAILED_CHOICES = {"loss": "Continue with validation loss", "cancel": "Cancel run"}
EVALUATION_QUESTIONS = ("evaluation", "evaluator_failed")
_KIND_TITLES = {"numbers": "final-number", "json": "JSON", "labels": "label", "exact": "exact-answer", "sql": "SQL"}
SPEC_EXCERPT_CHARS = 1200

# action ids: the listeners register exactly these (and the manifest test checks them)
APPROVE, REVISE, CANCEL = "sft_approve", "sft_revise", "sft_cancel"
PROMOTE, CHOOSE = "sft_promote", "sft_choose_candidate"
ANSWER, ANSWER_SELECT = "sft_answer", "sft_answer_select"
CONFIRM_CANCEL, KEEP = "sft_confirm_cancel", "sft_keep_running"
ACTION_IDS = (APPROVE, REVISE, CANCEL, PROMOTE, CHOOSE, ANSWER, ANSWER_SELECT, CONFIRM_CANCEL, KEEP)

_PHASE_LINE = {
    Phase.INSPECTING: "inspecting {dataset}…",
    Phase.AWAITING_INPUT: "waiting for an answer in the thread",
    Phase.AWAITING_PLAN_APPROVAL: "plan v{version} waiting for approval",
    Phase.SWEEPING: "sweeping {n} candidates",
    Phase.AWAITING_PROMOTION: "sweep done; waiting for someone to promote a candidate",
    Phase.FINAL_TRAINING: "final run on the full data",
    Phase.EVALUATING: "evaluating the final model",
    Phase.DEPLOYING: "deploying",
    Phase.REPORTING: "writing the report",
}


def short_name(ref: str | None) -> str:
    """`support-conv` for `accounts/x/datasets/support-conv` or `/data/support-conv.jsonl`."""
    if not ref:
        return "?"
    return PurePosixPath(ref.rstrip("/")).name or ref


def run_title(run: RunRecord) -> str:
    return f"SFT run #{run.number} by {user(run.requester)}"


def root(run: RunRecord, *, candidates: int = 0, model: str | None = None, actor: str | None = None) -> Message:
    """The run's one channel message, edited in place as the run moves."""
    ds = code(short_name(run.spec.dataset))
    if run.phase is Phase.SUCCEEDED:
        line = f"✅ {run_title(run)} — done: {code(model) if model else 'finished'}"
        plain_line = f"✅ SFT run #{run.number} done" + (f": {escape(clip(model, 500))}" if model else "")
    elif run.phase is Phase.FAILED:
        line = f"❌ {run_title(run)} — failed: {escape(clip(run.error or 'unknown error', 1500))}"
        plain_line = f"❌ SFT run #{run.number} failed"
    elif run.phase is Phase.CANCELLED:
        who = f" by {user(actor)}" if actor else ""
        line = f"🚫 {run_title(run)} — cancelled{who}"
        plain_line = f"🚫 SFT run #{run.number} cancelled"
    else:
        state = _PHASE_LINE[run.phase].format(dataset=ds, version=run.plan_version, n=candidates or "the")
        line = f"⏳ {run_title(run)} — {state}"
        plain_line = f"SFT run #{run.number} — {run.phase.value.replace('_', ' ')}"
    models = ", ".join(code(m) for m in run.spec.base_models[:5]) or "model to be chosen"
    est = f" · estimate {money(run.estimated_usd)}" if run.estimated_usd is not None else ""
    blocks = [section(line), context(f"dataset {ds} · {models}{est} · run id {code(run.id)} · details in the thread")]
    return Message(text=plain_line, blocks=blocks)


def _mark(plan: Plan, key: str) -> str:
    return "default" if plan.sources.get(key) is Source.DEFAULT else "you set"


def _job_line(job: PlannedJob) -> str:
    name = f"#{job.index}" if job.index else "final"
    return f"{name:>6}  {job.base_model:<28} rank {job.lora_rank:<3} lr {job.learning_rate:<8g} epochs {job.epochs:<2} samples {job.train_samples:,}"


def plan_pairs(plan: Plan) -> list[tuple[int, float]]:
    """The plan's distinct (rank, lr) pairs in order: what the revise modal prefills."""
    return list(dict.fromkeys((c.lora_rank, c.learning_rate) for c in plan.candidates))


def fallback_note(plan: Plan) -> str | None:
    """The strategy's "validation loss instead" note, when an evaluator could not be set up."""
    return next((w for w in plan.warnings if "validation loss instead" in w), None)


def evaluator_review(plan: Plan, *, spec_excerpt: str | None = None) -> list[Block]:
    """What the plan's evaluator checks, for review before approval (empty for plain loss)."""
    ev = plan.evaluator
    if ev is None:
        note = fallback_note(plan)
        return [section(f"📏 *How candidates are judged:* validation loss. {escape(note)}")] if note else []
    if ev.kind == "user":
        what = escape(clip(plan.evaluation.describe(), 500))  # "your evaluator <file>" (its summary says the same)
    else:
        what = f"an evaluator I generated from your data ({_KIND_TITLES.get(ev.kind, escape(ev.kind))} check). {escape(clip(ev.summary, 1200))}"
    tried = (
        f"I tried it on {ev.validated_on} reference answer{'s' if ev.validated_on != 1 else ''} from your data: it scored "
        f"{'them' if ev.validated_on != 1 else 'it'} without errors."
        if ev.validated_on
        else "It has not been tried on your data yet."
    )
    how = (
        f"Each candidate answers {plan.eval_examples:,} held-out prompts; the promotion gate ranks by mean score (0–1), "
        "validation loss breaks ties."
    )
    blocks = [section(f"📏 *How candidates are judged:* {what}\n{how} {tried}")]
    if spec_excerpt:
        blocks.append(section(code_block(clip_lines(spec_excerpt, SPEC_EXCERPT_CHARS), limit=SPEC_EXCERPT_CHARS + 200)))
    if ev.kind != "user":
        blocks.append(
            context(
                "`evaluator.py` and `eval_spec.md` are attached in this thread: read them before you approve. "
                "Revise with “use my own evaluator” or “eval=loss” to change how candidates are judged."
            )
        )
    return blocks


def clip_lines(text: str, limit: int) -> str:
    """The first whole lines of ``text`` within ``limit`` characters (… when cut)."""
    if len(text) <= limit:
        return text.rstrip()
    cut = text[:limit]
    head = cut.rsplit("\n", 1)[0] if "\n" in cut else cut
    return head.rstrip() + "\n…"


def _plan_body(run: RunRecord, plan: Plan, *, spec_excerpt: str | None = None) -> list[Block]:
    c = plan.cost
    hp = (
        f"HP tuning on {plan.hp_samples:,} sampled rows, seed 42 ({_mark(plan, 'hp_samples')})"
        if plan.hp_samples
        else "HP tuning on the whole train split"
    )
    data = (
        f"*Dataset* {code(plan.dataset)}: {plan.samples:,} samples, ~{plan.tokens:,} tokens · "
        f"train {plan.train_samples:,} / held-out {plan.test_samples:,}"
        + (f" · eval dataset {code(plan.eval_dataset)}" if plan.eval_dataset else "")
        + f"\n{hp}"
    )
    jobs = [_job_line(j) for j in plan.candidates] + ([_job_line(plan.final) + "  (winner's config)"] if plan.final else [])
    settings = (
        f"*Grid* ({_mark(plan, 'grid')}), *epochs* ({_mark(plan, 'epochs')}) · at most {plan.max_parallel} jobs at once "
        f"({_mark(plan, 'max_parallel')}) · evaluation: {escape(plan.evaluation.describe())} ({_mark(plan, 'evaluation')}) · "
        f"final run {'on' if plan.final else 'skipped'} ({_mark(plan, 'final_run')}) · deploy {'yes' if plan.deploy else 'no'}"
    )
    cost = fields(
        ("Training", money(c.training_usd)),
        ("Inference", money(c.inference_usd)),
        ("Total", f"{money(c.total_usd)}  (range {money(c.low_usd)} – {money(c.high_usd)})"),
        ("Prices", f"as of {escape(c.prices_as_of)}"),
    )
    notes = [f"source: {escape(c.price_source)}"]
    if c.compute_minutes is not None:
        notes.insert(0, f"~{c.compute_minutes:,.1f} min of compute on this machine")
    notes += [f"unknown: {escape(u)}" for u in c.unknown[:3]]
    shown = fallback_note(plan)
    notes += [f"note: {escape(w)}" for w in [w for w in plan.warnings if w != shown][:5]]
    return [
        header(f"Plan v{plan.version} for run #{run.number}"),
        section(data),
        *evaluator_review(plan, spec_excerpt=spec_excerpt),
        *chunked_sections([escape(j) for j in jobs], fence=True),
        section(settings),
        cost,
        context(*notes),
    ]


def plan_message(run: RunRecord, plan: Plan, *, spec_excerpt: str | None = None) -> Message:
    """The plan with Approve / Revise / Cancel (each carries run id + plan version)."""
    value = encode(run=run.id, v=plan.version)
    buttons = actions(
        button("Approve", APPROVE, value, style="primary"),
        button("Revise", REVISE, value),
        button(
            "Cancel run",
            CANCEL,
            value,
            style="danger",
            confirm_=confirm(
                "Cancel this run?", f"Run #{run.number} stops here; nothing has been spent yet.", "Cancel run", "Keep it"
            ),
        ),
        block_id=f"plan|{run.id}|{plan.version}",
    )
    text = f"Plan v{plan.version} for SFT run #{run.number}: {len(plan.candidates)} candidates, estimate {money(plan.cost.total_usd)}"
    return Message(text=text, blocks=fit([*_plan_body(run, plan, spec_excerpt=spec_excerpt), buttons], keep_tail=1))


def stamp(verb: str, actor: str, at: float, *, extra: str = "") -> str:
    """ "✅ Approved by <@U…> at HH:MM" — what replaces the buttons after a decision."""
    icon = {"Approved": "✅", "Promoted": "✅", "Answered": "✅", "Cancelled": "🚫"}.get(verb.split()[0], "✏️")
    return f"{icon} {verb} by {user(actor)} at {at_time(at)}{extra}"


def plan_stamped(run: RunRecord, plan: Plan, stamp_text: str, *, spec_excerpt: str | None = None) -> Message:
    text = f"Plan v{plan.version} for SFT run #{run.number}: {stamp_text}"
    return Message(
        text=clip(text, 3000), blocks=fit([*_plan_body(run, plan, spec_excerpt=spec_excerpt), section(stamp_text)], keep_tail=1)
    )


def _board_lines(cands: list[CandidateRecord]) -> list[str]:
    top = leader(cands)
    scored = any(c.score is not None for c in cands)  # the mean evaluator score gets its own column
    lines = [
        f"{'':>2} {'candidate':<34} {'state':<10} {'prog':>5} {'epoch':>5} {'val loss':>9}" + (f" {'score':>6}" if scored else "")
    ]
    for c in cands:
        mark = " ← leader" if top is not None and c.idx == top.idx else ""
        stall = " (no progress)" if c.stalled else ""
        val = f"{c.val_loss:.4f}" if c.val_loss is not None else "-"
        score = f" {(f'{c.score:.3f}' if c.score is not None else '-'):>6}" if scored else ""
        epoch = f"{c.epoch:g}" if c.epoch is not None else "-"
        name = "final" if c.idx == 0 else f"#{c.idx}"
        label = f"{name} {c.base_model} r{c.lora_rank} lr{c.learning_rate:g}"
        lines.append(
            f"{'🏆' if mark else '':>2} {label:<34} {c.state.value:<10} {c.progress:>4.0f}% {epoch:>5} {val:>9}{score}{stall}{mark}"
        )
    return lines


def scoreboard(run: RunRecord, cands: list[CandidateRecord], *, title: str = "Sweep scoreboard") -> Message:
    """The live table, one thread message edited in place (the leader marked)."""
    done = sum(1 for c in cands if c.state.terminal)
    top = leader(cands)
    lead = (
        f"leader {escape(clip(top.base_model, 200))} r{top.lora_rank} lr{top.learning_rate:g}"
        if top
        else "no validation loss yet"
    )
    text = f"{title} for run #{run.number}: {done}/{len(cands)} finished, {lead}"
    blocks = [
        section(f"*{escape(title)}* — run #{run.number} · {done}/{len(cands)} finished"),
        *chunked_sections([escape(line) for line in _board_lines(cands)], fence=True),
    ]
    if any(c.score is not None for c in cands):
        blocks.append(
            context(
                "score = mean evaluator score (0–1) on held-out prompts; the leader has the highest score, "
                "validation loss breaks ties."
            )
        )
    stalled = [c for c in cands if c.stalled]
    if stalled:
        blocks.append(
            context(f"⚠️ no progress lately: {', '.join(f'#{c.idx}' for c in stalled[:20])} (still waiting, not failed)")
        )
    return Message(text=text, blocks=fit(blocks))


def promotion_gate(run: RunRecord, ranked: list[CandidateRecord], *, summary: str) -> Message:
    """The gate: ranked scoreboard, promote the best, or pick another completed candidate."""
    done = [c for c in ranked if c.state is JobState.COMPLETED]
    best = done[0] if done else None
    elements: list[Block] = []
    if best is not None:
        elements.append(
            button(f"Promote #{best.idx} (best)", PROMOTE, encode(run=run.id, c=best.idx), style="primary", confirm_=None)
        )
    # The next 24 best, not all: a select's options count towards the message size, and
    # Slack refuses oversized messages long before its 100-option limit.
    others = [c for c in done if best is None or c.idx != best.idx][:24]
    if others:
        elements.append(
            {
                "type": "static_select",
                "action_id": CHOOSE,
                "placeholder": {"type": "plain_text", "text": "Choose another candidate"},
                "options": [
                    option(
                        f"#{c.idx} {c.base_model} r{c.lora_rank} lr{c.learning_rate:g}"
                        + (f" · score {c.score:.3f}" if c.score is not None else "")
                        + (f" · {c.val_loss:.4f}" if c.val_loss is not None else ""),
                        f"{run.id}|{c.idx}",
                    )
                    for c in others
                ],
                "confirm": confirm(
                    "Promote this candidate?", "Its configuration is trained on the full data and deployed.", "Promote"
                ),
            }
        )
    elements.append(
        button(
            "Cancel run",
            CANCEL,
            encode(run=run.id, v=run.plan_version),
            style="danger",
            confirm_=confirm(
                "Cancel this run?", f"Run #{run.number} stops; no final run or deployment.", "Cancel run", "Keep it"
            ),
        )
    )
    blocks = [*_gate_body(run, ranked, summary), actions(*elements, block_id=f"gate|{run.id}")]
    return Message(
        text=f"Promotion gate for SFT run #{run.number}: {escape(clip(summary, 1000))}", blocks=fit(blocks, keep_tail=1)
    )


def _gate_body(run: RunRecord, ranked: list[CandidateRecord], summary: str) -> list[Block]:
    return [
        header(f"Promotion gate — run #{run.number}"),
        section(escape(summary)),
        *chunked_sections([escape(line) for line in _board_lines(ranked)], fence=True),
        context(
            ("Ranked by mean evaluator score (0–1), then validation loss. " if any(c.score is not None for c in ranked) else "")
            + "Loss curves are attached below. Promote the best, or choose another completed candidate."
        ),
    ]


def promotion_stamped(run: RunRecord, ranked: list[CandidateRecord], *, summary: str, stamp_text: str) -> Message:
    return Message(
        text=clip(f"Promotion gate for SFT run #{run.number}: {stamp_text}", 3000),
        blocks=fit([*_gate_body(run, ranked, summary), section(stamp_text)], keep_tail=1),
    )


def _cancel_button(run: RunRecord, text: str = "Cancel run") -> Block:
    return button(
        text,
        CANCEL,
        encode(run=run.id, v=run.plan_version),
        style="danger",
        confirm_=confirm(
            "Cancel this run?", f"Run #{run.number} stops here; nothing has been spent yet.", "Cancel run", "Keep it"
        ),
    )


def _evaluation_question(run: RunRecord, q: Question) -> Message:
    """How to judge the candidates, in plain words: three buttons (or two after a broken evaluator)."""
    body = section(f"❓ *Run #{run.number} needs an answer:* {escape(q.text)}")
    if q.what == "evaluator_failed":
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


def question(run: RunRecord, q: Question) -> Message:
    """A question the run needs answered (a select for many choices, buttons for a few)."""
    if q.what in EVALUATION_QUESTIONS:
        return _evaluation_question(run, q)
    body = section(f"❓ *Run #{run.number} needs an answer:* {escape(q.text)}")
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
            style="danger",
            confirm_=confirm("Cancel this run?", f"Run #{run.number} stops here.", "Cancel run", "Keep it"),
        )
    )
    blocks = [body]
    if len(q.choices) > len(choices):
        blocks.append(context("More choices exist than fit here: `/sft models` lists them; start a new run naming the model."))
    blocks.append(actions(*elements, block_id=f"q|{run.id}|{q.number}"))
    return Message(text=f"Run #{run.number} needs an answer: {escape(clip(q.text, 1000))}", blocks=blocks)


def answer_label(what: str, answer: str) -> str:
    """An answer as its button read: *Generate one for me*, *Use my evaluator* `x.py`, or `qwen3-8b`."""
    if what in EVALUATION_QUESTIONS:
        if answer.lower().startswith("evaluator:"):
            return f"*{EVALUATION_CHOICES['evaluator']}* {code(answer.split(':', 1)[1].strip())}"
        labels = FAILED_CHOICES if what == "evaluator_failed" else EVALUATION_CHOICES
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


def final_message(
    run: RunRecord,
    *,
    model: str | None,
    deployment: dict[str, object] | None,
    snippet: str | None,
    final: CandidateRecord | None,
    evaluation: str | None,
    estimated: float | None,
    actual: float | None,
) -> Message:
    """The end: model id, deployment, losses, estimated vs actual cost, a copy-paste snippet."""
    dep = deployment or {}
    rows: list[tuple[str, str]] = [("Model", code(model or "?"))]
    if dep:
        rows += [
            ("Deployment", code(dep.get("deployment_id", "?"))),
            ("Endpoint", escape(dep.get("endpoint", "?"))),
            ("Model string", code(dep.get("model_string", "?"))),
        ]
    if final is not None:
        losses = f"train {final.train_loss:.4f}" if final.train_loss is not None else "train n/a"
        losses += f" · val {final.val_loss:.4f}" if final.val_loss is not None else " · val n/a"
        rows.append(("Final loss", losses))
    rows.append(("Cost", f"estimated {money(estimated)} · actual {money(actual)}"))
    blocks: list[Block] = [
        section(f"✅ *SFT run #{run.number} is done*" + (" and deployed." if dep else " (not deployed, as planned).")),
        fields(*[(k, clip(v, 400)) for k, v in rows]),
    ]
    if evaluation:
        blocks.append(context(escape(clip(evaluation, 1000))))
    if snippet:
        blocks += [section("*Use it:*"), section(code_block(snippet))]
    return Message(text=f"✅ SFT run #{run.number} is done: {escape(clip(model or '', 500))}", blocks=blocks)


def failure(run: RunRecord, *, reason: str, left_running: list[str]) -> Message:
    """❌ with the reason and what, if anything, is still up and costing money."""
    left = (
        ("*Still running:* " + "; ".join(escape(x) for x in left_running[:20]))
        if left_running
        else "Nothing was left running: this run's active jobs were cancelled."
    )
    return Message(
        text=f"❌ SFT run #{run.number} failed: {escape(clip(reason, 1000))}",
        blocks=[section(f"❌ *SFT run #{run.number} failed:* {escape(reason)}"), section(left)],
    )


def cancelled(run: RunRecord, *, actor: str | None, left_running: list[str]) -> Message:
    who = f" by {user(actor)}" if actor else ""
    left = (
        ("Still running: " + "; ".join(escape(x) for x in left_running[:20])) if left_running else "Active jobs were cancelled."
    )
    return Message(text=f"🚫 SFT run #{run.number} cancelled", blocks=[section(f"🚫 *Run #{run.number} cancelled{who}.* {left}")])


def notice(text: str, *, icon: str = "ℹ️") -> Message:
    return Message(text=escape(clip(text, 1000)), blocks=[section(f"{icon} {escape(text)}")])
