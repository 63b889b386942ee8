"""The plan's evaluator, shown for review before approval (the "Evaluation spec" modal): what
it checks, how it was tried, and its contract (``eval_spec.md``, converted from Markdown)."""

from __future__ import annotations

from handlers.render.markdown import markdown_sections
from handlers.render.mrkdwn import Block, clip, code, context, escape, section, user
from pipeline.planning.plan_types import Plan

_KIND_TITLES = {"numbers": "final-number", "json": "JSON", "labels": "label", "exact": "exact-answer", "sql": "SQL"}
SPEC_CHARS = 20_000  # a modal holds 100 blocks; a generated spec is ~1-3k characters


def spec_text(plan: Plan) -> str | None:
    """The generated ``eval_spec.md`` (None without one); a bounded read."""
    ev = plan.evaluator
    if ev is None or not ev.spec_path:
        return None
    try:
        with open(ev.spec_path, encoding="utf-8", errors="replace") as fh:
            return fh.read(SPEC_CHARS) or None
    except OSError:
        return None


def judged_by(plan: Plan) -> str:
    """How candidates are judged, saying whose evaluator it is (``<@U>``'s file, a Fireworks account's)."""
    ev, ref = plan.evaluator, plan.evaluation.ref
    if not ref:
        return escape(clip(plan.evaluation.describe(), 500))
    if plan.evaluation.hosted:
        return f"the Fireworks evaluator {code(clip(ref, 200))}"
    owner = ev.owner if ev is not None and ev.kind == "user" else None
    return f"{user(owner)}'s evaluator file {code(clip(ref, 200))}" if owner else f"the evaluator file {code(clip(ref, 200))}"


def evaluator_review(plan: Plan, *, spec: str | None = None) -> list[Block]:
    """What the plan's evaluator checks, for review before approval (empty for plain loss)."""
    ev = plan.evaluator
    if ev is None:
        note = plan.fallback_note
        return [section(f"📏 *How candidates are judged:* validation loss. {escape(note)}")] if note else []
    if ev.kind == "user":
        what = judged_by(plan)  # "<@U>'s evaluator file `x.py`"
    elif ev.kind == "hosted":
        what = escape(clip(ev.summary, 1200))
    else:
        what = f"an evaluator I generated from your data ({_KIND_TITLES.get(ev.kind, escape(ev.kind))} check). {escape(clip(ev.summary, 1200))}"
    tried = (
        "Fireworks says it is ACTIVE; it scores each candidate's answers in an evaluation job."
        if ev.kind == "hosted"
        else f"I tried it on {ev.validated_on} reference answer{'s' if ev.validated_on != 1 else ''} from your data: it scored "
        f"{'them' if ev.validated_on != 1 else 'it'} without errors."
        if ev.validated_on
        else "It has not been tried on your data yet."
    )
    how = (
        f"Each candidate answers {plan.eval_examples:,} held-out prompts; the promotion gate ranks by mean score (0–1), "
        "validation loss breaks ties."
    )
    if plan.baseline:
        how += f" {escape(clip(plan.baseline, 400))}"
    blocks = [section(f"📏 *How candidates are judged:* {what}\n{how} {tried}")]
    if spec:
        blocks += markdown_sections(spec)  # Markdown → mrkdwn: Slack would show # and ** as typed
    if ev.kind not in ("user", "hosted"):
        blocks.append(
            context(
                "`evaluator.py` is attached in the run's thread; this spec is its `eval_spec.md`. "
                "Revise with “use my own evaluator” or “eval=loss” to change how candidates are judged."
            )
        )
    return blocks
