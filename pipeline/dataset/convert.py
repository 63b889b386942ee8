"""Rewrite a dataset into the platform's chat format, streaming, into a new file.

The original is never touched: the user's file stays the source of truth and the bot can
always show what it changed. Output is deterministic (same input, same bytes) so a
re-run of a plan uploads an identical dataset and caching by content hash works.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.dataset.tokens import answer_text, content_text
from pipeline.domain.fsio import atomic_output

# kind -> what it does, in the words the plan shows the user.
CONVERSIONS: dict[str, str] = {
    "question_answer_to_chat": (
        "each {question, answer} row becomes a user turn and an assistant turn; "
        "the answer is also kept as `ground_truth` for evaluators"
    ),
    "prompt_completion_to_chat": (
        "each {prompt, completion} row becomes a user turn and an assistant turn; the completion is also kept as `ground_truth`"
    ),
    "ground_truth_to_assistant": (
        "chat rows with no assistant turn get their `ground_truth` (or `answer`) as the "
        "assistant turn; `ground_truth` stays on the row for evaluators"
    ),
    "sharegpt_to_chat": (
        "each ShareGPT `conversations` row becomes `messages`: `from` human/user -> user, gpt/assistant -> assistant, "
        "system -> system, observation/tool -> a tool result; `value` becomes `content`; a row's `system` leads"
    ),
    "alpaca_to_chat": (
        "each Alpaca {instruction, input, output} row becomes a user turn (the instruction, then the input) and an "
        "assistant turn (the output, also kept as `ground_truth`); `system` and `history` pairs become turns before them"
    ),
    "tool_role": (
        "`tool` messages become user messages starting 'Tool result:' (the platform only "
        "takes system/user/assistant; the model still sees the result but is not trained on it)"
    ),
}
# Whole-row shapes that become chat: (conversion kind, prompt key, answer key).
FLAT_SHAPES = (
    ("question_answer_to_chat", "question", "answer"),
    ("prompt_completion_to_chat", "prompt", "completion"),
)
# ShareGPT's speaker tags -> chat roles. The tags are those of the ShareGPT dumps (human, gpt),
# axolotl's sharegpt loader (also user/assistant/system/tool) and LLaMA-Factory's data format
# (observation for a tool's result). Others (function_call, ...) have no chat role here and
# are reported by line as an unknown role.
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
    "observation": "tool",
    "tool": "tool",
}
_MAX_EXAMPLES = 5


@dataclass
class ConvertResult:
    """What a conversion wrote; skipped lines could not be parsed into a JSON object."""

    src: str
    dst: str
    rows_written: int = 0
    rows_skipped: int = 0
    skipped_lines: list[int] = field(default_factory=list)  # first few, 1-based
    converted: dict[str, int] = field(default_factory=dict)  # conversion kind -> rows


def convert_dataset(src: str | Path, dst: str | Path, conversions: list[str] | None = None) -> ConvertResult:
    """Write ``dst`` with ``conversions`` (default: all) applied to each row of ``src``.

    Rows a conversion does not apply to are written unchanged (re-serialised); blank lines
    are dropped; lines that are not a JSON object are skipped and reported.
    """
    kinds = list(CONVERSIONS) if conversions is None else conversions
    unknown = [k for k in kinds if k not in CONVERSIONS]
    if unknown:
        raise ValueError(f"unknown conversion(s) {unknown}; known: {sorted(CONVERSIONS)}")
    src_p, dst_p = Path(src), Path(dst)
    if src_p.resolve() == dst_p.resolve():
        raise ValueError("convert_dataset writes a new file; dst must differ from src")
    enabled = frozenset(kinds)
    result = ConvertResult(src=str(src_p), dst=str(dst_p))
    # Write beside dst and rename, so a crash never leaves a half file that looks complete.
    with atomic_output(dst_p) as tmp, src_p.open("rb") as fin, tmp.open("wb") as fout:
        for lineno, raw in enumerate(fin, 1):
            if not raw.strip(b" \t\r\n"):
                continue
            try:
                row = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
                applied = convert_row(row, enabled) if isinstance(row, dict) else None
                # ensure_ascii=False keeps text readable and the file small (the platform
                # reads UTF-8); key order is the row's own, so output is a function of input.
                # allow_nan=False: 1e400 parses as inf, which JSON cannot carry back out.
                line = json.dumps(row, ensure_ascii=False, allow_nan=False)
            except (ValueError, RecursionError):
                applied = None
            if applied is None:
                result.rows_skipped += 1
                if len(result.skipped_lines) < _MAX_EXAMPLES:
                    result.skipped_lines.append(lineno)
                continue
            for kind in applied:
                result.converted[kind] = result.converted.get(kind, 0) + 1
            fout.write(line.encode("utf-8") + b"\n")
            result.rows_written += 1
    return result


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def convert_row(row: dict[str, Any], enabled: frozenset[str]) -> list[str]:
    """Apply the ``enabled`` conversions to ``row`` in place; return the kinds applied."""
    applied = _to_messages(row, enabled)
    messages = row.get("messages")
    if not isinstance(messages, list):
        return applied
    if "tool_role" in enabled and any(_is_tool(m) for m in messages):
        row["messages"] = messages = _rewrite_tools(messages)
        applied.append("tool_role")
    if "ground_truth_to_assistant" in enabled and not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        truth = answer_text(row.get("ground_truth", row.get("answer")))
        if truth is not None:
            messages.append({"role": "assistant", "content": truth})
            row.setdefault("ground_truth", truth)
            applied.append("ground_truth_to_assistant")
    return applied


def _to_messages(row: dict[str, Any], enabled: frozenset[str]) -> list[str]:
    """A row of another whole-row shape rewritten as chat ``messages`` in place: the kind applied."""
    if "messages" in row:
        return []
    if "conversations" in row:
        return ["sharegpt_to_chat"] if "sharegpt_to_chat" in enabled and sharegpt_to_chat(row) else []
    if is_alpaca(row):
        return ["alpaca_to_chat"] if "alpaca_to_chat" in enabled and alpaca_to_chat(row) else []
    flat = flat_shape(row)
    if flat is None or flat[0] not in enabled:
        return []
    kind, q_key, a_key = flat
    question, answer = row[q_key], answer_text(row[a_key])
    if not isinstance(question, str) or answer is None:
        return []
    _flat_to_chat(row, q_key, a_key, question, answer)
    return [kind]


def flat_shape(row: dict[str, Any]) -> tuple[str, str, str] | None:
    """(conversion kind, prompt key, answer key) of a row without ``messages``, if any."""
    for kind, q_key, a_key in FLAT_SHAPES:
        if q_key in row and a_key in row:
            return kind, q_key, a_key
    return None


def is_alpaca(row: dict[str, Any]) -> bool:
    return "instruction" in row and "output" in row


def sharegpt_messages(row: dict[str, Any]) -> list[Any] | None:
    """The chat messages of a ShareGPT row (``conversations`` of ``{from, value}``), or None when
    ``conversations`` is not a list. A turn that is not an object is kept as it is, and an
    unknown ``from`` becomes the role as written, so the row's checks name them by turn."""
    turns = row.get("conversations")
    if not isinstance(turns, list):
        return None
    system = row.get("system")
    out: list[Any] = [{"role": "system", "content": system}] if isinstance(system, str) and system else []
    for turn in turns:
        if isinstance(turn, dict):
            who = turn.get("from")
            out.append({"role": SHAREGPT_ROLES.get(who, who) if isinstance(who, str) else who, "content": turn.get("value")})
        else:
            out.append(turn)
    return out


def sharegpt_to_chat(row: dict[str, Any]) -> bool:
    messages = sharegpt_messages(row)
    if messages is None:
        return False
    rest = {k: v for k, v in row.items() if k not in ("conversations", "system")}
    row.clear()
    row["messages"] = messages
    row.update(rest)
    return True


def alpaca_messages(row: dict[str, Any]) -> list[dict[str, str]] | None:
    """The chat turns of an Alpaca row, or None when a part is not text (the checks say which).

    ``history`` is LLaMA-Factory's earlier turns as [question, answer] pairs; the instruction
    and the input are joined by a blank line, as the Alpaca prompt template separates them."""
    instruction, given, output = row.get("instruction"), row.get("input", ""), answer_text(row.get("output"))
    if not isinstance(instruction, str) or not isinstance(given, (str, type(None))) or output is None:
        return None
    system, history = row.get("system"), row.get("history") or []
    if not isinstance(history, list) or not all(alpaca_pair(h) for h in history):
        return None
    out = [{"role": "system", "content": system}] if isinstance(system, str) and system else []
    for question, answer in history:
        out += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    prompt = f"{instruction}\n\n{given}" if given else instruction
    return [*out, {"role": "user", "content": prompt}, {"role": "assistant", "content": output}]


def alpaca_pair(item: object) -> bool:
    return isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)


def alpaca_to_chat(row: dict[str, Any]) -> bool:
    messages = alpaca_messages(row)
    if messages is None:
        return False
    rest = {k: v for k, v in row.items() if k not in ("instruction", "input", "output", "system", "history")}
    row.clear()
    row["messages"] = messages
    row["ground_truth"] = rest.pop("ground_truth", messages[-1]["content"])
    row.update(rest)
    return True


def _flat_to_chat(row: dict[str, Any], q_key: str, a_key: str, question: str, answer: str) -> None:
    # Rebuild the dict so `messages` leads the row (the platform's own examples do) and
    # any other fields (ids, metadata) follow in their original order.
    rest = {k: v for k, v in row.items() if k not in (q_key, a_key)}
    row.clear()
    row["messages"] = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]
    row["ground_truth"] = rest.pop("ground_truth", answer)
    row.update(rest)


def _is_tool(message: object) -> bool:
    return isinstance(message, dict) and message.get("role") == "tool"


def _rewrite_tools(messages: list[Any]) -> list[Any]:
    """Turn tool results into user turns, merging a run of them into one turn.

    A user turn is what the model reads but is not trained on, which is exactly a tool
    result's part in the conversation; merging keeps user/assistant alternation, which
    some chat templates insist on.
    """
    out: list[Any] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append({"role": "user", "content": "\n\n".join(run)})
            run.clear()

    for message in messages:
        if not _is_tool(message):
            flush()
            out.append(message)
            continue
        text = content_text(message.get("content"))
        if text is None:
            text = json.dumps(message.get("content"), ensure_ascii=False, sort_keys=True)
        label = message.get("name") or message.get("tool_call_id")
        head = f"Tool result ({label}):" if isinstance(label, str) and label else "Tool result:"
        run.append(f"{head}\n{text}")
    flush()
    return out
