"""Which bases get reasoning_effort="none" for their held-out answers (pipeline/evaluation/prompts.py)."""

from __future__ import annotations

import pytest

from pipeline.evaluation.prompts import reasoning_effort

ROWS = [{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}]


@pytest.mark.parametrize(
    ("base", "effort"),
    [
        ("accounts/fireworks/models/qwen3-8b", "none"),
        ("accounts/fireworks/models/qwen3-4b-instruct-2507", None),  # the non-thinking release
        ("accounts/fireworks/models/glm-4p7", "none"),
        ("accounts/fireworks/models/glm-5p1", "none"),  # GLM 5: "none", "high", "max"
        ("accounts/fireworks/models/glm-5p2-fp8", "none"),
        ("accounts/fireworks/models/deepseek-v4-pro", "none"),
        ("accounts/fireworks/models/kimi-k2p6", None),  # Kimi K2: low/medium/high only
        ("accounts/fireworks/models/gpt-oss-120b", None),  # refuses "none"
        ("llama-v3p1-8b-instruct", None),
    ],
)
def test_thinking_bases_get_none_unless_the_data_trains_reasoning(base: str, effort: str | None) -> None:
    assert reasoning_effort(base, ROWS) == effort


def test_data_that_trains_reasoning_keeps_the_thinking() -> None:
    rows = [{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<think>add</think>4"}]}]
    assert reasoning_effort("accounts/fireworks/models/glm-5p1", rows) is None
