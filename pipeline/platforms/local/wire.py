"""The OpenAI chat-completions wire format, as the local endpoint speaks it: the request it
accepts (and what it refuses, by name), its error body, and the completion and chunk bodies.

Shapes follow the API reference (https://platform.openai.com/docs/api-reference/chat/create,
…/chat/object, …/chat/streaming) and the official client's types (``openai.types.chat``),
which the tests parse every answer with. Errors are ``{"error": {"message", "type",
"param", "code"}}`` (https://platform.openai.com/docs/guides/error-codes).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.domain.platform import ChatMessage

MAX_CHOICES = 8  # `n`: each choice is one more row in every forward pass
MAX_STOPS = 4  # as OpenAI allows


class EndpointError(Exception):
    """An answer that is an error: HTTP status and OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[Any] | None = None

    @field_validator("content")
    @classmethod
    def _text_only(cls, value: str | list[dict[str, Any]] | None) -> str | list[dict[str, Any]] | None:
        for part in value if isinstance(value, list) else []:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError(
                    f"only text parts ({{'type': 'text', 'text': ...}}) are supported here, not {part.get('type')!r}"
                )
        return value

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(str(p["text"]) for p in self.content)  # as vLLM joins text parts
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """What the endpoint honours; names OpenAI defines that change nothing here are accepted
    and ignored (``user``, ``metadata``, ``store``, ``service_tier``, …); those it cannot
    honour are refused by name (``unsupported``); any other name is a 400, as OpenAI answers."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    # Accepted, changing nothing here.
    user: str | None = None
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    service_tier: str | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None  # the local models have no reasoning switch
    # Refused unless neutral (see `unsupported`).
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    seed: int | None = None
    modalities: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: object) -> object:
        """OpenAI reads ``null`` as "not given"; some clients send every field."""
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOPS or any(not s for s in stops):
            raise ValueError(f"give up to {MAX_STOPS} non-empty stop strings")
        return value

    @property
    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def chat(self) -> list[ChatMessage]:
        """The conversation for the chat template (`developer` is the newer name for `system`)."""
        return [ChatMessage(role="system" if m.role == "developer" else m.role, content=m.text()) for m in self.messages]


_UNSUPPORTED: dict[str, tuple[object, ...]] = {
    # field: the values that change nothing (sent by clients that fill in defaults)
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "tools": (None, []),
    "tool_choice": (None, "none", "auto"),
    "seed": (None,),
    "modalities": (None, ["text"]),
}


def unsupported(req: ChatCompletionRequest) -> EndpointError | None:
    """The first field the request sets to something the local endpoint cannot do, named."""
    for name, neutral in _UNSUPPORTED.items():
        if getattr(req, name) not in neutral:
            return EndpointError(400, f"{name} is not supported by the local endpoint: leave it out", param=name)
    if req.response_format not in (None, {"type": "text"}):
        return EndpointError(
            400, "response_format other than text is not supported by the local endpoint", param="response_format"
        )
    for i, m in enumerate(req.messages):
        if m.role == "tool" or m.tool_calls:
            return EndpointError(400, "tool calls are not supported by the local endpoint", param=f"messages[{i}]")
    return None


def parse_request(body: object) -> ChatCompletionRequest:
    """The request, or an EndpointError naming the first problem and its field."""
    if not isinstance(body, dict):
        raise EndpointError(400, "the body must be a JSON object with 'model' and 'messages'")
    try:
        req = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    problem = unsupported(req)
    if problem is not None:
        raise problem
    return req


def _validation_error(exc: ValidationError) -> EndpointError:
    first = exc.errors(include_url=False)[0]
    param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
    if first["type"] == "extra_forbidden":
        return EndpointError(400, f"Unrecognized request argument supplied: {param}", param=param)
    if first["type"] == "missing":
        return EndpointError(400, f"'{param}' is a required property", param=param)
    message = str(first["msg"]).removeprefix("Value error, ")
    return EndpointError(400, f"invalid '{param}': {message}", param=param or None)


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def completion_body(
    cid: str, model: str, choices: list[tuple[str, str]], usage: tuple[int, int], created: int | None = None
) -> dict[str, Any]:
    """A ``chat.completion``: ``choices`` are (text, finish reason), ``usage`` (prompt, completion) tokens."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": reason, "logprobs": None}
            for i, (text, reason) in enumerate(choices)
        ],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }


def chunk_body(
    cid: str, model: str, created: int, choices: list[dict[str, Any]], usage: tuple[int, int] | None = None
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; its ``choices`` are {index, delta, finish_reason} items."""
    body: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices}
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return body


def model_body(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "sftbot"}
