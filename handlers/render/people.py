"""Naming people in messages: mentions that notify, names that do not, and "who can decide".

A decision is made only when the people who can make it are told, and told once: the
decision's own thread message mentions them (users ``<@U…>``, user groups ``<!subteam^S…>``)
unless a DM already asked them, in which case it names them in plain words; the root and
everything edited in place only ever name people (an edit never notifies, and the root is
posted once, when the first question or plan appears, where a mention would ping a second
time). Environment variable names never appear here; they are for admins (the App Home).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from handlers.render.mrkdwn import code, escape
from pipeline.domain.authz import Deciders

_USER = re.compile(r"[UW][A-Z0-9]{1,20}")
_GROUP = re.compile(r"S[A-Z0-9]{1,20}")
# A Slack id in plain text (an audit reason, a refusal worded for the terminal): a capital
# U/W/S and at least one digit, so words such as "UTC" or "SQL" never match.
_RAW_ID = re.compile(r"\b([UWS](?=[A-Z0-9]*[0-9])[A-Z0-9]{2,20})\b")


def mention(entity: str) -> str:
    """A user or user-group mention; anything else (a terminal operator) as plain code."""
    if _USER.fullmatch(entity or ""):
        return f"<@{entity}>"
    if _GROUP.fullmatch(entity or ""):
        return f"<!subteam^{entity}>"
    return code(entity)


def name(entity: str, names: Mapping[str, str]) -> str:
    """A person or group in plain words (no ping): their display name when known."""
    known = names.get(entity)
    if known and known != entity:
        return escape(known)
    if _GROUP.fullmatch(entity or ""):
        return "the approvers' group"
    return code(entity)


def mentions_in(text: str) -> str:
    """Raw Slack ids in already-escaped text as mentions (inside an edit or a reply to one person)."""
    return _RAW_ID.sub(lambda m: mention(m.group(1)), text)


def mentions_as_names(text: str, names: Mapping[str, str]) -> str:
    """``<@U…>`` mentions in a rendered phrase as plain names (where a ping must not happen)."""
    return re.sub(r"<@([UW][A-Z0-9]+)>", lambda m: name(m.group(1), names), text)


def either(shown: list[str], *, limit: int = 6) -> str:
    """`a`, `a or b`, `a, b or c`, `a, b, … or one of 9 more`."""
    head = shown[:limit]
    if len(shown) > limit:
        return ", ".join(head) + f" or one of {len(shown) - limit} more"
    return head[0] if len(head) == 1 else ", ".join(head[:-1]) + " or " + head[-1]


@dataclass(frozen=True)
class Ask:
    """Who a decision waits for, and how each of them was reached.

    ``dmed``: the people a DM already asked (they are named, not mentioned, in the thread);
    ``names``: display names for everything that must not ping (the root, DMs, stamps).
    """

    deciders: Deciders
    names: Mapping[str, str] = field(default_factory=dict)
    dmed: frozenset[str] = frozenset()

    def _phrase(self, shown: list[str]) -> str:
        d = self.deciders
        if d.ids:
            return either(shown)
        if d.anyone:
            return "anyone in this channel" + (
                f" except {either([self.plain_name(i) for i in d.excluded])}" if d.excluded else ""
            )
        if d.admins_only:
            return "an admin (none is configured: ask whoever runs the bot)"
        return "someone else (no approver is left who did not write this plan)"

    def plain_name(self, entity: str) -> str:
        return name(entity, self.names)

    def mentions(self) -> str:
        """For the decision's own message: a mention for everyone not already asked by DM."""
        return self._phrase([self.plain_name(i) if i in self.dmed else mention(i) for i in self.deciders.ids])

    def plain(self) -> str:
        """For the root, DMs and edits: names only, nobody is pinged."""
        return self._phrase([self.plain_name(i) for i in self.deciders.ids])

    @property
    def pinged(self) -> list[str]:
        """The ids the decision message mentions (what the thread notifies)."""
        return [i for i in self.deciders.ids if i not in self.dmed]
