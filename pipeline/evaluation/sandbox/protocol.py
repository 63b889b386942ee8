"""The parent's side of the sandbox protocol: every line from the child is untrusted data.

The child answers in JSON lines: ``{"t": "ready"}`` or ``{"t": "fatal", "error": ...}``, then
one ``{"t": "result", "index", "score", "reason", "error"}`` per example. The evaluator runs
in the child's process, so it can write anything to that channel: a line of 100,000 ``[``, a
forged ready line, megabytes without a newline. Each line is decoded by msgspec straight
into one of the three exact shapes below (unknown keys, wrong types and a score outside
[0, 1] are refused while decoding, and a typed decode has no recursion to blow), and
anything else is ``None``: a protocol violation, which costs the example, never the bot.
Text from the child is cut to the batch's limit here, whatever the child already cut.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from pipeline.evaluation.eval_types import ExampleScore

# Longest line read from the child. A result is a score and two texts capped at a few
# thousand characters; a longer line is a violation, and the reader never buffers more.
LINE_LIMIT = 1 << 20


class Ready(msgspec.Struct, tag_field="t", tag="ready", forbid_unknown_fields=True):
    """The evaluator file loaded; results follow."""


class LoadFailed(msgspec.Struct, tag_field="t", tag="fatal", forbid_unknown_fields=True):
    """The evaluator file did not load (``error`` says why); nothing follows."""

    error: str


class Result(msgspec.Struct, tag_field="t", tag="result", forbid_unknown_fields=True):
    index: int
    score: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None
    reason: str
    error: str | None


Message = Ready | LoadFailed | Result
_decoder = msgspec.json.Decoder(Message)


def decode(line: bytes) -> Message | None:
    """The child's message on ``line``, or None when it is not exactly one of the protocol's."""
    try:
        return _decoder.decode(line)
    except msgspec.DecodeError:  # malformed JSON and every shape or type mismatch
        return None


def clip(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[: max(cap - 1, 0)] + "…"


def scored(msg: Message | None, index: int, cap: int) -> ExampleScore | None:
    """The score of example ``index`` from ``msg``, or None when ``msg`` is not its result."""
    if not isinstance(msg, Result) or msg.index != index:
        return None
    if msg.error is not None:
        return ExampleScore(index=index, score=None, error=clip(msg.error, cap))
    if msg.score is None:
        return None
    return ExampleScore(index=index, score=msg.score, reason=clip(msg.reason, cap))


class Capture:
    """The evaluator's prints: the head and the tail, at most ``cap`` characters in all."""

    def __init__(self, cap: int) -> None:
        self.half, self.head, self.tail, self.dropped = cap // 2, b"", b"", 0

    def add(self, chunk: bytes) -> None:
        room = self.half - len(self.head)
        self.head, chunk = self.head + chunk[:room], chunk[max(room, 0) :]
        joined = self.tail + chunk
        self.dropped += max(0, len(joined) - self.half)
        self.tail = joined[-self.half :] if self.half else b""

    def text(self) -> str:
        mid = f"\n[... {self.dropped} bytes dropped ...]\n" if self.dropped else ""
        return (self.head + (mid.encode() if mid else b"") + self.tail).decode(errors="replace")
