"""Pure Block Kit renderers of a run's channel message (the root) and its endings.

The root states the run's status in words and never pings: it is posted once (when the
first question or plan appears, where the decision's own message already mentions whoever
must act) and edited after that, so it names people rather than mentioning them. It says
whom a gate waits for by the same rules as the buttons, quota waits and teardowns, and
times as clock times (Slack date tokens), which stay true between edits.

The plan is in ``plan_message``, the scoreboard and gate in ``board``, the final message in
``final_message``. Every function takes plain domain values and returns a :class:`Message`
with a text fallback; user and platform text is escaped and clipped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from handlers.render import figures
from handlers.render.action_ids import DETAILS_ERROR, RETRY
from handlers.render.mrkdwn import Block, Message, actions, at_time, button, clip, code, context, encode, escape, section, user
from handlers.render.people import Ask, name
from pipeline.domain.machine import Phase
from pipeline.domain.records import CandidateRecord, RunRecord
from pipeline.domain.slots import CandidateState
from pipeline.run import timing
from pipeline.run.bill import Bill

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
    """For replies to one person (ephemerals, DMs about a deployment): the requester mentioned."""
    return f"SFT run #{run.number} by {user(run.requester)}"


@dataclass(frozen=True)
class RootFacts:
    """What the root says beyond the run record: whom a gate waits for (``ask``, by name),
    the jobs, the spend, the shipped model and whether its deployment was torn down."""

    ask: Ask | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    cands: list[CandidateRecord] = field(default_factory=list)
    bill: Bill | None = None  # the run's money (pipeline/run/bill.py)
    model: str | None = None
    torn_down: bool = False
    result: str | None = None  # "score 0.910 vs base 0.400"
    actor: str | None = None  # who cancelled
    max_parallel: int = 6  # jobs that can run at once now: the plan's limit, or the platform's quota when lower
    plan_seconds: float | None = None  # the plan's middle estimate, approval to deployed model


def _waiting(run: RunRecord, f: RootFacts) -> str:
    who = f.ask.plain() if f.ask is not None else "someone"
    q = run.question
    if run.phase is Phase.AWAITING_INPUT and q is not None and q.kind.blocks_deploy:
        return f"deploy blocked: waiting for {who} to deploy anyway or cancel"
    if run.phase is Phase.AWAITING_INPUT:
        return f"waiting for {name(run.requester, f.names)} to answer a question in the thread"
    if run.phase is Phase.AWAITING_BUDGET and run.budget is not None:
        more = figures.estimate(run.budget.more_usd)
        return f"waiting for {who} to approve {more} more for {run.budget.step.label}, or skip it"
    if run.phase is Phase.AWAITING_PLAN_APPROVAL:
        est = f" ({figures.estimate(run.estimated_usd)})" if run.estimated_usd is not None else ""
        return f"waiting for {who} to approve plan v{run.plan_version}{est}"
    return f"waiting for {who} to promote a candidate"


def _sweeping(f: RootFacts, now: float) -> str:
    cands = f.cands
    if not cands:
        return "sweeping"
    running = sum(1 for c in cands if c.state is CandidateState.RUNNING)
    queued = [c for c in cands if c.state is CandidateState.WAITING]
    quota = [c for c in queued if (c.note or "").startswith("waiting for quota")]
    parts = [f"sweeping {len(cands)} candidates"]
    if quota:
        parts.append(f"{running} running, {len(quota)} waiting for the platform's quota")
    left = timing.remaining(cands, max_parallel=max(1, f.max_parallel), now=now)
    if left is not None:
        parts.append(f"sweep done ≈ {at_time(now + left)}")
    return " · ".join(parts)


def _status(run: RunRecord, f: RootFacts, now: float) -> tuple[str, str]:
    """(the root's first line, its plain-text fallback)."""
    step = timing.STEP.get(run.phase)
    if run.phase is Phase.AWAITING_BUDGET and run.budget is not None:
        step = timing.STEP[Phase.FINAL_TRAINING if run.budget.step.value == "final" else Phase.DEPLOYING]
    if run.question is not None and run.question.kind.blocks_deploy:
        step = timing.STEP[Phase.DEPLOYING]
    where = f"step {step} of {timing.TOTAL_STEPS}: " if step else ""
    took = timing.minutes((run.updated_at if run.phase.finished else now) - run.created_at)
    head = f"SFT run #{run.number} by {name(run.requester, f.names)}"
    if run.phase is Phase.SUCCEEDED:
        what = code(short_name(f.model)) if f.model else "finished"
        what += f", {f.result}" if f.result else ""
        gone = " · deployment torn down, nothing bills" if f.torn_down else ""
        return f"✅ *{head}* · done in {took}: {what}{gone}", f"✅ SFT run #{run.number} done"
    if run.phase is Phase.FAILED:
        return f"❌ *{head}* · failed after {took} (why, and Retry, in the thread)", f"❌ SFT run #{run.number} failed"
    if run.phase is Phase.CANCELLED:
        by = f" by {name(f.actor, f.names)}" if f.actor else ""
        return f"🚫 *{head}* · cancelled{by} after {took}", f"🚫 SFT run #{run.number} cancelled"
    if run.phase.gate:
        waiting = _waiting(run, f)
        return f"⏸️ *{head}* · {where}{waiting}", f"SFT run #{run.number}: {waiting}"
    doing = (
        _sweeping(f, now) if run.phase is Phase.SWEEPING else _DOING[run.phase].format(dataset=code(short_name(run.spec.dataset)))
    )
    return f"⏳ *{head}* · {where}{doing}", f"SFT run #{run.number}: {run.phase.value.replace('_', ' ')}"


def _facts(run: RunRecord, f: RootFacts, now: float) -> list[str]:
    facts = [code(short_name(run.spec.dataset)), ", ".join(code(m) for m in run.spec.base_models[:3]) or "model to be chosen"]
    if not run.phase.finished:
        # A start time, not "12 min so far": the root is edited only when something changes,
        # so an elapsed time would be stale in between (and would make every re-render an edit).
        facts.append(f"started {at_time(run.created_at)}")
    if (said := figures.bill_fact(f.bill, estimated=run.estimated_usd)) is not None:
        facts.append(said)
    if run.phase is Phase.AWAITING_PLAN_APPROVAL and f.plan_seconds is not None:
        facts.append(f"done ≈ {at_time(now + f.plan_seconds)} if approved now")
    facts.append("details in the thread")
    return facts


def root(run: RunRecord, facts: RootFacts | None = None, *, now: float | None = None) -> Message:
    """The run's one channel message, edited in place: where it is, whom it waits for, time and money."""
    now = time.time() if now is None else now
    f = facts or RootFacts()
    line, plain_line = _status(run, f, now)
    return Message(text=clip(plain_line, 3000), blocks=[section(line), context(" · ".join(_facts(run, f, now)))])


def notice(text: str, *, icon: str = "ℹ️") -> Message:
    return Message(text=escape(clip(text, 1000)), blocks=[section(f"{icon} {escape(text)}")])


def _left(left_running: list[str], started_jobs: int, bill: Bill | None = None) -> str:
    """What an ended run leaves behind: what still costs money, or that nothing does, and what
    it spent (from its bill: never "nothing spent" when something was)."""
    spent = f" {figures.spent(bill)}" if bill is not None and bill.lines else ""
    if left_running:
        return "*Still up and costing money:* " + "; ".join(escape(x) for x in left_running[:20]) + "." + spent
    if started_jobs:
        return "Nothing is left running: this run's jobs were stopped." + spent
    if spent:
        return "Nothing is left running." + spent
    return "Nothing was started or spent."


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")


def cause(reason: str, limit: int = 240) -> str:
    """A failure's cause in one sentence: its first, cut at a nested platform quote and clipped.

    The full text stays in the run's record (the "Error details" modal, `/sft status`).
    """
    first = " ".join(reason.split())
    first = _SENTENCE.split(first, maxsplit=1)[0]
    # "…, so the run stops here (The platform refused…: 9 lines)": the clause in brackets says
    # the same again, in the platform's words; the details button has it.
    if " (" in first and len(first) > limit // 2:
        first = first.split(" (", 1)[0]
    return clip(first.rstrip(". "), limit) + "."


def _retry_value(run: RunRecord) -> str:
    return encode(run=run.id)


def failure(
    run: RunRecord,
    *,
    reason: str,
    left_running: list[str],
    started_jobs: int = 0,
    whole: bool = False,
    bill: Bill | None = None,
) -> Message:
    """❌ in two sentences and a button: the cause, what to do (and what is left), Retry.

    ``whole``: told to the requester alone (the data could not be used, nothing was posted):
    the reason is theirs to read whole, with its excerpt of the offending line.
    """
    left = _left(left_running, started_jobs, bill)
    todo = "Fix what it names, then press *Retry* (the same request, a new plan to approve)" if run.instruction else ""
    why = escape(clip(reason, 2000)) if whole else escape(cause(reason))
    body = f"❌ {user(run.requester)}, *run #{run.number} failed:* {why}\n{todo}{'. ' if todo else ''}{left}"
    elements: list[Block] = []
    if run.instruction:
        elements.append(button("Retry", RETRY, _retry_value(run), style="primary"))
    elements.append(button("Error details", DETAILS_ERROR, encode(run=run.id)))
    blocks: list[Block] = [section(body), actions(*elements, block_id=f"failed|{run.id}")]
    if run.instruction:
        blocks.append(context(f"Or by hand: `/sft run {escape(clip(run.instruction, 300))}`"))
    return Message(text=f"❌ SFT run #{run.number} failed: {escape(cause(reason, 300))}", blocks=blocks)


def cancelled(
    run: RunRecord,
    *,
    actor: str | None,
    left_running: list[str],
    started_jobs: int = 0,
    names: Mapping[str, str] | None = None,
    bill: Bill | None = None,
) -> Message:
    """🚫 once: by whom; the requester is told (mentioned) only when someone else cancelled."""
    names = names or {}
    left = _left(left_running, started_jobs, bill)
    if actor is None or actor == run.requester:
        by = f" by {name(actor, names)}" if actor else ""
        head = f"🚫 *Run #{run.number} cancelled{by}.*"
    else:
        head = f"🚫 {user(run.requester)}, *your run #{run.number} was cancelled by {name(actor, names)}.*"
    return Message(text=f"🚫 SFT run #{run.number} cancelled", blocks=[section(f"{head} {left}")])
