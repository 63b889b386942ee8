"""GitHub Markdown (a generated ``eval_spec.md``) as Slack mrkdwn.

Slack shows Markdown's ``#`` headings and ``**bold**`` literally, so documents written in
Markdown are converted, never pasted. The parsing is markdown-it-py's (through
slackify-markdown, which maps its tokens to mrkdwn); three things are changed here:

- every text, inline code and code block is escaped (``&``, ``<``, ``>``): the library lets
  ``<!channel>`` and ``<@U…>`` through, and a document must never ping anyone;
- a soft line break (a source line wrapped at 100 columns) is a space, as in rendered
  Markdown, not a hard break that leaves ragged lines on a phone;
- inline code keeps no backticks of its own (they would end the span early).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markdown_it.token import Token
from slackify_markdown.slackify import SlackifyMarkdown

from handlers.render.mrkdwn import SECTION_MAX, Block, escape, section


class _SafeMrkdwn(SlackifyMarkdown):  # type: ignore[misc]
    def text(self, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
        return escape(tokens[idx].content)

    def softbreak(self, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
        return " "

    def code_inline(self, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
        return "`" + escape(tokens[idx].content.replace("`", "'")) + "`"

    def fence(self, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
        return "```\n" + escape(tokens[idx].content.replace("```", "'''")) + "```\n"

    code_block = fence


def to_mrkdwn(markdown: str) -> str:
    """``markdown`` as mrkdwn: headings bold, ``**x**`` → ``*x*``, lists with bullets, escaped."""
    return str(_SafeMrkdwn(markdown).slackify()).strip()


def markdown_sections(markdown: str, *, limit: int = SECTION_MAX) -> list[Block]:
    """A converted document as sections, split between paragraphs to fit each under ``limit``."""
    out: list[Block] = []
    chunk = ""
    for para in to_mrkdwn(markdown).split("\n\n"):
        para = para[: limit - 10]
        if chunk and len(chunk) + len(para) + 2 > limit - 10:
            out.append(section(chunk))
            chunk = ""
        chunk = f"{chunk}\n\n{para}" if chunk else para
    if chunk:
        out.append(section(chunk))
    return out
