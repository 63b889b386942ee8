"""The plan message: readable in ten seconds at 480 px, and the approver asked by name.

Order is what a person checks: the header carries the total and the time; the first line
says what will happen and who must approve; then Training / Deployment / Time / Judged by;
then one short line per candidate (no monospace table: it wraps into broken rows in the
thread pane and on phones). Only values the person set are marked. A revised plan starts
with what changed and what that does to the cost; the plan it replaced shrinks to a line.
"""

from __future__ import annotations

from handlers.render.action_ids import APPROVE, CANCEL, REVISE
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
    section,
)
from handlers.render.people import mention, who_can
from handlers.render.review import evaluator_review, judged_by
from pipeline.domain.authz import Deciders
from pipeline.domain.money import money
from pipeline.domain.records import RunRecord
from pipeline.planning.diff import changes, cost_delta
from pipeline.planning.plan_types import Plan, PlannedJob, Source
from pipeline.platforms.lifecycle import gpus
from pipeline.run import prune_rule
from pipeline.run.timing import minutes


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


def _what_happens(plan: Plan) -> str:
    models = list(dict.fromkeys(j.base_model for j in plan.candidates))
    n = len(plan.candidates)
    base = code(models[0]) if len(models) == 1 else f"{len(models)} base models"
    then = (
        f"then the winner is retrained on all {plan.final.train_samples:,} training rows"
        if plan.final
        else "then the winner is used as is (no final run)"
    )
    tail = " and deployed." if plan.deploy else " (not deployed)."
    return f"{n} LoRA candidate{'s' if n != 1 else ''} of {base} on {code(short(plan.dataset))}, {then}{tail}"


def _job(job: PlannedJob, *, with_model: bool) -> str:
    model = f"{code(job.base_model)} " if with_model else ""
    return f"• *#{job.slot.number}* {model}rank {job.lora_rank} · lr {job.learning_rate:g}"


def _candidates(plan: Plan) -> str:
    models = list(dict.fromkeys(j.base_model for j in plan.candidates))
    epochs = sorted({j.epochs for j in plan.candidates})
    each = f"{epochs[0]} epoch{'s' if epochs[0] != 1 else ''} each" if len(epochs) == 1 else "epochs vary"
    head = f"*Candidates*{_you(plan, 'grid')} · {each}{_you(plan, 'epochs')}"
    lines = [head, *(_job(j, with_model=len(models) > 1) for j in plan.candidates[:40])]
    if plan.prune:
        lines.insert(1, f"✂️ *Pruning*{_you(plan, 'prune')}: {prune_rule.RULE}.")
    if len(plan.candidates) > 40:
        lines.append(f"… and {len(plan.candidates) - 40} more")
    if plan.final:
        lines.append(f"• *final*: the winner's settings on all {plan.final.train_samples:,} training rows")
    return "\n".join(lines)


def _money_fields(plan: Plan) -> Block:
    c = plan.cost
    local = plan.platform == "local"
    training = "free (this machine)" if local else money(c.training_usd)
    if not plan.deploy:
        deployment = "none"
    elif local:
        deployment = "on this machine, free"
    elif c.deployment_usd_per_hour is not None:
        shapes = [plan.shapes[b] for b in plan.spec.base_models if b in plan.shapes]
        on = f" on {gpus(max(shapes, key=lambda sh: sh.count))}" if shapes else ""
        deployment = f"{money(c.deployment_usd_per_hour)}/hour while up{on}"
    else:
        deployment = "price unknown"
    return fields(
        ("Training", training),
        ("Deployment", deployment),
        ("Time", _time_field(plan)),
        ("Judged by", judged_by(plan) + _you(plan, "evaluation")),
    )


def _details(plan: Plan) -> Block:
    c = plan.cost
    hp = f" · HP tuning on {plan.hp_samples:,} sampled rows" if plan.hp_samples else ""
    held = f"eval dataset {code(short(plan.eval_dataset))}" if plan.eval_dataset else f"{plan.test_samples:,} held out"
    notes = [
        f"{plan.samples:,} samples · ~{plan.tokens:,} tokens · {plan.train_samples:,} train / {held}{hp} · "
        f"at most {plan.max_parallel} jobs at once{_you(plan, 'max_parallel')}",
    ]
    if plan.platform != "local":
        first_hour = " (total counts the first hour of the deployment)" if plan.deploy else ""
        notes.append(
            f"range {money(c.low_usd)}–{money(c.high_usd)}{first_hour} · prices as of {escape(c.prices_as_of)}, "
            f"{escape(clip(c.price_source, 200))}"
        )
    if c.calibration and c.calibration.startswith("recent runs"):  # the default range needs no sentence here
        notes.append(f"range: {escape(clip(c.calibration, 300))}")
    if plan.duration is not None:
        notes.append(f"time: {escape(clip(plan.duration.basis, 300))}")
    notes += [f"unknown: {escape(clip(u, 300))}" for u in c.unknown[:3]]
    notes += [f"⚠️ {escape(clip(w, 300))}" for w in plan.warnings[:5]]
    return context(*notes)


def _changed(plan: Plan, previous: Plan | None) -> list[Block]:
    if previous is None:
        return []
    what = changes(previous, plan) or ["nothing but the version"]
    delta = cost_delta(previous, plan)
    cost = ""
    if delta is not None:
        sign = "+" if delta > 0 else "−" if delta < 0 else "±"
        cost = f" · estimate {money(previous.cost.total_usd)} → {money(plan.cost.total_usd)} ({sign}{money(abs(delta))})"
    by = f" by {mention(plan.author)}" if plan.author else ""
    return [section(f"✏️ *Changed{by}:* {escape(clip('; '.join(what), 1500))}{cost}")]


def title(run: RunRecord, plan: Plan) -> str:
    parts = [f"Plan v{plan.version} · run #{run.number}"]
    if plan.platform != "local" or plan.cost.total_usd:
        parts.append(f"≈ {money(plan.cost.total_usd)}")
    if (t := duration(plan)) is not None:
        parts.append(t)
    return " · ".join(parts)


def _body(run: RunRecord, plan: Plan, ask: str | None, previous: Plan | None, spec_excerpt: str | None) -> list[Block]:
    first = _what_happens(plan) + (f"\n👉 *Approve:* {ask}" if ask else "")
    return [
        header(title(run, plan)),
        *_changed(plan, previous),
        section(first),
        _money_fields(plan),
        section(_candidates(plan)),
        *evaluator_review(plan, spec_excerpt=spec_excerpt),
        _details(plan),
    ]


def plan_message(
    run: RunRecord,
    plan: Plan,
    *,
    deciders: Deciders | None = None,
    previous: Plan | None = None,
    spec_excerpt: str | None = None,
) -> Message:
    """The plan with Approve / Revise / Cancel (each button carries run id + plan version)."""
    value = encode(run=run.id, v=plan.version)
    buttons = actions(
        button("Approve", APPROVE, value, style="primary"),
        button("Revise", REVISE, value),
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
    ask = who_can(deciders) if deciders is not None else None
    text = f"{title(run, plan)}: {len(plan.candidates)} candidates" + (f". Approve: {ask}" if ask else "")
    body = _body(run, plan, ask, previous, spec_excerpt)
    return Message(text=clip(text, 3000), blocks=fit([*body, buttons], keep_tail=1))


def plan_stamped(
    run: RunRecord, plan: Plan, stamp_text: str, *, previous: Plan | None = None, spec_excerpt: str | None = None
) -> Message:
    """A decided plan: the buttons replaced by who decided, when (the approved plan stays whole)."""
    text = f"Plan v{plan.version} for SFT run #{run.number}: {stamp_text}"
    body = _body(run, plan, None, previous, spec_excerpt)
    return Message(text=clip(text, 3000), blocks=fit([*body, section(stamp_text)], keep_tail=1))


def plan_superseded(run: RunRecord, plan: Plan, stamp_text: str) -> Message:
    """A plan replaced by a newer version: one line, so the thread shows the plan that counts."""
    line = f"~Plan v{plan.version}~ · ≈ {money(plan.cost.total_usd)} · {stamp_text}"
    return Message(text=clip(f"Plan v{plan.version} for SFT run #{run.number}: {stamp_text}", 3000), blocks=[context(line)])
