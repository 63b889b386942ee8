"""Base model vs tuned at the promotion gate: the two scores, a verdict, three examples.

Proportional lines only (no fenced table): prompt / base / leader / expected each on their
own short line, clipped, so a 420 px phone wraps them like sentences. Answers are shown in
inline code only when short (SQL reads better that way), which Slack wraps too.
"""

from __future__ import annotations

from handlers.render.mrkdwn import Block, clip, code, context, escape, section
from pipeline.evaluation.compare import Comparison, Example

ANSWER_CHARS = 140  # per prompt / answer line: three examples stay one phone screen each


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _one_line(text: str | None, limit: int = ANSWER_CHARS) -> str:
    if text is None:
        return "_(no answer: the request failed)_"
    flat = " ".join(text.split())
    return code(clip(flat, limit)) if flat else "_(empty)_"


def _prompt(text: str, limit: int = ANSWER_CHARS) -> str:
    """Its start and its end: a long prompt's question comes last (after a schema, a document)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return escape(flat)
    head = limit // 3
    return escape(flat[:head].rstrip()) + " … " + escape(flat[-(limit - head - 3) :].lstrip())


def verdict(comp: Comparison, *, who: str = "The leader") -> str:
    """One sentence: identical or not better (⚠️), better (✅), or why it cannot be told."""
    if comp.identical:
        return (
            f"⚠️ {who} answers exactly like the base model on every prompt: its adapter was probably not loaded. "
            "Deploy stops and asks an approver first."
        )
    if comp.beats_base is False:
        return f"⚠️ {who} does not beat the base model: fine-tuning may not have helped."
    if comp.beats_base:
        return f"✅ {who} beats the base model."
    return f"Base vs tuned cannot be scored: {escape(comp.base.note or 'no evaluator score')}."


def headline(comp: Comparison) -> str:
    if comp.base.score is None and comp.base.val_loss is not None:  # a run judged by validation loss
        gap = f" ({comp.tuned_val_loss - comp.base.val_loss:+.4f})" if comp.tuned_val_loss is not None else ""
        tuned = f"{comp.tuned_val_loss:.4f}" if comp.tuned_val_loss is not None else "n/a"
        return (
            "*Base vs leader* on the held-out set (validation loss, lower is better)\n"
            f"Base {code(comp.base.base_model)}: val loss *{comp.base.val_loss:.4f}*\n"
            f"Leader {escape(comp.tuned.split(' ', 1)[0])}: val loss *{tuned}*{gap}\n"
            f"{verdict(comp)}"
        )
    gap = ""
    if comp.base.score is not None and comp.tuned_score is not None:
        gap = f" ({comp.tuned_score - comp.base.score:+.3f})"
    return (
        f"*Base vs leader* on {len(comp.rows)} held-out prompts\n"
        f"Base {code(comp.base.base_model)}: score *{_score(comp.base.score)}*\n"
        f"Leader {escape(comp.tuned.split(' ', 1)[0])}: score *{_score(comp.tuned_score)}*{gap}\n"
        f"{verdict(comp)}"
    )


def example(n: int, ex: Example) -> str:
    scores = ""
    if ex.base_score is not None or ex.tuned_score is not None:
        scores = f" · base {_score(ex.base_score)} → leader {_score(ex.tuned_score)}"
    return "\n".join(
        [
            f"*Example {n}* (row {ex.index}){scores}",
            f"*Prompt:* {_prompt(ex.prompt)}",
            f"*Base:* {_one_line(ex.base)}",
            f"*Leader:* {_one_line(ex.tuned)}",
            f"*Expected:* {_one_line(ex.expected)}",
        ]
    )


def comparison_blocks(comp: Comparison | None) -> list[Block]:
    """The gate's base-vs-leader part; nothing when the base was not scored."""
    if comp is None:
        return []
    blocks = [section(headline(comp))]
    blocks += [section(example(i + 1, ex)) for i, ex in enumerate(comp.examples)]
    if comp.examples:
        blocks.append(context("Rows where base and leader differ most; every row is in the final report."))
    return blocks
