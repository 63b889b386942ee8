"""Closing decided gate messages: the buttons are replaced by who decided what, and when.

Stamps are derived from the recorded gate decisions, not from the click that caused them,
so a restarted bot (or a decision made in the terminal) still stamps the right message —
and every DM that asked a decider about the same gate ("✅ Approved by @carol").
"""

from __future__ import annotations

from handlers.messages import MessageKey, RunMessages
from handlers.render import board, budget_gate, direct, plan_message, questions
from handlers.render.mrkdwn import Message, at_time, escape, user
from pipeline.domain.gates import BudgetRequest, GateKey, Question, QuestionKind
from pipeline.domain.money import money
from pipeline.domain.records import GateDecision, RunRecord
from pipeline.domain.slots import CandidateState
from pipeline.run.answers import comparison
from pipeline.run.scoreboard import rank
from pipeline.store import runs
from pipeline.store.db import Database


def stamp_text(key: GateKey, g: GateDecision) -> str:
    who, when = user(g.actor), at_time(g.decided_at)
    if g.decision == "approve":
        return f"✅ Approved by {who} at {when}"
    if g.decision == "revise":
        return f"✏️ revised by {who} at {when}: plan v{(key.number or 0) + 1} below"
    if g.decision == "cancel":
        return f"🚫 Cancelled by {who} at {when}"
    if g.decision == "promote":
        slot = g.details.get("candidate", "?")
        name = f"#{str(slot).removeprefix('c')}" if str(slot).startswith("c") else str(slot)
        return f"✅ Promoted {escape(name)} by {who} at {when}"
    if g.decision == "raise_budget":
        return f"✅ {money(float(g.details.get('more_usd') or 0))} more approved by {who} at {when}"
    if g.decision == "skip_step":
        what = "final run" if g.details.get("step") == "final" else "deployment"
        return f"⏭️ The {what} was skipped by {who} at {when}"
    if g.decision == "answer":
        try:
            kind = QuestionKind(str(g.details.get("question")))
        except ValueError:
            kind = QuestionKind.BASE_MODEL  # the answer is shown as typed
        if kind.blocks_deploy:
            return f"⚠️ *Deploy anyway*, decided by {who} at {when}"
        label = questions.answer_label(kind, str(g.details.get("answer", "")))
        return f"✅ Answered {label} by {who} at {when}"
    return f"{escape(g.decision)} by {who} at {when}"


async def _render(
    db: Database, out: RunMessages, run: RunRecord, key: MessageKey, text: str, *, superseded: bool = False
) -> Message | None:
    gate = key.gate_key
    if gate is None:
        return None
    if gate.kind == "plan" and gate.number is not None:
        plan = await runs.get_plan(db, run.id, gate.number)
        if plan is None:
            return None
        if superseded:  # the thread shows the plan that counts; the old one shrinks to a line
            return plan_message.plan_superseded(run, plan, text)
        return plan_message.plan_stamped(run, plan, text)
    if gate.kind == "promotion":
        plan = await runs.get_plan(db, run.id, run.plan_version) if run.plan_version else None
        ranked = rank(await runs.candidates(db, run.id))
        done = [c for c in ranked if not c.slot.is_final and c.state is CandidateState.COMPLETED]
        comp = await comparison(db, run, done[0]) if done else None  # the verdict stays once the buttons go
        return board.promotion_stamped(run, ranked, stamp_text=text, plan=plan, comparison=comp)
    if gate.kind == "budget":
        posted = await out.get(run.id, key)
        raw = posted.meta.get("request") if posted else None
        return budget_gate.budget_stamped(run, BudgetRequest.model_validate_json(str(raw)), text) if raw else None
    posted = await out.get(run.id, key)
    asked = str(posted.meta.get("text", "a question")) if posted else "a question"
    return questions.question_stamped(run, Question(kind=QuestionKind.BASE_MODEL, text=asked, number=gate.number or 1), text)


async def stamp_decided(db: Database, out: RunMessages, run: RunRecord) -> None:
    """Replace the buttons of every decided (or no longer open) gate message with its stamp."""
    keys = await out.open_gates(run.id)
    if not keys:
        return
    decisions = {str(g.gate): g for g in await db.gate_decisions(run.id)}
    fresh = await runs.get_run(db, run.id) or run
    for key in keys:
        gate = key.gate_key
        g = decisions.get(key.name)
        old_plan = gate is not None and gate.kind == "plan" and (gate.number or 0) < fresh.plan_version
        if g is not None and gate is not None:
            text = stamp_text(gate, g)
        elif old_plan:
            text = f"superseded by plan v{fresh.plan_version}"
        elif fresh.phase.finished:
            text = f"Closed: the run {fresh.phase.value}"
        else:
            continue
        revised = g is not None and g.decision == "revise"
        msg = await _render(db, out, fresh, key, text, superseded=old_plan or revised)
        if msg is not None:
            await out.stamp(run.id, key, msg)
        if gate is not None:
            await _stamp_dms(out, run, gate, text)


async def _stamp_dms(out: RunMessages, run: RunRecord, gate: GateKey, text: str) -> None:
    """Every decider's DM about ``gate``: its buttons replaced by who decided (an edit: no ping)."""
    keys = await out.keys(run.id, MessageKey.dms(gate))
    if not keys:
        return
    link = await out.permalink(run.id)
    for key in keys:
        posted = await out.get(run.id, key)
        head = str(posted.meta.get("head", f"Run #{run.number}")) if posted else f"Run #{run.number}"
        await out.edit(run.id, key, direct.decided_dm(head, text, link=link))
