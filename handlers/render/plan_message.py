"""The plan message: one phone screen, the ask and the numbers it rests on first.

Order is what an approver checks: the header carries the total and the time; the first line
asks the people who may approve and says what will happen; then Training / Deployment /
Time / Judged by, and the buttons. The evidence behind those numbers (every cost line and
candidate, the evaluator and its spec) is one click away in a modal ("Price details",
"Evaluation spec"), so Approve is on the first screen of a 420 px phone. A revised plan
says what changed and what that does to the cost; a decided plan shrinks to one line.
"""

from __future__ import annotations

from collections.abc import Mapping

from handlers.render import figures
from handlers.render.action_ids import APPROVE, CANCEL, DETAILS_PRICE, DETAILS_SPEC, REVISE
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
    fields,
    fit,
    header,
    lr_text,
    section,
)
from handlers.render.people import Ask, mentions_as_names
from handlers.render.review import judged_by
from pipeline.domain.records import RunRecord
from pipeline.planning.diff import changes, cost_delta
from pipeline.planning.plan_types import Plan, PlannedJob, Source
from pipeline.platforms.lifecycle import gpus
from pipeline.run import prune_rule
from pipeline.run.timing import minutes

# A plan's own words that belong with the approval (a conversion, a risk), at most this many.
WARNINGS_SHOWN = 2


def short(ref: str | None) -> str:
    """`support-conv` for `accounts/x/datasets/support-conv`, `data.jsonl` for a path."""
    if not ref:
        return "?"
    return ref.rstrip("/").rsplit("/", 1)[-1] or ref


def plan_pairs(plan: Plan) -> list[tuple[int, float]]:
    """The plan's distinct (rank, lr) pairs in order: what the revise modal prefills."""
    return list(dict.fromkeys((c.lora_rank, c.learning_rate) for c in plan.candidates))


def duration(plan: Plan) -> str | None:
    """ "~25 min" (the middle of the plan's range) when it can be told, else None."""
    d = plan.duration
    return None if d is None else f"~{minutes(d.middle_seconds)}"


def _time_field(plan: Plan) -> str:
    d = plan.duration
    if d is None:
        return "unknown until jobs run"
    return f"~{minutes(d.middle_seconds)} ({minutes(d.low_seconds)}–{minutes(d.high_seconds)})"


def _you(plan: Plan, key: str) -> str:
    return " (you set)" if plan.sources.get(key) is Source.USER else ""


def grid(plan: Plan) -> str:
    """ "qwen3-8b, qwen3-32b × lr 0.0001, 5e-05" — the sweep in one phrase."""
    models = list(dict.fromkeys(j.base_model for j in plan.candidates))
    pairs = plan_pairs(plan)
    ranks = list(dict.fromkeys(r for r, _ in pairs))
    rates = list(dict.fromkeys(lr for _, lr in pairs))
    if len(ranks) == 1:
        knobs = "lr " + ", ".join(lr_text(lr) for lr in rates[:6])
    elif len(rates) == 1:
        knobs = "rank " + ", ".join(str(r) for r in ranks[:6])
    else:
        knobs = ", ".join(f"r{r} lr {lr_text(lr)}" for r, lr in pairs[:6])
    if len(pairs) > 6:
        knobs += ", …"
    shown = ", ".join(models[:3]) + (f" and {len(models) - 3} more" if len(models) > 3 else "")
    return f"{escape(shown)} × {knobs}"


def _what_happens(plan: Plan) -> str:
    n = len(plan.candidates)
    then = (
        f"then the winner is retrained on all {plan.final.train_samples:,} rows"
        if plan.final
        else "then the winner is used as is (no final run)"
    )
    tail = " and deployed." if plan.deploy else " (not deployed)."
    prune = (
        f"\n✂️ *Pruning*{_you(plan, 'prune')}: hopeless candidates stop after an epoch (the rule: Price details)."
        if plan.prune
        else ""
    )
    return f"*{n} candidate{'s' if n != 1 else ''}* ({grid(plan)}) on {code(short(plan.dataset))}, {then}{tail}{prune}"


def _deployment(plan: Plan) -> str:
    c = plan.cost
    if not plan.deploy:
        return "none"
    if not plan.billed:
        return "on this machine, free"
    if c.deployment_usd_per_hour is None:
        return "price unknown: a person must approve it"
    models = list(dict.fromkeys(plan.spec.base_models))
    rates = {m: figures.deployment_rate(plan, m) for m in models}
    if len(set(rates.values())) > 1:  # it depends on which base model wins
        each = " or ".join(f"{figures.rate(r)} ({escape(m)})" for m, r in list(rates.items())[:3])
        return f"{each} {figures.until_gone()}"
    shapes = [plan.shapes[b] for b in models if b in plan.shapes]
    on = f" on {gpus(max(shapes, key=lambda sh: sh.count))}" if shapes else ""
    return figures.open_ended(c.deployment_usd_per_hour) + on


def _judged_by(plan: Plan, names: Mapping[str, str]) -> str:
    """Whose evaluator, by name (a plan message must not ping its owner), and how it was tried."""
    ev = plan.evaluator
    out = mentions_as_names(judged_by(plan), names) + _you(plan, "evaluation")
    if ev is not None and ev.kind not in ("user", "hosted") and ev.validated_on:
        out += f", tried on {ev.validated_on} row{'s' if ev.validated_on != 1 else ''} ✓"
    return out


def _money_fields(plan: Plan, names: Mapping[str, str] | None = None) -> Block:
    return fields(
        ("Training", figures.training(plan)),
        *((("Evaluation", figures.evaluation(plan)),) if plan.billed and plan.cost.evaluation_usd else ()),
        ("Deployment", _deployment(plan)),
        ("Time", _time_field(plan)),
        ("Judged by", _judged_by(plan, names or {})),
    )


def _changed(plan: Plan, previous: Plan | None, author: str | None) -> str:
    """ "✏️ bob changed epochs 5 → 2 (estimate $21.47 → $20.10, −$1.37)" — a name, never a ping."""
    if previous is None:
        return ""
    what = changes(previous, plan) or ["nothing but the version"]
    delta = cost_delta(previous, plan)
    cost = ""
    if delta is not None:
        sign = "+" if delta > 0 else "−" if delta < 0 else "±"
        was, now = figures.money(previous.cost.total_usd), figures.money(plan.cost.total_usd)
        cost = f" (estimate {was} → {now}, {sign}{figures.money(abs(delta))})"
    by = escape(author) if author else "someone"
    return f"\n✏️ *Changed by {by}:* {escape(clip('; '.join(what), 600))}{cost}"


def title(run: RunRecord, plan: Plan) -> str:
    parts = [f"Plan v{plan.version} · run #{run.number}"]
    if plan.billed or plan.cost.total_usd:
        parts.append(figures.estimate(plan.cost.total_usd))
    if (t := duration(plan)) is not None:
        parts.append(t)
    return " · ".join(parts)


def _footer(plan: Plan) -> Block | None:
    notes = []
    if plan.billed:
        first_hour = " incl. the first deployment hour" if plan.deploy else ""
        notes.append(f"range {figures.price_range(plan)}{first_hour} · prices of {escape(plan.cost.prices_as_of)}")
    if plan.fallback_note:  # asked for an evaluator, judged by loss: the approver must see why
        notes.append(f"⚠️ {escape(clip(plan.fallback_note, 300))}")
    notes += [f"⚠️ {escape(clip(w, 200))}" for w in plan.warnings[:WARNINGS_SHOWN]]
    if len(plan.warnings) > WARNINGS_SHOWN:
        notes.append(f"{len(plan.warnings) - WARNINGS_SHOWN} more notes under Price details")
    return context(" · ".join(notes[:1]), *notes[1:]) if notes else None


def detail_buttons(run: RunRecord, plan: Plan) -> list[Block]:
    """Price details (always) and Evaluation spec (with an evaluator): a modal each."""
    value = encode(run=run.id, v=plan.version)
    out = [button("Price details", DETAILS_PRICE, value)]
    if plan.evaluator is not None:
        out.append(button("Evaluation spec", DETAILS_SPEC, value))
    return out


def approve_button(run: RunRecord, version: int) -> Block:
    return button("Approve", APPROVE, encode(run=run.id, v=version), style="primary")


def plan_message(
    run: RunRecord, plan: Plan, *, ask: Ask | None = None, previous: Plan | None = None, author: str | None = None
) -> Message:
    """The plan with Approve / Revise / the evidence / Cancel (each button carries run id + plan version).

    ``author``: who wrote this version, by name (a revision must not ping its reviser).
    """
    value = encode(run=run.id, v=plan.version)
    buttons = actions(
        approve_button(run, plan.version),
        button("Revise", REVISE, value),
        *detail_buttons(run, plan),
        # Not red: a danger button beside Approve draws the eye to the wrong choice.
        button(
            "Cancel run",
            CANCEL,
            value,
            confirm_=confirm(
                "Cancel this run?", f"Run #{run.number} stops here; nothing has been spent yet.", "Cancel run", "Keep it"
            ),
        ),
        block_id=f"plan|{run.id}|{plan.version}",
    )
    who = ask.mentions() if ask is not None else None
    lead = f"👉 {who[:1].upper()}{who[1:]}, please approve: " if who else "👉 Approve to start: "
    blocks: list[Block] = [
        header(title(run, plan)),
        section(lead + _what_happens(plan) + _changed(plan, previous, author)),
        _money_fields(plan, ask.names if ask is not None else None),
        buttons,
    ]
    if (foot := _footer(plan)) is not None:
        blocks.append(foot)
    text = f"{title(run, plan)}: {len(plan.candidates)} candidates" + (f". Approve: {ask.plain()}" if ask else "")
    return Message(text=clip(text, 3000), blocks=fit(blocks))


def _one_line(run: RunRecord, plan: Plan, stamp_text: str, *, struck: bool) -> str:
    name = f"~Plan v{plan.version}~" if struck else f"*Plan v{plan.version}*"
    n = len(plan.candidates)
    return f"{name} · {n} candidate{'s' if n != 1 else ''} · {figures.estimate(plan.cost.total_usd)} · {stamp_text}"


def plan_stamped(run: RunRecord, plan: Plan, stamp_text: str) -> Message:
    """A decided plan: one line (who decided, when), its evidence still one click away."""
    text = f"Plan v{plan.version} for SFT run #{run.number}: {stamp_text}"
    blocks = [context(_one_line(run, plan, stamp_text, struck=False)), actions(*detail_buttons(run, plan))]
    return Message(text=clip(text, 3000), blocks=blocks)


def plan_superseded(run: RunRecord, plan: Plan, stamp_text: str) -> Message:
    """A plan replaced by a newer version: one line, so the thread shows the plan that counts."""
    line = _one_line(run, plan, stamp_text, struck=True)
    return Message(text=clip(f"Plan v{plan.version} for SFT run #{run.number}: {stamp_text}", 3000), blocks=[context(line)])


# --- the "Price details" modal ------------------------------------------------------------


def _job(job: PlannedJob, *, with_model: bool, usd: float | None, local: bool) -> str:
    model = f"{code(job.base_model)} " if with_model else ""
    price = "" if local or usd is None else f" · {figures.small_estimate(usd)}"
    return f"• *#{job.slot.number}* {model}rank {job.lora_rank} · lr {job.learning_rate:g}{price}"


def candidates_text(plan: Plan) -> str:
    models = list(dict.fromkeys(j.base_model for j in plan.candidates))
    epochs = sorted({j.epochs for j in plan.candidates})
    each = f"{epochs[0]} epoch{'s' if epochs[0] != 1 else ''} each" if len(epochs) == 1 else "epochs vary"
    prices = {ln.label: ln.usd for ln in plan.cost.lines}
    local = not plan.billed
    lines = [f"*Candidates*{_you(plan, 'grid')} · {each}{_you(plan, 'epochs')}"]
    if plan.prune:
        lines.append(f"✂️ *Pruning*{_you(plan, 'prune')}: {prune_rule.RULE}.")
    lines += [
        _job(j, with_model=len(models) > 1, usd=prices.get(f"candidate {j.slot.number}"), local=local)
        for j in plan.candidates[:40]
    ]
    if len(plan.candidates) > 40:
        lines.append(f"… and {len(plan.candidates) - 40} more")
    if plan.final:
        usd = figures.final_run(plan)
        price = "" if local or usd is None else f" · {figures.small_estimate(usd)}"
        lines.append(f"• *final*: the winner's settings on all {plan.final.train_samples:,} training rows{price}")
    return "\n".join(lines)


def price_blocks(run: RunRecord, plan: Plan) -> list[Block]:
    """Every number the plan's total rests on, where it came from, and the data it was made for."""
    c = plan.cost
    hp = f" · HP tuning on {plan.hp_samples:,} sampled rows" if plan.hp_samples else ""
    held = f"eval dataset {code(short(plan.eval_dataset))}" if plan.eval_dataset else f"{plan.test_samples:,} held out"
    blocks: list[Block] = [
        section(f"*{escape(title(run, plan))}*\n" + _what_happens(plan)),
        _money_fields(plan),
        section(candidates_text(plan)),
    ]
    cost_lines = [
        f"• {escape(ln.label)}: {figures.money(ln.usd)} — {escape(clip(ln.detail, 200))}"
        for ln in c.lines[:30]
        if not ln.label.startswith("candidate ")
    ]
    if cost_lines and plan.billed:
        blocks.append(section("*Cost lines*\n" + "\n".join(cost_lines)))
    notes = [
        f"{plan.samples:,} samples · ~{plan.tokens:,} tokens · {plan.train_samples:,} train / {held}{hp} · "
        f"at most {plan.max_parallel} jobs at once{_you(plan, 'max_parallel')}",
    ]
    if plan.billed:
        notes.append(
            f"range {figures.price_range(plan)} · prices as of {escape(c.prices_as_of)}, {escape(clip(c.price_source, 200))}"
        )
    if c.calibration and c.calibration.startswith("recent runs"):
        notes.append(f"range: {escape(clip(c.calibration, 300))}")
    if plan.duration is not None:
        notes.append(f"time: {escape(clip(plan.duration.basis, 300))}")
    notes += [f"unknown: {escape(clip(u, 300))}" for u in c.unknown[:3]]
    notes += [f"⚠️ {escape(clip(w, 300))}" for w in plan.warnings[:5]]
    if plan.serving_note:
        notes.append(escape(clip(plan.serving_note, 500)))
    blocks.append(context(*notes))
    return blocks
