"""One row of a JSONL dataset: decode it (fast typed path or stdlib reference path), check it,
and name every problem it has. ``inspect.py`` runs these over a whole file."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, Literal

import msgspec

from pipeline.dataset.convert import alpaca_messages, alpaca_pair, flat_shape, is_alpaca, sharegpt_messages
from pipeline.dataset.inspection import Shape
from pipeline.dataset.tokens import answer_text, content_chars
from pipeline.domain.limits import MAX_SAMPLES, MIN_SAMPLES

ROLES = frozenset({"system", "user", "assistant"})

# kind -> (title, blocking). Blocking: the platform would refuse the upload, or the row
# trains on nothing. The platform validates the whole file and fails it as DATASET_INVALID
# on a single bad line (reference/fireworks.md §2.1), so one bad row blocks like a thousand.
KINDS: dict[str, tuple[str, bool]] = {
    "non_utf8": ("bytes that are not UTF-8", True),
    "lone_surrogate": ("an unpaired \\ud800-\\udfff escape, which is not valid Unicode", True),
    "line_too_long": ("a line longer than the bot reads (a file that is not JSONL?)", True),
    "invalid_json": ("invalid JSON", True),
    "not_object": ("line is not a JSON object", True),
    "missing_messages": ("no `messages` and not a convertible shape", True),
    "messages_not_list": ("`messages` is not a list", True),
    "empty_messages": ("`messages` is empty", True),
    "message_not_object": ("a message is not an object", True),
    "unknown_role": ("role is not system, user or assistant", True),
    "system_not_first": ("system message is not the first message", True),
    "bad_content": ("content is neither a string nor a list of text parts", True),
    "bad_message_weight": ("message weight is not 0 or 1", True),
    "no_assistant": ("no assistant turn to train on", True),
    "bad_sample_weight": ("sample weight is not a finite number", True),
    "partial_sample_weight": ("no sample weight although other samples have one", True),
    "tool_calls_without_tools": ("tool_calls without a root `tools` list", True),
    # Not blocking: the plan can raise the context length and an over-long row is cut, not
    # refused; the count is an estimate as well, so this is a warning to look at.
    "over_context": ("longer than the context budget (estimated tokens)", False),
    "empty_file": ("the file has no samples", True),
    "too_few_examples": (f"fewer than {MIN_SAMPLES} examples, the platform minimum", True),
    "too_many_examples": (f"more than {MAX_SAMPLES:,} examples, the platform maximum", True),
}


def reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


# Python's json takes NaN and Infinity; JSON (and the platform) does not.
DECODE = json.JSONDecoder(parse_constant=reject_constant).decode


# The clean chat row as the fast path decodes it. Every struct forbids unknown fields:
# msgspec skips an unknown field's value without checking its UTF-8, and any other field
# (tools, tool_calls, reasoning_content, a sample weight...) is the slow path's to judge.
# gc=False: these structs hold no cycles, so the collector need not track them.
class Part(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    type: Literal["text"]
    text: str


class ChatMessageRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    role: Literal["system", "user", "assistant"]
    content: str | list[Part]
    weight: Literal[0, 1] = 1  # JSON ints only: 1.0 and true go to the slow path


class ChatRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    messages: list[ChatMessageRow]


CHAT = msgspec.json.Decoder(ChatRow)
MESSAGES, ROLE, CONTENT = attrgetter("messages"), attrgetter("role"), attrgetter("content")
WEIGHT, TEXT = attrgetter("weight"), attrgetter("text")
FIRST, LAST = itemgetter(0), itemgetter(-1)


def text_chars(content: str | list[Part]) -> int:
    return len(content) if type(content) is str else sum(map(len, map(TEXT, content)))


def row_stats(row: ChatRow) -> tuple[int, int, int, int] | None:
    """(messages, assistant, system, content characters) of a clean decoded row, or None:
    let the slow path decide.

    The struct already holds the types; clean also means at least one message, system only
    first, and an assistant turn that trains (weight 1).
    """
    msgs = row.messages
    if not msgs:
        return None
    roles: list[str] = list(map(ROLE, msgs))
    assistant, system = roles.count("assistant"), roles.count("system")
    if system and (system > 1 or roles[0] != "system"):
        return None
    if 0 in map(WEIGHT, msgs):
        if 1 not in (m.weight for m in msgs if m.role == "assistant"):
            return None
    elif not assistant:
        return None
    return len(msgs), assistant, system, sum(map(text_chars, map(CONTENT, msgs)))


@dataclass
class Row:
    """What one parsed row adds to the totals once the offered conversions are applied."""

    roles: dict[str, int] = field(default_factory=dict)
    chars: int = 0
    messages: int = 0
    conversions: list[str] = field(default_factory=list)


def check_row(obj: dict[str, Any], found: list[tuple[str, str]]) -> Row | None:
    """Append (kind, message) for each problem of a parsed row; None if it has no shape."""
    if "messages" not in obj:
        return check_flat(obj, found)
    msgs = obj["messages"]
    if not isinstance(msgs, list) or not msgs:
        kind = "empty_messages" if isinstance(msgs, list) else "messages_not_list"
        found.append((kind, f"`messages` is {kind_of(msgs)}"))
        return None
    row = Row(messages=len(msgs))
    assistant = trainable = 0
    has_tools = isinstance(obj.get("tools"), list)
    for i, m in enumerate(msgs, 1):
        if not isinstance(m, dict):
            found.append(("message_not_object", f"message {i} is {kind_of(m)}"))
            continue
        weight = _check_message(i, m, row, found, has_tools=has_tools)
        if m.get("role") == "assistant":
            assistant += 1
            trainable += weight != 0
    if "tool" in row.roles:
        row.conversions.append("tool_role")
    _check_trains(obj, row, found, assistant=assistant, trainable=trainable)
    return row


def _check_message(i: int, m: dict[str, Any], row: Row, found: list[tuple[str, str]], *, has_tools: bool) -> object:
    """Add message ``i`` to ``row`` and append its problems; its weight. (The slow path calls
    this once per message: one function, not one per check.)"""
    role = m.get("role")
    if isinstance(role, str) and (role in ROLES or role == "tool"):  # tool: a conversion
        row.roles[role] = row.roles.get(role, 0) + 1
    else:
        found.append(("unknown_role", f"message {i} has role {role!r}"))
    if role == "system" and i > 1:
        found.append(("system_not_first", f"message {i} is a system message"))
    content, reasoning = m.get("content"), m.get("reasoning_content")
    n = content_chars(content)
    if n is not None:
        row.chars += n
    elif not (content is None and role == "assistant" and m.get("tool_calls")):
        found.append(("bad_content", f"message {i} content is {kind_of(content)}"))
    if isinstance(reasoning, str):
        row.chars += len(reasoning)
    elif reasoning is not None:
        found.append(("bad_content", f"message {i} reasoning_content is {kind_of(reasoning)}"))
    weight = m.get("weight", 1)
    if isinstance(weight, bool) or weight not in (0, 1):
        found.append(("bad_message_weight", f"message {i} weight is {weight!r}"))
    if m.get("tool_calls") and not has_tools:
        found.append(("tool_calls_without_tools", f"message {i} has tool_calls"))
    return weight


def _check_trains(obj: dict[str, Any], row: Row, found: list[tuple[str, str]], *, assistant: int, trainable: int) -> None:
    """A row must train on something: an assistant turn of weight 1, or a ground truth to append as one."""
    if assistant == 0:
        truth = answer_text(obj.get("ground_truth", obj.get("answer")))
        if truth is None:
            found.append(("no_assistant", "no assistant message"))
        else:  # the offered conversion appends it as the assistant turn
            row.conversions.append("ground_truth_to_assistant")
            row.roles["assistant"] = 1
            row.chars += len(truth)
            row.messages += 1
    elif trainable == 0:
        found.append(("no_assistant", "every assistant message has weight 0"))


def check_flat(obj: dict[str, Any], found: list[tuple[str, str]]) -> Row | None:
    if "conversations" in obj:
        return check_sharegpt(obj, found)
    if is_alpaca(obj):
        return check_alpaca(obj, found)
    flat = flat_shape(obj)
    if flat is None:
        keys = ", ".join(list(obj)[:5]) or "none"
        found.append(("missing_messages", f"no `messages` (keys: {keys})"))
        return None
    kind, q_key, a_key = flat
    question, answer = obj[q_key], answer_text(obj[a_key])
    if not isinstance(question, str) or answer is None:
        found.append(("missing_messages", f"`{q_key}`/`{a_key}` are not text"))
        return None
    return Row({"user": 1, "assistant": 1}, len(question) + len(answer), 2, [kind])


_MESSAGE_N = re.compile(r"^message (\d+)")


def check_sharegpt(obj: dict[str, Any], found: list[tuple[str, str]]) -> Row | None:
    """A ShareGPT row is checked as the chat row its conversion makes; problems name its own
    fields (``conversations`` turn N, ``from``) so the person finds them in the file."""
    messages = sharegpt_messages(obj)
    if not messages:
        what = "empty" if messages is not None else kind_of(obj["conversations"])
        found.append(("empty_messages" if messages is not None else "messages_not_list", f"`conversations` is {what}"))
        return None
    offset = 1 if len(messages) > len(obj["conversations"]) else 0  # a `system` field leads as message 1
    mark = len(found)
    chat = {k: v for k, v in obj.items() if k not in ("conversations", "system")}
    row = check_row({**chat, "messages": messages}, found)

    def turn(m: re.Match[str]) -> str:
        n = int(m.group(1)) - offset
        return f"conversations turn {n}" if n > 0 else "`system`"

    for i in range(mark, len(found)):
        kind, message = found[i]
        found[i] = (kind, _MESSAGE_N.sub(turn, message).replace(" has role ", " has from "))
    if row is not None:
        row.conversions.insert(0, "sharegpt_to_chat")
    return row


def check_alpaca(obj: dict[str, Any], found: list[tuple[str, str]]) -> Row | None:
    messages = alpaca_messages(obj)
    if messages is None:
        found.append(("bad_content", _alpaca_problem(obj)))
        return None
    roles: dict[str, int] = {}
    for m in messages:
        roles[m["role"]] = roles.get(m["role"], 0) + 1
    return Row(roles, sum(len(m["content"]) for m in messages), len(messages), ["alpaca_to_chat"])


def _alpaca_problem(obj: dict[str, Any]) -> str:
    """Which part of an Alpaca row is not text (``alpaca_messages`` refused it)."""
    instruction, given, output = obj.get("instruction"), obj.get("input"), obj.get("output")
    if not isinstance(instruction, str):
        return f"`instruction` is {kind_of(instruction)}"
    if given is not None and not isinstance(given, str):
        return f"`input` is {kind_of(given)}"
    if answer_text(output) is None:
        return f"`output` is {kind_of(output)}"
    history = obj.get("history") or []
    if not isinstance(history, list):
        return f"`history` is {kind_of(history)}, not a list of [question, answer] pairs"
    bad = next((i for i, h in enumerate(history, 1) if not alpaca_pair(h)), 0)
    return f"`history` item {bad} is not a [question, answer] pair of texts"


def kind_of(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"a number ({value!r})"
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def shape_of(obj: dict[str, Any]) -> Shape:
    if "messages" in obj:
        return Shape.CHAT
    if "conversations" in obj:
        return Shape.SHAREGPT
    if is_alpaca(obj):
        return Shape.ALPACA
    flat = flat_shape(obj)
    if flat is None:
        return Shape.UNKNOWN
    return Shape.QUESTION_ANSWER if flat[1] == "question" else Shape.PROMPT_COMPLETION


def has_lone_surrogate(value: object) -> bool:
    """True when a string anywhere in a decoded row holds half a UTF-16 pair.

    Python's json accepts ``"\\ud800"`` and gives a str that cannot be written out as UTF-8,
    so the conversion or the upload would crash on it later; msgspec refuses it outright.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
