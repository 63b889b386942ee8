"""Small pure helpers around evaluator scores (shared by the engine, reports and generation)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pipeline.evaluation.eval_types import EvalRun, ExampleScore

_BLOCK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.DOTALL | re.IGNORECASE)
_CLOSE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
_OPEN = re.compile(r"<think(?:ing)?>", re.IGNORECASE)


def strip_thinking(text: str) -> str:
    """The answer without a reasoning model's ``<think>…</think>`` blocks.

    Two unclosed shapes occur in practice: chat templates that open ``<think>`` in the prompt,
    so the completion starts mid-thought and only has the closing tag (everything before it
    is reasoning); and an output cut off while still thinking (everything after the opening
    tag is reasoning, so no answer was given).
    """
    text = _BLOCK.sub("", text)
    closing = list(_CLOSE.finditer(text))
    if closing:
        text = text[closing[-1].end() :]
    opening = _OPEN.search(text)
    if opening:
        text = text[: opening.start()]
    return text.strip()


def worst_examples(run: EvalRun, n: int) -> list[ExampleScore]:
    """The ``n`` examples to show a person first: errors, then the lowest scores (stable)."""
    ranked = sorted(run.scores, key=lambda s: (s.error is None, s.score if s.score is not None else -1.0, s.index))
    return ranked[: max(n, 0)]


def with_failures(run: EvalRun, failures: Mapping[int, str]) -> EvalRun:
    """The run with examples that got no answer added as errors: each counts as score 0 in the
    mean (as an errored example does), and the error is kept for the report."""
    if not failures:
        return run
    missing = [ExampleScore(index=i, score=None, error=f"example {i}: no answer ({err})") for i, err in failures.items()]
    scores = sorted([*run.scores, *missing], key=lambda s: s.index)
    scored = [s.score for s in scores if s.score is not None]
    mean = sum(scored) / len(scores) if scored and run.fatal is None else None
    return run.model_copy(update={"scores": scores, "errors": run.errors + len(missing), "mean": mean})
