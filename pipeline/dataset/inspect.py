"""Stream a JSONL dataset once and report its shape, size and every problem by line.

Memory stays flat: the file is read in fixed binary blocks and nothing per line is kept
beyond a few example line numbers per problem kind.

Speed (see bench/README.md): each line is parsed by pydantic-core's Rust JSON parser
(``pydantic_core.from_json``; it ships with pydantic, and no model is validated) and a
clean chat row is checked with a few C-level ``map`` calls. Any other row, and any line
that parser refuses, takes the slow path: stdlib ``json`` and full checks, which is the
reference for what is valid and what each problem says. The Rust parser is never more
lenient than stdlib ``json`` (tests hold it to that), so the fast path only skips work and
never changes a verdict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from pydantic_core import from_json

from pipeline.dataset.convert import CONVERSIONS, flat_shape
from pipeline.dataset.report import Conversion, InspectionReport, Problem, ProblemGroup, Shape
from pipeline.dataset.split import line_blocks
from pipeline.dataset.tokens import TOKEN_METHOD, answer_text, content_chars, estimate_tokens
from pipeline.spec import MAX_SAMPLES, MIN_SAMPLES

ROLES = frozenset({"system", "user", "assistant"})

# kind -> (title, blocking). Blocking: the platform would refuse the upload, or the row
# trains on nothing. The platform validates the whole file and fails it as DATASET_INVALID
# on a single bad line (reference/fireworks.md §2.1), so one bad row blocks like a thousand.
KINDS: dict[str, tuple[str, bool]] = {
    "non_utf8": ("bytes that are not UTF-8", True),
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
    "bad_sample_weight": ("sample weight is not a number", True),
    "partial_sample_weight": ("no sample weight although other samples have one", True),
    "tool_calls_without_tools": ("tool_calls without a root `tools` list", True),
    # Not blocking: the plan can raise the context length and an over-long row is cut, not
    # refused; the count is an estimate as well, so this is a warning to look at.
    "over_context": ("longer than the context budget (estimated tokens)", False),
    "empty_file": ("the file has no samples", True),
    "too_few_examples": (f"fewer than {MIN_SAMPLES} examples, the platform minimum", True),
    "too_many_examples": (f"more than {MAX_SAMPLES:,} examples, the platform maximum", True),
}

_BLANK = b" \t\r"
_ROLE, _CONTENT = itemgetter("role"), itemgetter("content")


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


# Python's json takes NaN and Infinity; JSON (and the platform) does not.
_DECODE = json.JSONDecoder(parse_constant=_reject_constant).decode


def fast_row(obj: Any) -> tuple[list[str], int] | None:
    """(roles, content characters) of a clean chat row, or None: let the slow path decide.

    Clean: exactly {"messages": [{"role", "content": str}, ...]}, known roles, system only
    first, at least one assistant turn. The map calls run in C and raise on any other type.
    """
    if type(obj) is not dict or len(obj) != 1:
        return None
    msgs = obj.get("messages")
    if type(msgs) is not list or not msgs:
        return None
    try:
        if sum(map(dict.__len__, msgs)) != 2 * len(msgs):
            return None
        roles: list[str] = list(map(_ROLE, msgs))
        chars = sum(map(str.__len__, map(_CONTENT, msgs)))
        if not ROLES.issuperset(roles):
            return None
    except (TypeError, KeyError):
        return None
    if "assistant" not in roles or roles.count("system") > (roles[0] == "system"):
        return None
    return roles, chars


@dataclass
class _Row:
    """What one parsed row adds to the totals once the offered conversions are applied."""

    roles: dict[str, int] = field(default_factory=dict)
    chars: int = 0
    messages: int = 0
    conversions: list[str] = field(default_factory=list)


def check_row(obj: dict[str, Any], found: list[tuple[str, str]]) -> _Row | None:
    """Append (kind, message) for each problem of a parsed row; None if it has no shape."""
    if "messages" not in obj:
        return _check_flat(obj, found)
    msgs = obj["messages"]
    if not isinstance(msgs, list) or not msgs:
        kind = "empty_messages" if isinstance(msgs, list) else "messages_not_list"
        found.append((kind, f"`messages` is {_kind_of(msgs)}"))
        return None
    row = _Row(messages=len(msgs))
    assistant = trainable = 0
    has_tools = isinstance(obj.get("tools"), list)
    for i, m in enumerate(msgs, 1):
        if not isinstance(m, dict):
            found.append(("message_not_object", f"message {i} is {_kind_of(m)}"))
            continue
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
            found.append(("bad_content", f"message {i} content is {_kind_of(content)}"))
        if isinstance(reasoning, str):
            row.chars += len(reasoning)
        elif reasoning is not None:
            what = f"message {i} reasoning_content is {_kind_of(reasoning)}"
            found.append(("bad_content", what))
        weight = m.get("weight", 1)
        if isinstance(weight, bool) or weight not in (0, 1):
            found.append(("bad_message_weight", f"message {i} weight is {weight!r}"))
        if role == "assistant":
            assistant += 1
            trainable += weight != 0
        if m.get("tool_calls") and not has_tools:
            found.append(("tool_calls_without_tools", f"message {i} has tool_calls"))
    if "tool" in row.roles:
        row.conversions.append("tool_role")
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
    return row


def _check_flat(obj: dict[str, Any], found: list[tuple[str, str]]) -> _Row | None:
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
    return _Row({"user": 1, "assistant": 1}, len(question) + len(answer), 2, [kind])


def _kind_of(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"a number ({value!r})"
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _shape_of(obj: dict[str, Any]) -> Shape:
    if "messages" in obj:
        return Shape.CHAT
    flat = flat_shape(obj)
    if flat is None:
        return Shape.UNKNOWN
    return Shape.QUESTION_ANSWER if flat[1] == "question" else Shape.PROMPT_COMPLETION


@dataclass
class _Totals:
    """Running totals of one scan; the fast path adds to them in bulk, the slow path per row."""

    limit: int
    context_tokens: int
    nonblank: int = 0
    problems: dict[str, ProblemGroup] = field(default_factory=dict)
    roles: dict[str, int] = field(default_factory=dict)
    shapes: dict[Shape, int] = field(default_factory=dict)
    conversions: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    assistant: int = 0
    tokens: int = 0
    max_tokens: int = 0
    weighted: int = 0
    unweighted: int = 0
    unweighted_lines: list[int] = field(default_factory=list)

    def problem(self, kind: str, line: int, message: str) -> None:
        group = self.problems.get(kind)
        if group is None:
            title, blocking = KINDS[kind]
            group = ProblemGroup(kind=kind, title=title, blocking=blocking, count=0)
            self.problems[kind] = group
        group.count += 1
        if len(group.examples) < self.limit:
            group.examples.append(Problem(line=line, message=message))

    def add(self, line: int, roles: dict[str, int], chars: int, messages: int) -> None:
        self.samples += 1
        for role, n in roles.items():
            self.roles[role] = self.roles.get(role, 0) + n
        self.assistant += roles.get("assistant", 0)
        tokens = estimate_tokens(chars, messages)
        self.tokens += tokens
        self.max_tokens = max(self.max_tokens, tokens)
        if tokens > self.context_tokens:
            self.problem("over_context", line, f"~{tokens} tokens > {self.context_tokens}")

    def slow(self, line: int, raw: bytes) -> None:
        try:
            obj = _DECODE(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            where = f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
            self.problem("non_utf8", line, where)
            return
        except json.JSONDecodeError as exc:
            self.problem("invalid_json", line, f"{exc.msg} at column {exc.colno}")
            return
        except (ValueError, RecursionError) as exc:  # NaN, huge ints, absurd nesting
            self.problem("invalid_json", line, str(exc) or type(exc).__name__)
            return
        if not isinstance(obj, dict):
            self.problem("not_object", line, f"the line is {_kind_of(obj)}")
            return
        shape = _shape_of(obj)
        self.shapes[shape] = self.shapes.get(shape, 0) + 1
        if "weight" not in obj:
            self.unweighted += 1
            if len(self.unweighted_lines) < self.limit:
                self.unweighted_lines.append(line)
        else:
            self.weighted += 1
            w = obj["weight"]
            if isinstance(w, bool) or not isinstance(w, (int, float)):
                self.problem("bad_sample_weight", line, f"weight is {_kind_of(w)}")
        found: list[tuple[str, str]] = []
        row = check_row(obj, found)
        kinds = dict(found)  # one problem per kind per line, so counts are rows
        for kind, message in found:
            if kinds.pop(kind, None) is not None:
                self.problem(kind, line, message)
        if row is not None and not any(KINDS[kind][1] for kind, _ in found):
            for kind in row.conversions:
                self.conversions[kind] = self.conversions.get(kind, 0) + 1
            self.add(line, row.roles, row.chars, row.messages)


def _scan(path: Path, limit: int, context_tokens: int) -> _Totals:
    t = _Totals(limit=limit, context_tokens=context_tokens)
    # Fast-path rows are summed in locals: attribute updates per row cost more than the
    # row check itself.
    lineno = nonblank = clean = system = user = assistant = tokens = max_tokens = 0
    first_lines = t.unweighted_lines
    with path.open("rb") as f:
        for block in line_blocks(f):
            for raw in block.split(b"\n"):
                lineno += 1
                if raw[:1] != b"{" and not raw.strip(_BLANK):
                    continue  # blank lines are harmless and not counted
                nonblank += 1
                try:
                    fast = fast_row(from_json(raw, allow_inf_nan=False))
                except ValueError:
                    fast = None
                if fast is None:
                    t.slow(lineno, raw)
                    continue
                roles, chars = fast
                n, a, u = len(roles), roles.count("assistant"), roles.count("user")
                clean += 1
                assistant += a
                user += u
                system += n - a - u
                row_tokens = estimate_tokens(chars, n)
                tokens += row_tokens
                if row_tokens > max_tokens:
                    max_tokens = row_tokens
                if row_tokens > context_tokens:
                    t.problem("over_context", lineno, f"~{row_tokens} tokens > {context_tokens}")
                if len(first_lines) < limit:  # rows without a sample weight, for the report
                    first_lines.append(lineno)
    t.nonblank = nonblank
    t.samples += clean
    t.unweighted += clean
    t.assistant += assistant
    t.tokens += tokens
    t.max_tokens = max(t.max_tokens, max_tokens)
    t.shapes[Shape.CHAT] = t.shapes.get(Shape.CHAT, 0) + clean
    for role, count in (("system", system), ("user", user), ("assistant", assistant)):
        if count:
            t.roles[role] = t.roles.get(role, 0) + count
    return t


def inspect_dataset(
    path: str | Path, *, max_examples_per_kind: int = 5, context_tokens: int = 32768
) -> InspectionReport:
    """Read ``path`` once; report samples, roles, estimated tokens and problems by line."""
    p = Path(path)
    return _report(p, p.stat().st_size, _scan(p, max_examples_per_kind, context_tokens))


def _report(p: Path, size: int, t: _Totals) -> InspectionReport:
    def file_problem(kind: str, title: str, count: int = 1, lines: list[int] | None = None) -> None:
        examples = [Problem(line=n, message="no `weight`") for n in lines or []]
        t.problems[kind] = ProblemGroup(
            kind=kind, title=title, blocking=KINDS[kind][1], count=count, examples=examples
        )

    if t.weighted and t.unweighted:  # all or none, so the rows without one are the wrong ones
        title = KINDS["partial_sample_weight"][0]
        file_problem("partial_sample_weight", title, t.unweighted, t.unweighted_lines)
    known = [(n, s is Shape.CHAT, s) for s, n in t.shapes.items() if s is not Shape.UNKNOWN and n]
    shape = max(known)[2] if known else Shape.UNKNOWN  # most rows win; ties go to chat
    if t.nonblank == 0:
        shape = Shape.EMPTY
        file_problem("empty_file", KINDS["empty_file"][0])
    elif t.samples < MIN_SAMPLES:
        file_problem(
            "too_few_examples",
            f"fewer than {MIN_SAMPLES} examples ({t.samples} trainable; "
            f"the platform minimum is {MIN_SAMPLES})",
        )
    elif t.samples > MAX_SAMPLES:
        file_problem(
            "too_many_examples",
            f"more than {MAX_SAMPLES:,} examples ({t.samples:,}; the platform maximum)",
        )
    return InspectionReport(
        path=str(p),
        bytes=size,
        lines=t.nonblank,
        samples=t.samples,
        shape=shape,
        role_counts=dict(sorted(t.roles.items())),
        avg_turns=round(t.assistant / t.samples, 3) if t.samples else 0.0,
        tokens=t.tokens,
        token_method=TOKEN_METHOD,
        max_sample_tokens=t.max_tokens,
        problems=[t.problems[k] for k in KINDS if k in t.problems],
        conversions=[
            Conversion(kind=k, description=CONVERSIONS[k], rows=t.conversions[k])
            for k in CONVERSIONS
            if t.conversions.get(k)
        ],
    )
