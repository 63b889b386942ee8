"""Closing decided gate messages, and the facts the final/failure messages need (from the store).

Stamps are derived from the recorded gate decisions, not from the click that caused them,
so a restarted bot (or a decision made in the terminal) still stamps the right message.
"""

from __future__ import annotations

from handlers import blocks as b
from handlers.evaluation import spec_excerpt
from handlers.mrkdwn import Message, at_time, escape, user
from handlers.thread import RunMessages
from pipeline.platforms.base import DeploymentStatus
from pipeline.runner import Runner
from pipeline.scoreboard import rank
from pipeline.store import runs as q
from pipeline.store.records import GateDecision, Question, RunRecord

OPEN = "slack:open_gates"


async def track(out: RunMessages, run_id: str, key: str) -> None:
    """Remember a posted gate message until a decision (or the run's end) stamps it."""
    keys = [k for k in (await out.ref(run_id, OPEN) or "").split(",") if k]
    if key not in keys:
        await out.set_ref(run_id, OPEN, ",".join([*keys, key]))


def _stamp_text(key: str, g: GateDecision) -> str:
    who, when = user(g.actor), at_time(g.decided_at)
    if g.decision == "approve":
        return f"✅ Approved by {who} at {when}"
    if g.decision == "revise":
        version = int(key.removeprefix("plan:v")) if key.startswith("plan:v") else (g.plan_version or 0)
        return f"✏️ Revised by {who} at {when} — superseded by plan v{version + 1}"
    if g.decision == "cancel":
        return f"🚫 Cancelled by {who} at {when}"
    if g.decision == "promote":
        return f"✅ Promoted #{g.details.get('candidate', '?')} by {who} at {when}"
    if g.decision == "answer":
        label = b.answer_label(str(g.details.get("question", "")), str(g.details.get("answer", "")))
        return f"✅ Answered {label} by {who} at {when}"
    return f"{escape(g.decision)} by {who} at {when}"


async def _render(runner: Runner, out: RunMessages, run: RunRecord, key: str, text: str) -> Message | None:
    if key.startswith("plan:v"):
        plan = await q.get_plan(runner.db, run.id, int(key.removeprefix("plan:v")))
        return b.plan_stamped(run, plan, text, spec_excerpt=spec_excerpt(plan)) if plan else None
    if key == "promotion":
        ranked = rank(await q.candidates(runner.db, run.id))
        return b.promotion_stamped(run, ranked, summary=await out.ref(run.id, "gate_summary") or "", stamp_text=text)
    if key.startswith("input:"):
        number = int(key.removeprefix("input:"))
        asked = await out.ref(run.id, f"question_text:{number}") or "a question"
        return b.question_stamped(run, Question(what="", text=asked, number=number), text)
    return None


async def stamp_decided(runner: Runner, out: RunMessages, run: RunRecord) -> None:
    """Replace the buttons of every decided (or no longer open) gate message with its stamp."""
    keys = [k for k in (await out.ref(run.id, OPEN) or "").split(",") if k]
    if not keys:
        return
    decisions = {g.gate: g for g in await runner.db.gate_decisions(run.id)}
    fresh = await runner.get(run.id)
    remaining = []
    for key in keys:
        g = decisions.get(key)
        if g is not None:
            text = _stamp_text(key, g)
        elif key.startswith("plan:v") and int(key.removeprefix("plan:v")) < fresh.plan_version:
            text = f"Superseded by plan v{fresh.plan_version}"
        elif fresh.phase.finished:
            text = f"Closed: the run {fresh.phase.value}"
        else:
            remaining.append(key)
            continue
        msg = await _render(runner, out, fresh, key, text)
        if msg is not None:
            await out.edit(run.id, key, msg)
    await out.set_ref(run.id, OPEN, ",".join(remaining))


async def shipped_model(runner: Runner, run: RunRecord) -> str | None:
    """The model the run produced: the deployed one, else the final run's, else the winner's."""
    for res in await runner.db.resources(run.id):
        if res.kind == "deployment" and res.details.get("model"):
            return str(res.details["model"])
    cands = {c.idx: c for c in await q.candidates(runner.db, run.id)}
    chosen = cands.get(0) or cands.get(run.winner or -1)
    return chosen.model or chosen.job_id if chosen else None


async def final(runner: Runner, run: RunRecord) -> Message:
    """The final message's data gathered from the store (works the same after a restart)."""
    deployment = next((r for r in await runner.db.resources(run.id) if r.kind == "deployment" and r.state == "ready"), None)
    snippet = None
    details = dict(deployment.details) if deployment else None
    if details and details.get("model_string"):
        try:
            snippet = runner.platform.snippet(DeploymentStatus.model_validate(details)).code
        except Exception:  # a snippet is a convenience; the ids above are what matter
            snippet = None
    cands = await q.candidates(runner.db, run.id)
    by_idx = {c.idx: c for c in cands}
    final_c = by_idx.get(0) or by_idx.get(run.winner or -1)
    costs = [c.cost_usd for c in cands if c.cost_usd is not None]
    return b.final_message(
        run,
        model=await shipped_model(runner, run),
        deployment=details,
        snippet=snippet,
        final=final_c,
        evaluation=await runner.db.get_ref(run.id, "slack:evaluation"),
        estimated=run.estimated_usd,
        actual=round(sum(costs), 6) if costs else None,
    )


async def left_running(runner: Runner, run: RunRecord) -> list[str]:
    """What of this run still exists and may cost money (after the runner's own cancels)."""
    out: list[str] = []
    for res in await runner.db.resources(run.id):
        if res.kind == "deployment" and res.state not in ("deleted", "recorded"):
            out.append(f"deployment `{res.resource_id}` is still up (billed while up; delete it when done)")
    for c in await q.candidates(runner.db, run.id):
        if c.submit_state != "planned" and not c.state.terminal:
            out.append(f"job `{c.job_id}` is {c.state.value}")
    return out
