"""The scoreboard (the sweep's live table), the promotion gate (a decision of its own), and
the final run's progress line.

One short mrkdwn line per candidate, never a monospace table: the thread pane fits ~52
monospace characters and a phone ~45, so table rows wrap into two broken lines, while a
proportional line wraps like any sentence. What every row shares (the base model, the
epochs) is said once. Time is said as a clock time ("done ≈ 8:40 PM", a Slack date token in
the reader's timezone), never as "~9 s left", which is stale the moment it is read; and a
board that has ended says how every job ended, never a running percentage.

The gate is a new message, posted once the scoreboard has its final state, so it notifies
the people who decide (an edit notifies nobody). Its buttons follow the evidence: when the
leader does not beat the base model, answers like it, or every score is 0, promotion is not
the primary button and the message says what to check first.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from enum import Enum

from handlers.render import figures
from handlers.render.action_ids import CANCEL, CHOOSE, DETAILS_EXAMPLES, DETAILS_SPEC, PROMOTE
from handlers.render.comparison import headline
from handlers.render.mrkdwn import (
    Block,
    Message,
    actions,
    at_time,
    button,
    chunked_sections,
    clip,
    code,
    confirm,
    context,
    encode,
    escape,
    fit,
    lr_text,
    option,
    section,
)
from handlers.render.people import Ask
from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.domain.slots import CandidateState
from pipeline.evaluation.compare import Comparison
from pipeline.planning.plan_types import Plan
from pipeline.platforms.lifecycle import gpus
from pipeline.run import timing
from pipeline.run.bill import Bill
from pipeline.run.scoreboard import leader


class Ended(str, Enum):
    """How a live table's run ended: its last edit shows every job's final state."""

    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


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
# A job still active when its run ended: what the cancel did, not a stale percentage.
_STOPPED = {
    CandidateState.WAITING: "🚫 never started",
    CandidateState.SUBMITTING: "🚫 stopping (cancel sent)",
    CandidateState.PENDING: "🚫 stopping (cancel sent)",
    CandidateState.RUNNING: "🚫 stopping (cancel sent)",
    CandidateState.PRUNING: "✂️ stopping",
}


@dataclass(frozen=True)
class _Shared:
    """What every row of a board shares is said once, under it; rows say only what differs."""

    model: str | None
    epochs: int | None
    rank: int | None
    labels: dict[str, str]  # base model -> its short label on a row ("8b" for qwen3-8b beside qwen3-32b)


def _shared(cands: list[CandidateRecord]) -> _Shared:
    models = list(dict.fromkeys(c.base_model for c in cands))
    epochs = {c.epochs for c in cands}
    ranks = {c.lora_rank for c in cands}
    # Character by character on purpose, then cut back to the last "-": qwen3-8b, qwen3-32b -> "qwen3-".
    prefix = os.path.commonprefix(models) if len(models) > 1 else ""  # noqa: RUF071
    prefix = prefix[: prefix.rfind("-") + 1] if "-" in prefix else ""
    return _Shared(
        model=models[0] if len(models) == 1 else None,
        epochs=next(iter(epochs)) if len(epochs) == 1 else None,
        rank=next(iter(ranks)) if len(ranks) == 1 else None,
        labels={m: m[len(prefix) :] or m for m in models},
    )


def _metrics(c: CandidateRecord) -> str:
    parts = []
    if c.score is not None:
        parts.append(f"score *{c.score:.3f}*")
    if c.val_loss is not None:
        val = f"{c.val_loss:.4f}"
        parts.append(f"loss {val}" if c.score is not None else f"val loss *{val}*")
    return " · ".join(parts)


def _state(c: CandidateRecord, *, ended: bool) -> str:
    if ended and c.state in _STOPPED:
        return _STOPPED[c.state]
    state = _STATE[c.state]
    if c.state is CandidateState.COMPLETED and (c.score is not None or c.val_loss is not None):
        state = "✅"  # its numbers follow: "done" says nothing more
    if c.state is CandidateState.RUNNING:
        state = f"⏳ {c.progress:.0f}%"
        if c.epoch is not None:
            state += f" · epoch {c.epoch:g}/{c.epochs}"
    if c.state is CandidateState.FAILED and c.message:
        state += f": {escape(clip(c.message, 160))}"
    if c.stalled and c.state.is_active() and not ended:
        state += " · no progress lately"
    return state


def candidate_line(c: CandidateRecord, *, top: bool, shared: _Shared | None = None, ended: bool = False) -> str:
    """``🏆 *#2* 8b · lr 1e-4 — ✅ score *0.910* · loss 0.6821`` (what all rows share is said once)."""
    shared = shared or _Shared(model=None, epochs=None, rank=None, labels={})
    name = "final" if c.slot.is_final else f"#{c.slot.number}"
    knobs = []
    if shared.model is None:
        knobs.append(escape(shared.labels.get(c.base_model, c.base_model)))
    if shared.rank is None:
        knobs.append(f"r{c.lora_rank}")
    knobs.append(f"lr {lr_text(c.learning_rate)}")
    if shared.epochs is None:
        knobs.append(f"{c.epochs} ep")
    metrics = _metrics(c)
    tail = f" · {metrics}" if metrics else ""
    state = _state(c, ended=ended)
    joiner = " " if state == "✅" and metrics else ""
    body = f"{state}{joiner}{metrics}" if joiner else f"{state}{tail}"
    return f"{'🏆 ' if top else ''}*{name}* {' · '.join(knobs)} — {body}"


def lines(cands: list[CandidateRecord], *, ended: bool = False) -> list[str]:
    top = leader(cands)
    shared = _shared(cands)
    return [candidate_line(c, top=top is not None and c.slot == top.slot, shared=shared, ended=ended) for c in cands]


def heading_facts(cands: list[CandidateRecord]) -> str:
    shared = _shared(cands)
    facts = []
    if shared.model is not None:
        facts.append(escape(shared.model))
    if shared.rank is not None:
        facts.append(f"rank {shared.rank}")
    if shared.epochs is not None:
        facts.append(f"{shared.epochs} epoch{'s' if shared.epochs != 1 else ''} each")
    scored = any(c.score is not None for c in cands)
    facts.append("ranked by mean evaluator score (0–1), then validation loss" if scored else "validation loss: lower is better")
    return " · ".join(facts)


def done_at(left: float | None, now: float) -> str | None:
    """ "done ≈ 8:40 PM" (a date token: each reader's own clock) when the time left is known."""
    return None if left is None else f"done ≈ {at_time(now + left)}"


def _ended_counts(cands: list[CandidateRecord]) -> str:
    counts: dict[str, int] = {}
    for c in cands:
        word = "done" if c.state is CandidateState.COMPLETED else c.state.value if c.state.is_finished() else "stopping"
        counts[word] = counts.get(word, 0) + 1
    return ", ".join(f"{n} {w}" for w, n in counts.items())


def progress_line(
    run: RunRecord,
    cands: list[CandidateRecord],
    *,
    max_parallel: int,
    now: float | None = None,
    bill: Bill | None = None,
    ended: Ended | None = None,
) -> str:
    """Live: ``2/4 done · done ≈ 8:40 PM · ≈ $0.24 committed, $0.02 spent of $5.30 approved``;
    ended: ``4/4 done in 22 min``. Money from the run's bill, with ⚠️ past 1.5× the estimate."""
    now = time.time() if now is None else now
    done = sum(1 for c in cands if c.state.is_finished())
    took = timing.minutes(max(0.0, (run.updated_at if ended else now) - run.created_at))
    if ended is Ended.DONE:
        parts = [f"{done}/{len(cands)} done in {took}"]
    elif ended is not None:
        parts = [f"{ended.value} after {took}", _ended_counts(cands)]
    else:
        parts = [f"{done}/{len(cands)} done"]
        left = timing.remaining(cands, max_parallel=max_parallel, now=now)
        if (when := done_at(left, now)) is not None and done < len(cands):
            parts.append(when)
    if (money_line := figures.bill_fact(bill)) is not None:
        parts.append(money_line)
    if (flag := figures.overrun_flag(bill.overrun if bill is not None else None)) is not None:
        parts.append(flag)
    return " · ".join(parts)


def scoreboard(
    run: RunRecord,
    cands: list[CandidateRecord],
    *,
    max_parallel: int = 6,
    now: float | None = None,
    ended: Ended | None = None,
    bill: Bill | None = None,
) -> Message:
    """The live scoreboard: one thread message edited in place, the leader marked 🏆.

    ``max_parallel``: how many jobs can run at once now (the plan's limit, or fewer while
    the platform's quota holds the rest back: four queued jobs behind a quota of two are two
    waves). ``ended``: the last edit, every job in its final state. ``bill``: the run's money.
    """
    progress = progress_line(run, cands, max_parallel=max_parallel, now=now, ended=ended, bill=bill)
    return _board(run, cands, "Sweep", progress, ended=ended is not None)


def candidates_board(run: RunRecord, cands: list[CandidateRecord], *, max_parallel: int = 6) -> Message:
    """The same table under another title (a status reply), as things stand now."""
    return _board(run, cands, "Candidates", progress_line(run, cands, max_parallel=max_parallel), ended=False)


def _board(run: RunRecord, cands: list[CandidateRecord], title: str, progress: str, *, ended: bool) -> Message:
    top = leader(cands)
    lead = f"leader #{top.slot.number}" if top is not None and not top.slot.is_final else "no metric yet"
    head = f"*{escape(title)} — run #{run.number}* · {progress}"
    blocks: list[Block] = [section(head), *chunked_sections(lines(cands, ended=ended)), context(heading_facts(cands))]
    blocks += [context(escape(line)) for line in candidate_notes(cands, ended=ended)[:5]]
    done = sum(1 for c in cands if c.state.is_finished())
    return Message(text=f"{title} for run #{run.number}: {done}/{len(cands)} done, {lead}", blocks=fit(blocks))


def candidate_notes(cands: list[CandidateRecord], *, ended: bool = False) -> list[str]:
    """One line per distinct note, naming its candidates: "⏳ #4, #5: waiting for quota (2 running)"."""
    by_note: dict[str, list[str]] = {}
    for c in cands:
        if c.note and not (ended and c.note.startswith(("waiting", "cancel requested"))):
            by_note.setdefault(c.note, []).append(c.slot.name)
        if c.eval_failures:
            failed = f"{c.eval_failures} held-out answer{'s' if c.eval_failures != 1 else ''} failed (scored 0)"
            by_note.setdefault(failed, []).append(c.slot.name)
    out = []
    for note, names in by_note.items():
        icon = "⏳" if note.startswith("waiting") else "✂️" if note.startswith("pruned") else "ℹ️"
        out.append(f"{icon} {', '.join(names[:20])}: {clip(note, 400)}")
    return out


# --- the promotion gate -------------------------------------------------------------------


class Check(str, Enum):
    """What to look at before promoting, and the button that opens it."""

    EXAMPLES = "examples"  # Compare examples
    SPEC = "spec"  # Evaluation spec


def check_first(done: list[CandidateRecord], comp: Comparison | None) -> tuple[str, Check] | None:
    """When the evidence says promoting is risky: the sentence that says what to check first."""
    best = done[0] if done else None
    if best is None:
        return None
    name = f"#{best.slot.number}"
    if comp is not None and comp.identical:
        return (
            f"{name} answers exactly like the base model on every prompt: its adapter was probably not applied. "
            "Open *Compare examples*.",
            Check.EXAMPLES,
        )
    scored = [c.score for c in done if c.score is not None]
    base_zero = comp is None or not comp.base.score  # a base that scores shows the evaluator works
    if scored and all(s == 0 for s in scored) and base_zero:
        return "every score is 0.000 — the evaluator may be broken: open *Evaluation spec*.", Check.SPEC
    if comp is not None and comp.beats_base is False:
        base = comp.base.score
        vs = f" ({comp.tuned_score:.3f} vs {base:.3f})" if comp.tuned_score is not None and base is not None else ""
        where = "open *Compare examples*" if comp.examples else "compare them in the report"
        return f"{name} does not beat the base model{vs}: fine-tuning may not have helped; {where}.", Check.EXAMPLES
    return None


def _result(best: CandidateRecord, comp: Comparison | None) -> str:
    """ "It scores *0.910* on 10 held-out prompts; the base model scores 0.400 (+0.510)." """
    if best.score is not None:
        n = f" on {len(comp.rows)} held-out prompts" if comp is not None and comp.rows else " on held-out prompts"
        out = f"It scores *{best.score:.3f}*{n}"
        if comp is not None and comp.base.score is not None:
            out += f"; the base model scores {comp.base.score:.3f} ({best.score - comp.base.score:+.3f})"
        return out + "."
    if best.val_loss is not None:
        out = f"It has the lowest validation loss, *{best.val_loss:.4f}*"
        if comp is not None and comp.base.val_loss is not None:
            out += f"; the untrained base model's is {comp.base.val_loss:.4f} ({best.val_loss - comp.base.val_loss:+.4f})"
        return out + "."
    return "No candidate reported a metric."


def short_result(c: CandidateRecord, comp: Comparison | None) -> str:
    """ "score 0.910 vs base 0.400" or "loss 0.6821": a result in a stamp or the root."""
    base = comp.base if comp is not None else None
    if c.score is not None:
        return f"score {c.score:.3f}" + (f" vs base {base.score:.3f}" if base is not None and base.score is not None else "")
    if c.val_loss is not None:
        vs = f" vs base {base.val_loss:.4f}" if base is not None and base.val_loss is not None else ""
        return f"val loss {c.val_loss:.4f}{vs}"
    return "no metric"


def _promotion_starts(best: CandidateRecord, plan: Plan | None) -> str:
    """What promoting sets off, with what it costs: the final run and the deployment."""
    name = f"#{best.slot.number}"
    if plan is None:
        return ""
    local = not plan.billed
    steps = []
    if plan.final is not None:
        usd = figures.final_run(plan)
        cost = "" if local or usd is None else f" ({figures.small_estimate(usd)})"
        steps.append(f"retrains {name} on all {plan.final.train_samples:,} rows{cost}")
    if plan.deploy:
        shape = plan.shapes.get(best.base_model)
        on = f" on {gpus(shape)}" if shape is not None else ""
        rate = figures.deployment_rate(plan, best.base_model)
        bill = "on this machine" if local else f"{on} at *{figures.rate(rate)}* {figures.UNTIL_GONE}"
        steps.append(f"deploys {code(best.base_model)}{bill}")
    return f"Promoting {' and '.join(steps)}." if steps else ""


def promote_button(run: RunRecord, best: CandidateRecord, plan: Plan | None, *, primary: bool) -> Block:
    """Promote #N, with a confirm that says what it starts to cost (billing platforms)."""
    starts = _promotion_starts(best, plan)
    paid = bool(starts) and plan is not None and plan.billed
    return button(
        f"Promote #{best.slot.number}",
        PROMOTE,
        encode(run=run.id, c=str(best.slot)),
        style="primary" if primary else None,
        confirm_=confirm(f"Promote #{best.slot.number}?", starts, "Promote") if paid else None,
    )


def _promote_elements(run: RunRecord, done: list[CandidateRecord], plan: Plan | None, *, primary: bool) -> list[Block]:
    starts = _promotion_starts(done[0], plan)
    elements: list[Block] = [promote_button(run, done[0], plan, primary=primary)]
    # The next 24 best, not all: a select's options count towards the message size.
    if others := done[1:25]:
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
                    "Promote this candidate?", starts or "Its settings are retrained on the full data and deployed.", "Promote"
                ),
            }
        )
    return elements


def evidence_buttons(run: RunRecord, comp: Comparison | None, check: Check | None) -> list[Block]:
    """Compare examples / Evaluation spec: a modal each; the one to check first is primary."""
    out = []
    if check is Check.SPEC:
        out.append(button("Evaluation spec", DETAILS_SPEC, encode(run=run.id, v=run.plan_version), style="primary"))
    if comp is not None and comp.examples:
        style = "primary" if check is Check.EXAMPLES else None
        out.append(button("Compare examples", DETAILS_EXAMPLES, encode(run=run.id), style=style))
    return out


def _cancel(run: RunRecord) -> Block:
    return button(
        "Cancel run",
        CANCEL,
        encode(run=run.id, v=run.plan_version),
        confirm_=confirm("Cancel this run?", f"Run #{run.number} stops; no final run or deployment.", "Cancel run", "Keep it"),
    )


def promotion_gate(
    run: RunRecord,
    ranked: list[CandidateRecord],
    *,
    ask: Ask | None = None,
    plan: Plan | None = None,
    comparison: Comparison | None = None,
    note: str | None = None,
) -> Message:
    """The decision after the sweep: promote the best (or another), look at the evidence, or cancel."""
    done = [c for c in ranked if c.state is CandidateState.COMPLETED]
    who = f"{ask.mentions()}: " if ask is not None else ""
    if not done:
        body = (
            f"🏁 {who}*no candidate of run #{run.number} completed*, so nothing can be promoted: cancel the run, or start again."
        )
        return Message(text=f"Run #{run.number}: no candidate completed", blocks=[section(body), actions(_cancel(run))])
    best = done[0]
    check = check_first(done, comparison)
    if check is None:
        lines_ = [f"🏁 {who}*promote #{best.slot.number}?* {_result(best, comparison)}"]
    else:
        lines_ = [
            f"⚠️ *Check first:* {check[0]}",
            f"🏁 {who}promote #{best.slot.number} anyway, or cancel? {_result(best, comparison)}",
        ]
    if starts := _promotion_starts(best, plan):
        lines_.append(starts)
    elements = [
        *_promote_elements(run, done, plan, primary=check is None),
        *evidence_buttons(run, comparison, check[1] if check else None),
        _cancel(run),
    ]
    facts = heading_facts(ranked) + " · loss curves below"
    blocks: list[Block] = [section("\n".join(lines_))]
    if note:
        blocks.append(context(f"⚠️ {escape(clip(note, 600))}"))
    blocks += [actions(*elements, block_id=f"gate|{run.id}"), context(facts)]
    ask_text = f": {ask.plain()}" if ask is not None else ""
    return Message(
        text=clip(f"Sweep done for SFT run #{run.number}: promote #{best.slot.number}?{ask_text}", 3000), blocks=blocks
    )


def promotion_stamped(
    run: RunRecord,
    ranked: list[CandidateRecord],
    *,
    stamp_text: str,
    plan: Plan | None = None,
    comparison: Comparison | None = None,
) -> Message:
    """A decided gate: the stamp, the result it rested on, the examples still one click away."""
    done = [c for c in ranked if c.state is CandidateState.COMPLETED]
    promoted = next((c for c in done if stamp_text.startswith(f"✅ Promoted #{c.slot.number} ")), done[0] if done else None)
    facts = [stamp_text]
    if promoted is not None:
        facts.append(short_result(promoted, comparison))
    blocks: list[Block] = [section(" · ".join(facts))]
    if comparison is not None and (comparison.identical or comparison.beats_base is False):
        blocks.append(context(headline(comparison).splitlines()[-1]))  # the verdict outlives the buttons
    if buttons_ := evidence_buttons(run, comparison, None):
        blocks.append(actions(*buttons_, block_id=f"gate|{run.id}"))
    return Message(text=clip(f"Promotion gate for SFT run #{run.number}: {stamp_text}", 3000), blocks=blocks)


def final_board(run: RunRecord, c: CandidateRecord, *, now: float | None = None, ended: bool = False) -> Message:
    """The final run in one line: progress while it trains, its result once done."""
    now = time.time() if now is None else now
    line = candidate_line(c, top=False, ended=ended).removeprefix("*final* ")
    extra = ""
    if c.state is CandidateState.RUNNING and not ended and (when := done_at(timing.job_remaining(c, now), now)) is not None:
        extra = f" · {when}"
    elif c.state is CandidateState.COMPLETED and c.started_at is not None:
        extra = f" · took {timing.minutes(max(0.0, c.updated_at - c.started_at))}"
    text = f"*Final run — run #{run.number}* · all {c.train_samples:,} rows · {line}{extra}"
    return Message(text=clip(f"Final run of SFT run #{run.number}: {c.state.value}", 3000), blocks=[section(text)])
