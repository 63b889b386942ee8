"""Pure renderers of the bot's answers to commands: help, models, runs, status, audit, confirms."""

from __future__ import annotations

import time
from collections.abc import Sequence

from handlers.render.action_ids import CONFIRM_CANCEL, CONFIRM_TEARDOWN, KEEP, KEEP_DEPLOYMENT
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
from handlers.render.run import run_title, scoreboard, short_name
from pipeline.catalog import BaseModelInfo
from pipeline.planning.cost import money
from pipeline.store.records import AuditEvent, CandidateRecord, GateDecision, RunRecord

HELP_LINES = (
    "`/sft run dataset=<id or .jsonl> model=<base model> [lr=… rank=… epochs=…]` — plan a run (plain English works too)",
    "`/sft models` — base models you can fine-tune",
    "`/sft runs [mine|all]` — recent runs (yours by default)",
    "`/sft status 12` — where run #12 is",
    "`/sft cancel 12` — stop run #12 (asks to confirm)",
    "`/sft audit 12` — who decided what, and when",
    "`/sft teardown 12` — delete run #12's deployment so it stops billing (asks to confirm)",
    "Or mention me: “run SFT on accounts/me/datasets/support-conv with qwen3-8b and 3 epochs”, "
    "“which base models do you support?”, “status of run 12”, “cancel run 12”.",
)


def help_message(*, problem: str | None = None) -> Message:
    """Usage; with ``problem`` first when the person typed something that did not parse."""
    blocks = []
    if problem:
        blocks.append(section(f"⚠️ {escape(problem)}"))
    blocks += [
        section("*sftbot* plans, runs and deploys supervised fine-tuning, with a person approving each step."),
        section("\n".join(HELP_LINES)),
    ]
    text = (
        f"⚠️ {escape(clip(problem, 1000))}"
        if problem
        else "sftbot help: /sft run | models | runs | status | cancel | audit | teardown | help"
    )
    return Message(text=clip(text, 3000), blocks=blocks)


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


def run_line(r: RunRecord) -> str:
    est = f" · est {money(r.estimated_usd)}" if r.estimated_usd is not None else ""
    act = f" · actual {money(r.actual_usd)}" if r.actual_usd is not None else ""
    return (
        f"*#{r.number}* {code(short_name(r.spec.dataset))} by {user(r.requester)} — "
        f"{r.phase.value.replace('_', ' ')}{est}{act} · {at_time(r.updated_at)}"
    )


def runs_message(runs: Sequence[RunRecord], *, scope: str) -> Message:
    title = "Your recent runs" if scope == "mine" else "Recent runs"
    if not runs:
        return Message(text=f"{title}: none yet", blocks=[section(f"*{title}:* none yet. Start one with `/sft run`.")])
    blocks = [section(f"*{title}*"), *chunked_sections([run_line(r) for r in runs])]
    return Message(text=f"{title}: {len(runs)}", blocks=fit(blocks))


def status_message(run: RunRecord, cands: list[CandidateRecord], *, channel: str | None) -> Message:
    where = f" Follow it in <#{channel}>." if channel and channel.startswith(("C", "G")) else ""
    head = f"{run_title(run)}: *{run.phase.value.replace('_', ' ')}*"
    if run.plan_version:
        head += f" · plan v{run.plan_version}"
    if run.estimated_usd is not None:
        head += f" · estimate {money(run.estimated_usd)}"
    if run.error:
        head += f"\n{escape(clip(run.error, 1500))}"
    blocks = [section(head + where), context(f"run id {code(run.id)} · instruction: {escape(clip(run.instruction, 500))}")]
    if cands:
        blocks += scoreboard(run, cands, title="Candidates").blocks
    return Message(text=f"SFT run #{run.number}: {run.phase.value}", blocks=fit(blocks))


def audit_message(run: RunRecord, events: Sequence[AuditEvent]) -> Message:
    """The audit trail, oldest first; when it does not fit, the newest events are kept."""
    lines = []
    for a in events:
        who = user(a.actor) if a.actor.startswith(("U", "W")) else code(a.actor_name or a.actor)
        ver = f" (plan v{a.plan_version})" if a.plan_version else ""
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(a.at))
        lines.append(f"{when} · {who} · *{escape(clip(a.action, 100))}*{ver}")
    kept: list[str] = []
    room = 8000
    for line in reversed(lines):
        if room - len(line) < 0:
            break
        kept.insert(0, line)
        room -= len(line) + 1
    blocks = [header(f"Audit trail — run #{run.number}")]
    if len(kept) < len(lines):
        blocks.append(context(f"… {len(lines) - len(kept)} earlier events left out (`sftbot show {run.number}` has them all)"))
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
