"""The local endpoint's wire format without a model: which requests it accepts, which it
refuses (400, OpenAI's error shape, the field named), and how streamed text is cut at stop
strings and held back over incomplete UTF-8 — the pure parts of local/wire.py and local/generate.py."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.platforms.local.generate import _Choice
from pipeline.platforms.local.wire import EndpointError, parse_request

HI = [{"role": "user", "content": "hi"}]


def _refusal(body: dict[str, Any]) -> EndpointError:
    with pytest.raises(EndpointError) as caught:
        parse_request(body)
    return caught.value


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"messages": HI}, "model", "required"),
        ({"model": "m", "messages": []}, "messages", "at least 1"),
        ({"model": "m", "messages": HI, "max_tokens": -1}, "max_tokens", "greater than or equal to 1"),
        ({"model": "m", "messages": HI, "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"model": "m", "messages": HI, "temperature": -3}, "temperature", "greater than or equal to 0"),
        ({"model": "m", "messages": HI, "top_p": 0}, "top_p", "greater than 0"),
        ({"model": "m", "messages": HI, "n": 0}, "n", "greater than or equal to 1"),
        ({"model": "m", "messages": HI, "n": 100}, "n", "less than or equal to 8"),
        ({"model": "m", "messages": HI, "stop": ["a", "b", "c", "d", "e"]}, "stop", "up to 4"),
        ({"model": "m", "messages": HI, "stop": ""}, "stop", "non-empty"),
        ({"model": "m", "messages": HI, "bogus": 1}, "bogus", "Unrecognized request argument"),
        ({"model": "m", "messages": [{"content": "hi"}]}, "messages[0].role", "required"),
        ({"model": "m", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role", "'system'"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages[0].content",
            "only text parts",
        ),
        ({"model": "m", "messages": [{"role": "tool", "content": "42", "tool_call_id": "c1"}]}, "messages[0]", "tool calls"),
        ({"model": "m", "messages": HI, "tools": [{"type": "function"}]}, "tools", "not supported"),
        ({"model": "m", "messages": HI, "logprobs": True}, "logprobs", "not supported"),
        ({"model": "m", "messages": HI, "seed": 7}, "seed", "not supported"),
        ({"model": "m", "messages": HI, "presence_penalty": 0.5}, "presence_penalty", "not supported"),
        ({"model": "m", "messages": HI, "response_format": {"type": "json_object"}}, "response_format", "not supported"),
    ],
)
def test_bad_requests_are_400s_that_name_the_field(body: dict[str, Any], param: str, words: str) -> None:
    err = _refusal(body)
    assert err.status == 400 and err.param == param and words in err.message, err.message
    assert (
        set(err.body()["error"]) == {"message", "type", "param", "code"}
        and err.body()["error"]["type"] == "invalid_request_error"
    )


def test_a_body_that_is_not_an_object_is_a_400() -> None:
    assert _refusal([1, 2]).status == 400  # type: ignore[arg-type]


def test_text_parts_are_joined_and_neutral_or_null_fields_accepted() -> None:
    parts = [{"type": "text", "text": "Tell me"}, {"type": "text", "text": "a joke"}]
    req = parse_request(
        {
            "model": "m",
            "messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": parts}],
            "temperature": None,  # null is "not given", as OpenAI reads it
            "presence_penalty": 0,
            "tool_choice": "none",
            "user": "someone",
            "response_format": {"type": "text"},
            "stop": "END",
        }
    )
    assert [(m.role, m.content) for m in req.chat()] == [("system", "be brief"), ("user", "Tell me\na joke")]
    assert req.temperature == 1.0 and req.stops == ("END",)


def _bytes_decode(ids: list[int]) -> str:
    """A byte-level tokenizer: each id is one byte, as byte-level BPE can split a character."""
    return bytes(ids).decode("utf-8", errors="replace")


def _feed(text: str, stop: tuple[str, ...]) -> tuple[list[str], _Choice]:
    choice, out = _Choice(), []
    for token in text.encode():
        out.append(choice.add(token, _bytes_decode, stop))
        if choice.finish_reason is not None:
            break
    else:
        out.append(choice.finish("length", _bytes_decode, stop))
    return out, choice


def test_a_stop_string_split_over_tokens_ends_the_text_before_it_and_is_never_sent() -> None:
    out, choice = _feed("abc END more", ("END",))
    assert "".join(out) == "abc " and choice.finish_reason == "stop"
    assert all("E" not in piece for piece in out)  # held back until it was sure


def test_without_a_stop_string_everything_is_sent_and_the_reason_is_length() -> None:
    out, choice = _feed("abc EN", ("END",))
    assert "".join(out) == "abc EN" and choice.finish_reason == "length"


def test_a_character_split_over_tokens_is_sent_whole() -> None:
    out, _ = _feed("né😀", ())
    assert "".join(out) == "né😀" and not any("\ufffd" in piece for piece in out)
    assert out[:3] == ["n", "", "é"]  # the two bytes of é went out together, with the second
