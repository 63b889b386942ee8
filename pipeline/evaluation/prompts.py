"""What a held-out row asks the model: its prompt turns, its tools, and whether to switch thinking off.

Tool turns need their tools: a ``tool`` message without the ``tools`` that produced it is
refused or mis-rendered by chat templates (reference/fireworks.md §5, undocumented either
way). So a row that carries ``tools`` sends them with its tool turns intact, and a row with
tool turns but no ``tools`` drops them consistently: the ``tool`` results and the assistant
turns that only called tools.

Reasoning bases (Qwen3, DeepSeek V3.1/V3.2, GLM 4.5+) think first by default and can spend
the whole answer budget doing it (SDK completion_create_params.py:300-341); unless the data
trains reasoning, their answers are asked for with ``reasoning_effort="none"``.
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.domain.platform import ChatMessage

# Base models that think before answering unless told not to, and accept "none" to stop it. No
# catalogue field marks a reasoning model (get-model 5.10.0 and SDK types/model.py have none), so
# this is by name: Qwen3 (its "-instruct-2507" releases are the non-thinking ones), QwQ, DeepSeek
# V3.1/V3.2 and GLM 4.5-4.7 (SDK completion_create_params.py:300-341); GLM 5 ("none", "high",
# "max") and DeepSeek V4 ("none" ... "max"), per docs.fireworks.ai/guides/reasoning as quoted in
# LangChain's deepagents reasoning_effort constants. Kimi K2 accepts only low/medium/high there, and
# GPT-OSS and MiniMax refuse "none": nothing is sent for them (a refusal would be retried anyway).
_THINKS = re.compile(r"(?:^|/)(?:qwen3(?!.*instruct-2507)|qwq|deepseek-v3p[12]|deepseek-v4|glm-4p[5-9]|glm-5)", re.IGNORECASE)
_TRAINS_REASONING = re.compile(r"<think(?:ing)?>", re.IGNORECASE)


def message_text(content: object) -> str:
    """A message's text: a string as it is, text parts joined, anything else empty."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def prompt_messages(row: dict[str, Any]) -> list[ChatMessage]:
    """The turns before the answer; tool turns kept only when the row defines its tools."""
    keep_tools = bool(row.get("tools"))
    out: list[ChatMessage] = []
    for m in row["messages"][:-1]:
        role = str(m.get("role", "user"))
        calls = m.get("tool_calls") if isinstance(m.get("tool_calls"), list) else None
        if not keep_tools and (role == "tool" or (calls and not message_text(m.get("content")).strip())):
            continue
        out.append(
            ChatMessage(
                role=role,
                content=message_text(m.get("content")),
                tool_calls=calls if keep_tools else None,
                tool_call_id=str(m["tool_call_id"]) if keep_tools and m.get("tool_call_id") else None,
            )
        )
    return out


def prompt_text(row: dict[str, Any]) -> str:
    """What a person reads as the row's question: its last user turn."""
    return next((m.content for m in reversed(prompt_messages(row)) if m.role == "user" and m.content), "")


def tools_of(row: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = row.get("tools")
    return [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) and tools else None


def trains_reasoning(rows: list[dict[str, Any]]) -> bool:
    """True when the data's answers carry thinking (``<think>`` or ``reasoning_content``)."""
    for row in rows:
        for m in row.get("messages", []):
            if isinstance(m, dict) and m.get("role") == "assistant":
                if m.get("reasoning_content") or _TRAINS_REASONING.search(message_text(m.get("content"))):
                    return True
    return False


def reasoning_effort(base_model: str, rows: list[dict[str, Any]]) -> str | None:
    """ "none" for a thinking base whose training data does not think; None: send nothing."""
    if _THINKS.search(base_model) and not trains_reasoning(rows):
        return "none"
    return None
