"""Pure renderers of the bot's answers to commands: help, models, runs, status, audit, confirms."""

from __future__ import annotations

import time
from collections.abc import Sequence

from handlers.render.action_ids import CONFIRM_CANCEL, CONFIRM_TEARDOWN, KEEP, KEEP_DEPLOYMENT
from handlers.render.board import candidates_board
from handlers.render.mrkdwn import (
    Message,
    actions,
    at_time,
    button,
    chunked_sections,
    clip,
    code,
    context,
    encode,
    escape,
    fit,
    header,
    section,
    user,
)
from handlers.render.people import mentions_in
from handlers.render.root_message import run_title, short_name
from pipeline.domain.catalog import BaseModelInfo
from pipeline.domain.money import money
from pipeline.domain.records import AuditEvent, CandidateRecord, GateDecision, RunRecord
from pipeline.run import timing

HELP_LINES = (
    "`/sft run dataset=<id or .jsonl> model=<base model> [lr=… rank=… epochs=…]` — plan a run (plain English works too)",
    "`/sft models` — base models you can fine-tune",
    "`/sft runs [mine|all]` — recent runs of this channel (or yours, or all)",
    "`/sft status 12` — where run #12 is",
    "`/sft cancel 12` — stop run #12 (asks to confirm)",
    "`/sft audit 12` — who decided what, and when",
    "`/sft teardown 12` — delete run #12's deployment so it stops billing (asks to confirm)",
    "`/sft spend` — what runs cost in the last 30 days (`/sft spend 7d`), and what still bills",
    "Or mention me: “run SFT on accounts/me/datasets/support-conv with qwen3-8b and 3 epochs”, "
    "“which base models do you support?”, “status of run 12”, “cancel run 12”.",
)


def help_message(*, problem: str | None = None) -> Message:
    """Usage; with ``problem``, only the problem and where help is (not the whole list again)."""
    if problem:
        text = f"⚠️ {escape(problem)}"
        return Message(
            text=clip(f"⚠️ {escape(clip(problem, 1000))}", 3000),
            blocks=[section(text), context("`/sft help` lists every command.")],
        )
    blocks = [
        section("*sftbot* plans, runs and deploys supervised fine-tuning, with a person approving each step."),
        section("\n".join(HELP_LINES)),
    ]
    return Message(
        text="sftbot help: /sft run | models | runs | status | cancel | audit | teardown | spend | help", blocks=blocks
    )


def problem_message(problem: str) -> Message:
    """One clear sentence naming what is wrong (a bad command, a refused click)."""
    return Message(text=f"⚠️ {escape(clip(problem, 1000))}", blocks=[section(f"⚠️ {escape(problem)}")])


def note_message(text: str) -> Message:
    """A plain one-line answer (text already mrkdwn-safe)."""
    return Message(text=clip(text, 3000), blocks=[section(text)])


def models_message(models: Sequence[BaseModelInfo], *, platform: str) -> Message:
    lines = []
    for m in models:
        size = f"{m.params_b:g}B" if m.params_b else "size unknown"
        ctx = f", context {m.max_context:,}" if m.max_context else ""
        lines.append(f"• {code(m.id)} — {size}{ctx}")
    blocks = [
        section(f"*Base models you can fine-tune on {escape(platform)}* ({len(models)})"),
        *chunked_sections(lines or ["none found"]),
    ]
    return Message(text=f"{len(models)} base models on {platform}", blocks=fit(blocks))


def _phase(r: RunRecord) -> str:
    step = timing.STEP.get(r.phase)
    words = r.phase.value.replace("_", " ")
    return f"step {step}/{timing.TOTAL_STEPS} {words}" if step else words


def run_line(r: RunRecord, link: str | None = None) -> str:
    """``#12 support-conv by @alice — step 3/7 sweeping · est $4.05 · 14:03`` (the number links to the thread)."""
    est = f" · est {money(r.estimated_usd)}" if r.estimated_usd is not None else ""
    act = f" · actual {money(r.actual_usd)}" if r.actual_usd is not None else ""
    number = f"<{link}|#{r.number}>" if link else f"#{r.number}"
    return (
        f"*{number}* {code(short_name(r.spec.dataset))} by {user(r.requester)} — {_phase(r)}{est}{act} · {at_time(r.updated_at)}"
    )


_TITLES = {"channel": "Runs in this channel", "mine": "Your runs", "all": "Recent runs"}


def runs_message(runs: Sequence[RunRecord], *, scope: str, links: dict[str, str] | None = None) -> Message:
    title = _TITLES.get(scope, "Recent runs")
    if not runs:
        return Message(text=f"{title}: none yet", blocks=[section(f"*{title}:* none yet. Start one with `/sft run`.")])
    links = links or {}
    blocks = [
        section(f"*{title}*"),
        *chunked_sections([run_line(r, links.get(r.id)) for r in runs]),
        context("`/sft runs mine` · `/sft runs all` · `/sft status <number>`"),
    ]
    return Message(text=f"{title}: {len(runs)}", blocks=fit(blocks))


def status_message(
    run: RunRecord, cands: list[CandidateRecord], *, channel: str | None, link: str | None = None, max_parallel: int = 6
) -> Message:
    if link:
        where = f" <{link}|Open the thread>."
    elif channel and channel.startswith(("C", "G")):
        where = f" Follow it in <#{channel}>."
    else:
        where = ""
    head = f"{run_title(run)}: *{_phase(run)}*"
    if run.plan_version:
        head += f" · plan v{run.plan_version}"
    if run.estimated_usd is not None:
        head += f" · estimate {money(run.estimated_usd)}"
    if run.error:
        head += f"\n{escape(clip(run.error, 1500))}"
    blocks = [section(head + where), context(f"run id {code(run.id)} · instruction: {escape(clip(run.instruction, 500))}")]
    if cands:
        blocks += candidates_board(run, cands, max_parallel=max_parallel).blocks
    return Message(text=f"SFT run #{run.number}: {run.phase.value}", blocks=fit(blocks))


_VERBS = {
    "run_created": "started the run",
    "needs_input": "asked a question",
    "answer": "answered the question",
    "planned": "proposed plan v{v}",
    "approve": "approved plan v{v}",
    "revise": "revised plan v{v}",
    "sweep_done": "finished the sweep",
    "promote": "promoted {candidate}",
    "final_done": "finished the final run",
    "evaluated": "evaluated the final model",
    "deployed": "deployed the model",
    "reported": "wrote the report",
    "fail": "stopped the run: it failed",
    "cancel": "cancelled the run",
    "denied_start": "was refused a new run",
    "cancel_job_failed": "could not cancel a job",
}
# Job events come in batches (one per candidate): one line per batch, with the count.
_BATCHED = {
    "job_submitting": None,  # the create that follows says the same
    "job_created": "submitted {n} job{s}",
    "job_pending": "{n} job{s} queued at the platform",
    "job_running": "{n} job{s} started training",
    "job_completed": "{n} job{s} completed",
    "job_failed": "{n} job{s} failed",
    "job_cancelled": "cancelled {n} job{s}",
    "candidate_scored": "scored {n} candidate{s}",
}


def when(epoch: float) -> str:
    """A date and time in the reader's timezone (a UTC fallback for old clients)."""
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))
    return f"<!date^{int(epoch)}^{{date_short_pretty}} {{time}}|{fallback}>"


def _what(a: AuditEvent) -> str:
    if a.action.startswith("denied_") and a.action != "denied_start":
        verb = a.action.removeprefix("denied_")
        reason = str(a.details.get("reason") or a.details.get("rule") or "")
        # The reason was worded for any surface (raw ids): here the ids become mentions.
        return f"was refused ({escape(clip(verb, 40))}): {mentions_in(escape(clip(reason, 200)))}"
    template = _VERBS.get(a.action)
    if template is None:
        return escape(clip(a.action.replace("_", " "), 100))
    candidate = str(a.details.get("candidate", "a candidate"))
    return template.format(
        v=a.plan_version or "?", candidate=escape(f"#{candidate.removeprefix('c')}" if candidate[:1] == "c" else candidate)
    )


def audit_lines(events: Sequence[AuditEvent]) -> list[str]:
    """Who did what, when: human verbs, job events batched, oldest first."""
    lines: list[str] = []
    i = 0
    while i < len(events):
        a = events[i]
        who = user(a.actor) if a.actor.startswith(("U", "W")) else code(a.actor_name or a.actor)
        if a.action in _BATCHED:
            j = i
            while j < len(events) and events[j].action == a.action and events[j].actor == a.actor:
                j += 1
            template = _BATCHED[a.action]
            if template is not None:
                n = j - i
                lines.append(f"{when(a.at)} · {who} {template.format(n=n, s='s' if n != 1 else '')}")
            i = j
            continue
        lines.append(f"{when(a.at)} · {who} {_what(a)}")
        i += 1
    return lines


def audit_message(run: RunRecord, events: Sequence[AuditEvent]) -> Message:
    """The audit trail, oldest first; when it does not fit, the newest events are kept."""
    lines = audit_lines(events)
    kept: list[str] = []
    room = 8000
    for line in reversed(lines):
        if room - len(line) < 0:
            break
        kept.insert(0, line)
        room -= len(line) + 1
    blocks = [header(f"Audit trail — run #{run.number}")]
    if len(kept) < len(lines):
        blocks.append(context(f"… {len(lines) - len(kept)} earlier lines left out (`sftbot show {run.number}` has them all)"))
    blocks += chunked_sections(kept or ["no events"])
    return Message(text=f"Audit trail of SFT run #{run.number}: {len(events)} events", blocks=fit(blocks))


def confirm_cancel_message(run: RunRecord) -> Message:
    value = encode(run=run.id, v=run.plan_version)
    blocks = [
        section(f"Cancel {run_title(run)} ({run.phase.value.replace('_', ' ')})? Its active jobs are cancelled."),
        actions(
            button(f"Yes, cancel run #{run.number}", CONFIRM_CANCEL, value, style="danger"),
            button("Keep it running", KEEP, value),
            block_id=f"confirm|{run.id}",
        ),
    ]
    return Message(text=f"Cancel SFT run #{run.number}?", blocks=blocks)


def confirm_teardown_message(run: RunRecord, deployment_id: str) -> Message:
    """Asked before a run's deployment is deleted: what goes, and what stays."""
    value = encode(run=run.id)
    blocks = [
        section(
            f"Delete deployment {code(deployment_id)} of {run_title(run)}? It stops billing at once; requests to it "
            "fail from then on. The fine-tuned model stays and can be deployed again."
        ),
        actions(
            button(f"Yes, delete {clip(deployment_id, 40)}", CONFIRM_TEARDOWN, value, style="danger"),
            button("Keep it", KEEP_DEPLOYMENT, value),
            block_id=f"teardown|{run.id}",
        ),
    ]
    return Message(text=f"Delete the deployment of SFT run #{run.number}?", blocks=blocks)


def torn_down_text(run: RunRecord, deployment_id: str, state: str, *, who: str | None = None) -> str:
    """What a teardown did, as the thread and the person who asked read it."""
    by = f" by {who}" if who else ""
    return f"🧹 Deployment {code(deployment_id)} of run #{run.number} was torn down{by} (read back: {escape(state)}); it no longer bills."


def already_decided_message(first: GateDecision, *, what: str) -> Message:
    """The polite note for a second click on a decided gate."""
    verb = {"approve": "approved", "revise": "revised", "promote": "promoted", "cancel": "cancelled", "answer": "answered"}.get(
        first.decision, first.decision
    )
    who = user(first.actor) if first.actor.startswith(("U", "W")) else escape(first.actor_name or first.actor)
    text = f"This {what} was already {verb} by {who} at {at_time(first.decided_at)}; nothing else was done."
    return Message(text=f"Already {verb} by {escape(clip(first.actor_name or first.actor, 200))}", blocks=[section(text)])
