"""Token estimates without a tokenizer, and the text a message contributes.

The plan needs a token count for cost before any model is chosen, so a tokenizer would be
the wrong one half the time and a heavy dependency all the time. Four characters per
token is the usual rule of thumb for English under BPE tokenizers (code and non-Latin
scripts run denser, so the estimate errs low there); four more per message covers the
role markers and separators a chat template adds.
"""

from __future__ import annotations

import math
from itertools import repeat
from operator import floordiv, mul, neg, sub

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKEN_METHOD = f"estimate: ~{CHARS_PER_TOKEN} characters of content per token + {TOKENS_PER_MESSAGE} per message (no tokenizer)"


def estimate_tokens(chars: int, messages: int) -> int:
    """Estimated tokens of one sample with ``chars`` content characters in ``messages`` turns."""
    # Round up so that a short non-empty turn never counts as zero tokens.
    return -(-chars // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * messages


def estimate_tokens_many(chars: list[int], messages: list[int]) -> list[int]:
    """``estimate_tokens`` of each sample, pairwise; same numbers, computed in C-level maps
    (the inspector sums whole blocks of rows this way)."""
    per_message = map(mul, messages, repeat(TOKENS_PER_MESSAGE))
    return list(map(sub, per_message, map(floordiv, map(neg, chars), repeat(CHARS_PER_TOKEN))))


def content_chars(content: object) -> int | None:
    """Characters of a message ``content``; None when it is neither form the platform takes.

    The platform takes a string or a list of ``{"type": "text", "text": ...}`` parts
    (concatenated), so anything else cannot be rendered.
    """
    if isinstance(content, str):
        return len(content)
    if not isinstance(content, list):
        return None
    total = 0
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text":
            return None
        text = part.get("text")
        if not isinstance(text, str):
            return None
        total += len(text)
    return total


def content_text(content: object) -> str | None:
    """The text of a message ``content`` (parts joined), or None if it is not text."""
    if isinstance(content, str):
        return content
    if content_chars(content) is None:
        return None
    assert isinstance(content, list)
    return "".join(str(part["text"]) for part in content)


def answer_text(value: object) -> str | None:
    """An answer/ground-truth value as assistant text; None when it is not a scalar.

    Numbers are common (GSM8K answers are ints) and print unambiguously; booleans, null
    and nested objects have no single obvious text, so those rows are not converted.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):  # 1e400 parses as inf
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return str(value)
