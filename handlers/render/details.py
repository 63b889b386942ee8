"""The evidence behind a decision, one modal each: "Price details", "Evaluation spec",
"Compare examples", and a failure's "Error details".

A decision message keeps to one phone screen; what it rests on is one click away here,
whole (a modal holds 100 blocks and scrolls), and never posted into the thread.
"""

from __future__ import annotations

from typing import Any

from handlers.render import plan_message
from handlers.render.comparison import comparison_blocks
from handlers.render.mrkdwn import VIEW_BLOCKS_MAX, Block, code_block, context, escape, fit, plain, section
from handlers.render.review import evaluator_review
from pipeline.domain.records import RunRecord
from pipeline.evaluation.compare import Comparison
from pipeline.planning.plan_types import Plan

MODAL_BUDGET = 60_000  # characters of blocks: far above a message's, well under a view's limit


def modal(title: str, blocks: list[Block]) -> dict[str, Any]:
    """A read-only modal (no submit button) for ``views.open``."""
    return {
        "type": "modal",
        "title": plain(title, 24),  # Slack's limit for a modal title
        "close": plain("Close", 24),
        "blocks": fit(blocks, VIEW_BLOCKS_MAX, budget=MODAL_BUDGET) or [context("Nothing to show.")],
    }


def price_details(run: RunRecord, plan: Plan) -> dict[str, Any]:
    return modal(f"Plan v{plan.version} · run #{run.number}", plan_message.price_blocks(run, plan))


def evaluation_spec(run: RunRecord, plan: Plan, spec: str | None) -> dict[str, Any]:
    blocks = evaluator_review(plan, spec=spec)
    if not blocks:
        blocks = [section(f"Run #{run.number} is judged by {escape(plan.evaluation.describe())}: there is no evaluator spec.")]
    return modal(f"Evaluation · run #{run.number}", blocks)


def compare_examples(run: RunRecord, comp: Comparison | None) -> dict[str, Any]:
    blocks = comparison_blocks(comp)
    if not blocks:
        blocks = [section(f"Run #{run.number} has no base-model answers to compare with.")]
    return modal(f"Base vs tuned · run #{run.number}", blocks)


def error_details(run: RunRecord) -> dict[str, Any]:
    """A failed run's error as the platform or the bot said it, whole (the thread has the summary)."""
    raw = run.error or "no error was recorded"
    return modal(f"Run #{run.number} failed", [section(code_block(raw))])


def unavailable(what: str) -> dict[str, Any]:
    return modal("Not available", [section(escape(what))])
