"""Pure Block Kit renderers of a run's channel message (the root) and its endings.

The plan is in ``plan``, the scoreboard and gate in ``board``, the final message in ``final``.

Every function takes plain domain values and returns a :class:`Message` with a text
fallback; user and platform text is escaped and clipped, so each message fits Slack's
limits whatever the data (tests render each one with extreme values).
"""

from __future__ import annotations

import time
from pathlib import PurePosixPath

from handlers.render.mrkdwn import Message, at_time, clip, code, context, escape, section, user
from handlers.render.people import who_can
from pipeline.domain.authz import Deciders
from pipeline.domain.machine import Phase
from pipeline.domain.money import money
from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.planning.ledger import Ledger
from pipeline.run import timing

_DOING = {
    Phase.INSPECTING: "inspecting {dataset}",
    Phase.SWEEPING: "sweeping",
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


def _waiting(run: RunRecord, deciders: Deciders | None) -> str:
    who = who_can(deciders) if deciders is not None else "someone"
    if run.phase is Phase.AWAITING_INPUT:
        return f"waiting for {user(run.requester)} to answer a question in the thread"
    if run.phase is Phase.AWAITING_BUDGET and run.budget is not None:
        return f"waiting for {who} to approve ≈ {money(run.budget.more_usd)} more for {run.budget.step.label}, or skip it"
    if run.phase is Phase.AWAITING_PLAN_APPROVAL:
        est = f" (≈ {money(run.estimated_usd)})" if run.estimated_usd is not None else ""
        return f"waiting for {who} to approve plan v{run.plan_version}{est}"
    return f"waiting for {who} to promote a candidate"


def root(
    run: RunRecord,
    *,
    cands: list[CandidateRecord] | None = None,
    deciders: Deciders | None = None,
    model: str | None = None,
    actor: str | None = None,
    now: float | None = None,
    book: Ledger | None = None,
) -> Message:
    """The run's one channel message, edited in place: where it is, whom it waits for, time and money."""
    now = time.time() if now is None else now
    cands = cands or []
    ds = code(short_name(run.spec.dataset))
    took = timing.minutes((run.updated_at if run.phase.finished else now) - run.created_at)
    step = timing.STEP.get(run.phase)
    if run.phase is Phase.AWAITING_BUDGET and run.budget is not None:
        step = timing.STEP[Phase.FINAL_TRAINING if run.budget.step.value == "final" else Phase.DEPLOYING]
    where = f"step {step} of {timing.TOTAL_STEPS}: " if step else ""
    if run.phase is Phase.SUCCEEDED:
        line = f"✅ *{run_title(run)}* · done in {took}: {code(model) if model else 'finished'}"
        plain_line = f"✅ SFT run #{run.number} done" + (f": {escape(clip(model, 500))}" if model else "")
    elif run.phase is Phase.FAILED:
        line = f"❌ *{run_title(run)}* · failed after {took}: {escape(clip(run.error or 'unknown error', 1500))}"
        plain_line = f"❌ SFT run #{run.number} failed"
    elif run.phase is Phase.CANCELLED:
        line = f"🚫 *{run_title(run)}* · cancelled" + (f" by {user(actor)}" if actor else "")
        plain_line = f"🚫 SFT run #{run.number} cancelled"
    elif run.phase.gate:
        line = f"⏸️ *{run_title(run)}* · {where}{_waiting(run, deciders)}"
        plain_line = f"SFT run #{run.number}: {_waiting(run, deciders)}"
    else:
        doing = _DOING[run.phase].format(dataset=ds)
        if run.phase is Phase.SWEEPING and cands:
            doing += f" {len(cands)} candidates (progress on the scoreboard in the thread)"
        line = f"⏳ *{run_title(run)}* · {where}{doing}"
        plain_line = f"SFT run #{run.number}: {run.phase.value.replace('_', ' ')}"
    models = ", ".join(code(m) for m in run.spec.base_models[:3]) or "model to be chosen"
    facts = [ds, models]
    if not run.phase.finished:
        # A start time, not "12 min so far": the root is edited only when the phase changes,
        # so an elapsed time would be stale in between (and would make every re-render an edit).
        facts.append(f"started {at_time(run.created_at)}")
    spent = book.spent_usd if book is not None and book.lines else timing.spent(cands)
    if spent is not None and run.approved_usd is not None:
        warn = "⚠️ " if book is not None and book.warning else ""
        facts.append(f"{warn}≈ {money(spent)} of {money(run.approved_usd)} approved")
    elif spent is not None and run.estimated_usd is not None:
        facts.append(f"≈ {money(spent)} of {money(run.estimated_usd)} spent")
    elif run.estimated_usd is not None:
        facts.append(f"estimate {money(run.estimated_usd)}")
    facts.append("details in the thread")
    return Message(text=clip(plain_line, 3000), blocks=[section(line), context(" · ".join(facts))])


def notice(text: str, *, icon: str = "ℹ️") -> Message:
    return Message(text=escape(clip(text, 1000)), blocks=[section(f"{icon} {escape(text)}")])


def _left(left_running: list[str], started_jobs: int) -> str:
    """What an ended run leaves behind: what still costs money, or that nothing does."""
    if left_running:
        return "*Still up and costing money:* " + "; ".join(escape(x) for x in left_running[:20])
    if started_jobs:
        return "Nothing is left running: this run's jobs were stopped."
    return "Nothing was started or spent."


def failure(run: RunRecord, *, reason: str, left_running: list[str], started_jobs: int = 0) -> Message:
    """❌ to the requester: the reason, what (if anything) still runs, and how to try again."""
    left = _left(left_running, started_jobs)
    again = f"\nTo try again after fixing it: `/sft run {escape(clip(run.instruction, 300))}`" if run.instruction else ""
    return Message(
        text=f"❌ SFT run #{run.number} failed: {escape(clip(reason, 1000))}",
        blocks=[section(f"❌ *SFT run #{run.number} failed*, {user(run.requester)}: {escape(reason)}"), section(left + again)],
    )


def cancelled(run: RunRecord, *, actor: str | None, left_running: list[str], started_jobs: int = 0) -> Message:
    who = f" by {user(actor)}" if actor else ""
    left = _left(left_running, started_jobs)
    return Message(
        text=f"🚫 SFT run #{run.number} cancelled",
        blocks=[section(f"🚫 *Run #{run.number} cancelled{who}*, {user(run.requester)}. {left}")],
    )
