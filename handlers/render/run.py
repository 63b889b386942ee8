"""Pure Block Kit renderers of a run's messages: root, plan, stamps, scoreboard, gate, final.

Every function takes plain domain values and returns a :class:`Message` with a text
fallback; user and platform text is escaped and clipped, so each message fits Slack's
limits whatever the data (tests render each one with extreme values).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from handlers.render.action_ids import APPROVE, CANCEL, CHOOSE, PROMOTE, REVISE
from handlers.render.mrkdwn import (
    Block,
    Message,
    actions,
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
    user,
)
from handlers.render.review import evaluator_review
from pipeline.planning.cost import money
from pipeline.planning.models import Plan, PlannedJob, Source
from pipeline.run.machine import Phase
from pipeline.run.slots import CandidateState
from pipeline.run.summary import RunSummary
from pipeline.scoreboard import leader
from pipeline.store.records import CandidateRecord, RunRecord

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
    name = job.slot.name
    return f"{name:>6}  {job.base_model:<28} rank {job.lora_rank:<3} lr {job.learning_rate:<8g} epochs {job.epochs:<2} samples {job.train_samples:,}"


def plan_pairs(plan: Plan) -> list[tuple[int, float]]:
    """The plan's distinct (rank, lr) pairs in order: what the revise modal prefills."""
    return list(dict.fromkeys((c.lora_rank, c.learning_rate) for c in plan.candidates))


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
    notes += [f"note: {escape(w)}" for w in plan.warnings[:5]]
    serving = [
        f"{escape(ln.label)}: {money(ln.usd)} ({escape(clip(ln.detail, 300))})" for ln in c.lines if ln.phase == "inference"
    ]
    return [
        header(f"Plan v{plan.version} for run #{run.number}"),
        section(data),
        *evaluator_review(plan, spec_excerpt=spec_excerpt),
        *chunked_sections([escape(j) for j in jobs], fence=True),
        section(settings),
        cost,
        *([context(*serving[:5])] if serving else []),
        *([context(f"💸 {escape(clip(plan.serving_note, 1500))}")] if plan.serving_note else []),
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
        mark = " ← leader" if top is not None and c.slot == top.slot else ""
        stall = " (no progress)" if c.stalled else ""
        val = f"{c.val_loss:.4f}" if c.val_loss is not None else "-"
        score = f" {(f'{c.score:.3f}' if c.score is not None else '-'):>6}" if scored else ""
        epoch = f"{c.epoch:g}" if c.epoch is not None else "-"
        name = c.slot.name
        label = f"{name} {c.base_model} r{c.lora_rank} lr{c.learning_rate:g}"
        lines.append(
            f"{'🏆' if mark else '':>2} {label:<34} {c.state.value:<10} {c.progress:>4.0f}% {epoch:>5} {val:>9}{score}{stall}{mark}"
        )
    return lines


def scoreboard(run: RunRecord, cands: list[CandidateRecord], *, title: str = "Sweep scoreboard") -> Message:
    """The live table, one thread message edited in place (the leader marked)."""
    done = sum(1 for c in cands if c.state.is_finished())
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
            context(f"⚠️ no progress lately: {', '.join(c.slot.name for c in stalled[:20])} (still waiting, not failed)")
        )
    blocks += [context(escape(line)) for line in candidate_notes(cands)[:5]]
    return Message(text=text, blocks=fit(blocks))


def candidate_notes(cands: list[CandidateRecord]) -> list[str]:
    """One line per distinct note, naming its candidates: "⏳ #4, #5: waiting for quota (2 running)"."""
    by_note: dict[str, list[str]] = {}
    for c in cands:
        if c.note:
            by_note.setdefault(c.note, []).append(c.slot.name)
        if c.eval_failures:
            failed = f"{c.eval_failures} held-out answer{'s' if c.eval_failures != 1 else ''} failed (scored 0)"
            by_note.setdefault(failed, []).append(c.slot.name)
    lines = []
    for note, names in by_note.items():
        icon = "⏳" if note.startswith("waiting") else "ℹ️"
        lines.append(f"{icon} {', '.join(names[:20])}: {clip(note, 400)}")
    return lines


def promotion_gate(run: RunRecord, ranked: list[CandidateRecord], *, summary: str) -> Message:
    """The gate: ranked scoreboard, promote the best, or pick another completed candidate."""
    done = [c for c in ranked if c.state is CandidateState.COMPLETED]
    best = done[0] if done else None
    elements: list[Block] = []
    if best is not None:
        elements.append(
            button(
                f"Promote {best.slot.name} (best)", PROMOTE, encode(run=run.id, c=str(best.slot)), style="primary", confirm_=None
            )
        )
    # The next 24 best, not all: a select's options count towards the message size, and
    # Slack refuses oversized messages long before its 100-option limit.
    others = [c for c in done if best is None or c.slot != best.slot][:24]
    if others:
        elements.append(
            {
                "type": "static_select",
                "action_id": CHOOSE,
                "placeholder": {"type": "plain_text", "text": "Choose another candidate"},
                "options": [
                    option(
                        f"{c.slot.name} {c.base_model} r{c.lora_rank} lr{c.learning_rate:g}"
                        + (f" · score {c.score:.3f}" if c.score is not None else "")
                        + (f" · {c.val_loss:.4f}" if c.val_loss is not None else ""),
                        f"{run.id}|{c.slot}",
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
        *[context(escape(line)) for line in candidate_notes(ranked)[:5]],
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


def final_message(s: RunSummary) -> Message:
    """The end: model id, deployment, losses, estimated vs actual cost, a copy-paste snippet."""
    run, dep = s.run, s.deployment
    rows: list[tuple[str, str]] = [("Model", code(s.model or "?"))]
    if dep is not None:
        rows += [
            ("Deployment", code(dep.deployment_id)),
            ("Endpoint", escape(dep.endpoint)),
            ("Model string", code(dep.model_string)),
        ]
    if s.shipped is not None:
        losses = f"train {s.shipped.train_loss:.4f}" if s.shipped.train_loss is not None else "train n/a"
        losses += f" · val {s.shipped.val_loss:.4f}" if s.shipped.val_loss is not None else " · val n/a"
        rows.append(("Final loss", losses))
    rows.append(("Cost", f"estimated {money(s.cost.total_est)} · actual {money(s.cost.training_actual)}"))
    blocks: list[Block] = [
        section(f"✅ *SFT run #{run.number} is done*" + (" and deployed." if dep else " (not deployed, as planned).")),
        fields(*[(k, clip(v, 400)) for k, v in rows]),
    ]
    if s.evaluation:
        blocks.append(context(escape(clip(s.evaluation, 1000))))
    if s.serving_note:
        blocks.append(context(f"💸 {escape(clip(s.serving_note, 1500))}"))
    if s.snippet:
        blocks += [section("*Use it:*"), section(code_block(s.snippet))]
    return Message(text=f"✅ SFT run #{run.number} is done: {escape(clip(s.model or '', 500))}", blocks=blocks)


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
