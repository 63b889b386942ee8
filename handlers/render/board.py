"""The scoreboard, the promotion gate it turns into, and the final run's progress line.

One short mrkdwn line per candidate, never a monospace table: the thread pane fits ~52
monospace characters and a phone ~45, so table rows wrap into two broken lines, while a
proportional line wraps like any sentence. What every row shares (the base model, the
epochs) is said once in the heading. Time and money so far come from ``timing``.
"""

from __future__ import annotations

import time

from handlers.render.action_ids import CANCEL, CHOOSE, PROMOTE
from handlers.render.comparison import comparison_blocks, headline
from handlers.render.mrkdwn import (
    Block,
    Message,
    actions,
    button,
    chunked_sections,
    clip,
    code,
    confirm,
    context,
    encode,
    escape,
    fit,
    option,
    section,
)
from handlers.render.people import who_can
from pipeline.domain.authz import Deciders
from pipeline.domain.money import money
from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.domain.slots import CandidateState
from pipeline.evaluation.compare import Comparison
from pipeline.planning.ledger import DEFAULT_MARGIN, WARN_AT
from pipeline.planning.plan_types import Plan
from pipeline.run import timing
from pipeline.run.scoreboard import leader

_STATE = {
    CandidateState.WAITING: "🕓 queued",
    CandidateState.SUBMITTING: "⏳ starting",
    CandidateState.PENDING: "⏳ starting",
    CandidateState.RUNNING: "⏳ training",
    CandidateState.COMPLETED: "✅ done",
    CandidateState.FAILED: "❌ failed",
    CandidateState.CANCELLED: "🚫 cancelled",
    CandidateState.PRUNING: "✂️ stopping",
    CandidateState.PRUNED: "✂️ pruned",
}


def _shared(cands: list[CandidateRecord]) -> tuple[str | None, int | None]:
    models = {c.base_model for c in cands}
    epochs = {c.epochs for c in cands}
    return (next(iter(models)) if len(models) == 1 else None), (next(iter(epochs)) if len(epochs) == 1 else None)


def _metrics(c: CandidateRecord) -> str:
    parts = []
    if c.score is not None:
        parts.append(f"score *{c.score:.3f}*")
    if c.val_loss is not None:
        val = f"{c.val_loss:.4f}"
        parts.append(f"val loss {val}" if c.score is not None else f"val loss *{val}*")
    return " · ".join(parts)


def candidate_line(c: CandidateRecord, *, top: bool, with_model: bool, with_epochs: bool) -> str:
    """``🏆 *#2* r16 · lr 0.0001 — ✅ done · val loss *0.6821*``."""
    name = "final" if c.slot.is_final else f"#{c.slot.number}"
    model = f"{code(c.base_model)} " if with_model else ""
    epochs = f" · {c.epochs} ep" if with_epochs else ""
    state = _STATE[c.state]
    if c.state is CandidateState.RUNNING:
        state = f"⏳ {c.progress:.0f}%"
        if c.epoch is not None:
            state += f" · epoch {c.epoch:g}/{c.epochs}"
    if c.state is CandidateState.FAILED and c.message:
        state += f": {escape(clip(c.message, 160))}"
    if c.stalled and c.state.is_active():
        state += " · no progress lately"
    metrics = _metrics(c)
    tail = f" · {metrics}" if metrics else ""
    return f"{'🏆 ' if top else ''}*{name}* {model}r{c.lora_rank} · lr {c.learning_rate:g}{epochs} — {state}{tail}"


def lines(cands: list[CandidateRecord]) -> list[str]:
    top = leader(cands)
    model, epochs = _shared(cands)
    return [
        candidate_line(c, top=top is not None and c.slot == top.slot, with_model=model is None, with_epochs=epochs is None)
        for c in cands
    ]


def heading_facts(cands: list[CandidateRecord]) -> str:
    model, epochs = _shared(cands)
    facts = []
    if model is not None:
        facts.append(code(model))
    if epochs is not None:
        facts.append(f"{epochs} epoch{'s' if epochs != 1 else ''} each")
    scored = any(c.score is not None for c in cands)
    facts.append("ranked by mean evaluator score (0–1), then validation loss" if scored else "validation loss: lower is better")
    return " · ".join(facts)


def progress_line(
    run: RunRecord, cands: list[CandidateRecord], *, max_parallel: int, now: float | None = None, margin: float = DEFAULT_MARGIN
) -> str:
    """``2/3 done · 4 min · ~3 min left · ≈ $0.02 so far``."""
    now = time.time() if now is None else now
    done = sum(1 for c in cands if c.state.is_finished())
    parts = [f"{done}/{len(cands)} done", timing.minutes(now - run.created_at)]
    left = timing.remaining(cands, max_parallel=max_parallel, now=now)
    if left is not None and done < len(cands):
        parts.append(f"~{timing.minutes(left)} left")
    spent = timing.spent(cands)
    if spent is not None and run.approved_usd:
        warn = "⚠️ " if spent >= WARN_AT * run.approved_usd * margin else ""
        parts.append(f"{warn}≈ {money(spent)} of {money(run.approved_usd)} approved")
    elif spent is not None:
        parts.append(f"≈ {money(spent)} so far")
    return " · ".join(parts)


def scoreboard(
    run: RunRecord, cands: list[CandidateRecord], *, max_parallel: int = 6, title: str = "Sweep", now: float | None = None
) -> Message:
    """The live scoreboard: one thread message edited in place, the leader marked 🏆."""
    top = leader(cands)
    lead = f"leader #{top.slot.number}" if top is not None and not top.slot.is_final else "no metric yet"
    head = f"*{escape(title)} — run #{run.number}* · {progress_line(run, cands, max_parallel=max_parallel, now=now)}"
    blocks: list[Block] = [section(head), *chunked_sections([*lines(cands)]), context(heading_facts(cands))]
    blocks += [context(escape(line)) for line in candidate_notes(cands)[:5]]
    done = sum(1 for c in cands if c.state.is_finished())
    return Message(text=f"{title} for run #{run.number}: {done}/{len(cands)} done, {lead}", blocks=fit(blocks))


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
        icon = "⏳" if note.startswith("waiting") else "✂️" if note.startswith("pruned") else "ℹ️"
        lines.append(f"{icon} {', '.join(names[:20])}: {clip(note, 400)}")
    return lines


def _final_cost(plan: Plan | None) -> str:
    if plan is None:
        return ""
    line = next((ln for ln in plan.cost.lines if ln.label == "final run"), None)
    paid = []
    if plan.final is not None and line is not None and line.usd:
        about = "under $0.01" if line.usd < 0.005 else f"≈ {money(line.usd)}"
        paid.append(f"a final run on all {plan.final.train_samples:,} rows ({about})")
    elif plan.final is not None:
        paid.append(f"a final run on all {plan.final.train_samples:,} rows")
    if plan.deploy and plan.cost.deployment_usd_per_hour:
        paid.append(f"a deployment ({money(plan.cost.deployment_usd_per_hour)}/hour while up)")
    elif plan.deploy:
        paid.append("a deployment")
    return " and ".join(paid)


def promotion_gate(
    run: RunRecord,
    ranked: list[CandidateRecord],
    *,
    summary: str,
    deciders: Deciders | None = None,
    plan: Plan | None = None,
    now: float | None = None,
    comparison: Comparison | None = None,
) -> Message:
    """The scoreboard become the gate: promote the best, pick another, or cancel."""
    done = [c for c in ranked if c.state is CandidateState.COMPLETED]
    best = done[0] if done else None
    starts = _final_cost(plan)
    promote_note = f"Promoting starts paid work: {starts}." if starts and plan and plan.platform != "local" else ""
    elements: list[Block] = []
    if best is not None:
        elements.append(
            button(
                f"Promote #{best.slot.number}",
                PROMOTE,
                encode(run=run.id, c=str(best.slot)),
                style="primary",
                confirm_=confirm(f"Promote #{best.slot.number}?", promote_note, "Promote") if promote_note else None,
            )
        )
    # The next 24 best, not all: a select's options count towards the message size.
    others = [c for c in done if best is None or c.slot != best.slot][:24]
    if others:
        elements.append(
            {
                "type": "static_select",
                "action_id": CHOOSE,
                "placeholder": {"type": "plain_text", "text": "Promote another…"},
                "options": [
                    option(
                        f"#{c.slot.number} r{c.lora_rank} lr{c.learning_rate:g}"
                        + (f" · score {c.score:.3f}" if c.score is not None else "")
                        + (f" · {c.val_loss:.4f}" if c.val_loss is not None else ""),
                        f"{run.id}|{c.slot}",
                    )
                    for c in others
                ],
                "confirm": confirm(
                    "Promote this candidate?",
                    promote_note or "Its settings are retrained on the full data and deployed.",
                    "Promote",
                ),
            }
        )
    elements.append(
        button(
            "Cancel run",
            CANCEL,
            encode(run=run.id, v=run.plan_version),
            confirm_=confirm(
                "Cancel this run?", f"Run #{run.number} stops; no final run or deployment.", "Cancel run", "Keep it"
            ),
        )
    )
    ask = f"\n👉 *Promote:* {who_can(deciders)}" if deciders is not None else ""
    blocks = [
        *gate_body(run, ranked, summary, plan=plan, now=now, ask=ask),
        *comparison_blocks(comparison),
        actions(*elements, block_id=f"gate|{run.id}"),
    ]
    return Message(
        text=clip(
            f"Sweep done for SFT run #{run.number}: {escape(clip(summary, 1000))}"
            + (f". Promote: {who_can(deciders)}" if deciders else ""),
            3000,
        ),
        blocks=fit(blocks, keep_tail=1),
    )


def gate_body(
    run: RunRecord, ranked: list[CandidateRecord], summary: str, *, plan: Plan | None, now: float | None, ask: str = ""
) -> list[Block]:
    parallel = plan.max_parallel if plan else 6
    head = f"*Sweep done — run #{run.number}* · {progress_line(run, ranked, max_parallel=parallel, now=now)}"
    starts = _final_cost(plan)
    then = f"\nThe one you promote gets {starts}." if starts else ""
    return [
        section(f"{head}\n{escape(clip(summary, 600))}{then}{ask}"),
        *chunked_sections(lines(ranked)),
        *[context(escape(line)) for line in candidate_notes(ranked)[:5]],
        context(heading_facts(ranked) + " · loss curves are in the thread below"),
    ]


def promotion_stamped(
    run: RunRecord,
    ranked: list[CandidateRecord],
    *,
    summary: str,
    stamp_text: str,
    plan: Plan | None = None,
    comparison: Comparison | None = None,
) -> Message:
    base = [section(headline(comparison))] if comparison is not None else []  # the examples go with the buttons
    return Message(
        text=clip(f"Promotion gate for SFT run #{run.number}: {stamp_text}", 3000),
        blocks=fit([*gate_body(run, ranked, summary, plan=plan, now=None), *base, section(stamp_text)], keep_tail=1),
    )


def final_board(run: RunRecord, c: CandidateRecord, *, now: float | None = None) -> Message:
    """The final run in one line: progress while it trains, its result once done."""
    now = time.time() if now is None else now
    line = candidate_line(c, top=False, with_model=True, with_epochs=True).removeprefix("*final* ")
    extra = ""
    if c.state is CandidateState.RUNNING and (left := timing.job_remaining(c, now)) is not None:
        extra = f" · ~{timing.minutes(left)} left"
    elif c.state is CandidateState.COMPLETED and c.started_at is not None:
        extra = f" · took {timing.minutes(max(0.0, c.updated_at - c.started_at))}"
    text = f"*Final run — run #{run.number}* on all {c.train_samples:,} rows: {line}{extra}"
    return Message(text=clip(f"Final run of SFT run #{run.number}: {c.state.value}", 3000), blocks=[section(text)])
