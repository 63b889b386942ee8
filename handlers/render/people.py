"""Naming people in messages: mentions that notify, and "who can decide" in one phrase.

A decision that waits is only made when the people who can make it are told: plan and
promotion messages mention them (users ``<@U…>``, user groups ``<!subteam^S…>``), and the
root says whom the run waits for. Environment variable names never appear here; they are
for admins (the App Home shows them to admins only).
"""

from __future__ import annotations

import re

from handlers.render.mrkdwn import code
from pipeline.domain.authz import Deciders

_USER = re.compile(r"[UW][A-Z0-9]{1,20}")
_GROUP = re.compile(r"S[A-Z0-9]{1,20}")


def mention(entity: str) -> str:
    """A user or user-group mention; anything else (a terminal operator) as plain code."""
    if _USER.fullmatch(entity or ""):
        return f"<@{entity}>"
    if _GROUP.fullmatch(entity or ""):
        return f"<!subteam^{entity}>"
    return code(entity)


def either(ids: list[str], *, limit: int = 6) -> str:
    """`@a`, `@a or @b`, `@a, @b or @c`, `@a, @b, … (9 people)`."""
    shown = [mention(i) for i in ids[:limit]]
    if len(ids) > limit:
        return ", ".join(shown) + f" or one of {len(ids) - limit} more"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def who_can(d: Deciders) -> str:
    """Who should act, to put in front of the ask: "@bob or @carol", "anyone here but @alice"."""
    if d.ids:
        return either(d.ids)
    if d.anyone:
        return "anyone in this channel" + (f" except {either(d.excluded)}" if d.excluded else "")
    if d.admins_only:
        return "an admin (none is configured: ask whoever runs the bot)"
    return "someone else (no approver is left who did not write this plan)"
