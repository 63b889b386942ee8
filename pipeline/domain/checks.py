"""One check of `sftbot doctor`: what sftbot assumes, what was observed, what sftbot will do."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Check(BaseModel):
    """A first-contact check (``ok`` None: not checked here, and why is in ``observed``)."""

    area: str  # "fireworks" | "slack"
    name: str
    assumption: str
    observed: str
    action: str  # what sftbot will do about it
    ok: bool | None
    facts: dict[str, Any] = Field(default_factory=dict)  # what the bot reads back from the saved results
