"""Every parsing rule takes time linear in its input, on 100k-character adversarial text.

A rule whose match can fail after scanning far (a long list of numbers without the word
that must follow it) is retried from every position: quadratic, and a pasted wall of text
then held the event loop for seconds. Each rule is run alone on inputs made of repeated
pieces that feed its loops; a linear rule takes about 4x as long on 4x the text. The ratio
is measured against the same rule on the shorter text in the same run (never a fixed time),
and a rule that is fast outright on 100k characters needs no ratio.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers import commands
from pipeline.domain.instructions import _COMPILED, _KV, parse_instruction

# Pieces that feed the rules' repeated parts: number lists, paths, model names, the words
# between them. Mixed pieces come from hypothesis.
PIECES = [
    "1, ", "1e-4 and ", "0.1/", "16 ", "3k samples ", "1:1e-4,", "up to 4 ", "a/", "./", "x.jsonl ",
    "accounts/a/", "qwen3 8b ", "llama-v3p1-", "use the ", "base model ", "lr rank ", "held-out ", "'a", "a=b ", " ",
    "how is ", "which ", "<@", "cancel ", "audit of ",
]  # fmt: skip
SHORT, LONG = 25_000, 100_000
FAST = 0.3  # seconds: linear rules take ~0.05 s on 100k characters; a quadratic one takes minutes


def _time(rx: re.Pattern[str], text: str, reps: int = 3) -> float:
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        rx.sub(lambda m: m.group(0), text)
        best = min(best, time.perf_counter() - start)
    return best


def _linear(rx: re.Pattern[str], piece: str) -> tuple[bool, float]:
    """(linear?, growth ratio): first on 2k vs 8k characters, so a quadratic rule fails in
    seconds rather than running for minutes on 100k; then on the full 100k."""
    small = _time(rx, piece * (2_000 // len(piece)))
    ratio = _time(rx, piece * (8_000 // len(piece))) / max(small, 1e-6)
    if small > 1e-3 and ratio > 10:
        return False, ratio
    long = _time(rx, piece * (LONG // len(piece)), reps=1)
    if long < FAST:
        return True, 0.0
    ratio = long / max(_time(rx, piece * (SHORT // len(piece))), 1e-6)
    return ratio < 10, ratio


# The instruction rules, and the patterns that route a mention or DM before them.
RULES = [
    *(rx for rx, _ in _COMPILED),
    _KV,
    *(v for k, v in vars(commands).items() if k.startswith("_M") and isinstance(v, re.Pattern)),
]


@pytest.mark.parametrize("piece", PIECES, ids=[repr(p) for p in PIECES])
def test_each_rule_is_linear_on_repeated_text(piece: str) -> None:
    slow = {}
    for rx in RULES:
        ok, ratio = _linear(rx, piece)
        if not ok:
            slow[rx.pattern[:60]] = round(ratio, 1)
    assert slow == {}


@settings(max_examples=6, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=2, max_size=4).map("".join))
def test_each_rule_is_linear_on_mixed_text(piece: str) -> None:
    slow = [rx.pattern[:60] for rx in RULES if not _linear(rx, piece)[0]]
    assert slow == []


def test_the_whole_parser_on_a_long_pasted_list() -> None:
    text = "run sft on x.jsonl with qwen3-8b " + "1e-4, " * (LONG // 6)
    start = time.perf_counter()
    with pytest.raises(ValueError):
        parse_instruction(text)  # not an instruction anyone means; it must just not hang
    long = time.perf_counter() - start
    start = time.perf_counter()
    with pytest.raises(ValueError):
        parse_instruction("run sft on x.jsonl with qwen3-8b " + "1e-4, " * (SHORT // 6))
    assert long < FAST * 10 or long / (time.perf_counter() - start) < 10
