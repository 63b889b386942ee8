"""The project's one Jinja environment: templates ship in the wheel, with shared filters.

Reports and snippets use ``environment()``; generated code (evaluators) uses its overlay
``code_environment()``, which only strips block lines, so the filters and the cache are the
same. Nothing a user typed is ever rendered as a template: user data only fills variables.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from pipeline.domain.money import money, open_ended, rate


def py_literal(value: object) -> str:
    """A Python literal for generated code: strings double-quoted (as JSON), the rest as repr."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def when(epoch: float | None) -> str:
    return datetime.fromtimestamp(float(epoch), tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if epoch else ""


def loss(value: float | None) -> str:
    return "n/a" if value is None else f"{float(value):.4f}"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{float(value):+.0f}%"


def seconds(value: float | None) -> str:
    """``95 s`` or ``3.2 min``; n/a when unknown."""
    if value is None:
        return "n/a"
    return f"{value:,.0f} s" if value < 120 else f"{value / 60:,.1f} min"


def span(duration: Any) -> str:
    """A planned Duration as ``~1.5-2.5 min``; n/a when the platform could not estimate it."""
    if duration is None:
        return "n/a"
    return f"~{seconds(duration.low_seconds)} - {seconds(duration.high_seconds)}"


def cell(value: object, width: int = 70) -> str:
    """One Markdown table cell of code: one line, clipped, no pipes or backticks."""
    text = " ".join(str(value).split()).replace("|", "/").replace("`", "'")
    return text if len(text) <= width else text[: width - 1] + "…"


def fenced(text: object) -> str:
    """Text a person typed, shown verbatim in a Markdown code block: a fence longer than any run
    of backticks in it, so no line of it can close the block, start a heading or a link."""
    body = str(text)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def plain(text: object) -> str:
    """Text a person or Slack chose (a display name, an error quoting it) as literal Markdown text
    on one line: every ASCII punctuation character backslash-escaped (CommonMark 2.4)."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", " ".join(str(text).split()))


@lru_cache(maxsize=1)
def environment() -> Environment:
    """Cached: compiling the report template costs ~0.5 s, far more than rendering it."""
    env = Environment(loader=PackageLoader("templates", ""), undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters.update(
        money=money,
        rate=rate,
        open_ended=open_ended,
        when=when,
        loss=loss,
        pct=pct,
        py=py_literal,
        oneline=lambda s: " ".join(str(s).split()),
        seconds=seconds,
        span=span,
        cell=cell,
        fenced=fenced,
        plain=plain,
    )
    return env


@lru_cache(maxsize=1)
def code_environment() -> Environment:
    """For templates that render code: block tags take their whole line with them."""
    return environment().overlay(trim_blocks=True, lstrip_blocks=True)


def render(name: str, **data: Any) -> str:
    return environment().get_template(name).render(**data)


def render_code(name: str, **data: Any) -> str:
    return code_environment().get_template(name).render(**data)
