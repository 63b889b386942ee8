"""One chat completion on Fireworks, patient with deployments that are warming up.

A fresh deployment answers 404/503 for a while after READY, and a deployment scaled to zero
answers "503 DEPLOYMENT_SCALING_UP" and does not queue the request: "your application must
implement retry logic" (DOC deployments/autoscaling; reference/fireworks.md §7.3). Scaling
0 -> 1 takes "up to a few minutes", longer for large models, so the window is a setting
(per deployment, see serving) and not the ~30 s of the transient-error retries.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fireworks import AsyncFireworks, omit
from fireworks.types.shared_params.chat_message import ChatMessage as WireMessage

from pipeline.domain.platform import ChatMessage, PlatformError
from pipeline.platforms.fireworks.calls import Caller, FireworksError, Inference, status_of
from pipeline.platforms.fireworks.serving import FireworksServing

_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


def wire_messages(messages: list[ChatMessage]) -> list[WireMessage]:
    out: list[WireMessage] = []
    for m in messages:
        msg: WireMessage = {"role": m.role, "content": m.content}
        if m.tool_calls:
            msg["tool_calls"] = m.tool_calls  # type: ignore[typeddict-item]  # OpenAI-shaped dicts, as the data has them
        if m.tool_call_id:
            msg["tool_call_id"] = m.tool_call_id
        out.append(msg)
    return out


def _answer_text(response: Any, model_string: str) -> str:
    """The completion's text, a tool call as JSON when the model answered with one, thinking removed."""
    if not response.choices:
        raise PlatformError(f"Fireworks returned no choices for {model_string}.")
    message = response.choices[0].message
    content = message.content
    if isinstance(content, list):
        text = "".join(part.text or "" for part in content if part.type == "text")
    else:
        text = content or ""
    if not text.strip() and message.tool_calls:
        calls_made = [{"name": c.function.name, "arguments": c.function.arguments} for c in message.tool_calls if c.function]
        text = json.dumps(calls_made)
    # Reasoning models put their thinking first; callers want the answer.
    return _THINK.sub("", text, count=1)


class FireworksInference:
    """The ``inference`` role on Fireworks: chat with a deployment (nothing answers in process)."""

    def __init__(self, inference: AsyncFireworks, calls: Caller, serving: FireworksServing) -> None:
        self._inference, self._calls, self._serving = inference, calls, serving

    async def chat(
        self,
        model_string: str,
        messages: list[ChatMessage],
        *,
        max_tokens: int = 256,
        tools: list[dict[str, Any]] | None = None,
        reasoning_effort: str | None = None,
    ) -> str:
        """The answer text (a tool call as JSON when the model answered with one)."""
        warmup = self._serving.warmup_for(model_string)

        def warming_up(exc: BaseException) -> bool:
            status = status_of(exc)
            if status == 503:
                return True  # scaling up, or not serving yet: retried for the whole warm-up window
            ready = self._serving.ready_since.get(model_string)
            # A 404 is only "not routed yet" right after the deployment (or adapter) turned ready.
            return status == 404 and ready is not None and self._calls.clock() - ready < warmup

        async def ask(effort: str | None) -> Any:
            return await self._calls.run(
                f"get a chat completion from {model_string}",
                lambda: self._inference.chat.completions.create(
                    model=model_string,
                    messages=wire_messages(messages),
                    max_tokens=max_tokens,
                    temperature=0.0,
                    tools=tools if tools else omit,  # type: ignore[arg-type]  # the row's own OpenAI tool definitions
                    reasoning_effort=effort if effort else omit,  # type: ignore[arg-type]
                ),
                inference=Inference(warming_up, patience=warmup),
            )

        try:
            response = await ask(reasoning_effort)
        except FireworksError as exc:
            # Some reasoning models refuse "none" ("Invalid reasoning effort: none", SDK
            # completion_create_params.py:300-341): ask again the model's default way.
            if not (reasoning_effort and exc.status == 400 and "reasoning" in str(exc).lower()):
                raise
            response = await ask(None)
        return _answer_text(response, model_string)

    async def generate(self, model: str, prompts: list[list[ChatMessage]], *, max_tokens: int) -> list[str]:
        raise PlatformError("Fireworks serves fine-tuned models only from a deployment; sftbot deploys them to get outputs.")
