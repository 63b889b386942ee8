"""Who clicked: a Slack user id as an :class:`Actor`, with the user groups the policy names;
and who is in a channel (what a person may see follows channel membership).

``authorize`` knows user ids and group ids; Slack knows which groups a user is in. Only
the groups the policy mentions are looked up (``usergroups.users.list``, Tier 2, so cached).
Channel members come from ``conversations.members`` (Tier 4, paginated), cached per channel
for ``membership_ttl`` seconds: someone who leaves a channel stops seeing its runs within
that time. A failed lookup counts as "not a member": the safe direction for a permission check.
"""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from pipeline.domain.authz import Policy
from pipeline.domain.records import Actor

log = logging.getLogger("sftbot.slack.actors")


class Directory:
    """Resolves users to actors; group members and names are cached for ``ttl`` seconds."""

    def __init__(self, client: AsyncWebClient, policy: Policy, *, ttl: float = 300.0, membership_ttl: float = 120.0) -> None:
        self.client = client
        self.policy = policy
        self.ttl = ttl
        self.membership_ttl = membership_ttl
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._names: dict[str, tuple[float, str]] = {}
        self._channels: dict[str, tuple[float, frozenset[str]]] = {}

    def _group_ids(self) -> list[str]:
        # Slack user-group ids start with S; everything else in the lists is a user id.
        return sorted({g for g in [*self.policy.approvers, *self.policy.admins] if g.startswith("S")})

    async def members(self, group: str) -> frozenset[str]:
        cached = self._members.get(group)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        try:
            resp = await self.client.usergroups_users_list(usergroup=group)
            users = frozenset(str(u) for u in resp.get("users") or [])
        except SlackApiError as exc:
            log.warning("could not list members of user group %s: %s", group, exc.response.get("error"))
            users = frozenset()
        self._members[group] = (time.monotonic(), users)
        return users

    async def channel_members(self, channel: str) -> frozenset[str]:
        """Everyone in ``channel`` (cached); empty when Slack will not say (then nobody counts as in it)."""
        cached = self._channels.get(channel)
        if cached and time.monotonic() - cached[0] < self.membership_ttl:
            return cached[1]
        found: set[str] = set()
        cursor: str | None = None
        try:
            while True:  # Slack recommends pages of at most 200 (docs.slack.dev/reference/methods/conversations.members)
                resp = await self.client.conversations_members(channel=channel, limit=200, cursor=cursor)
                found.update(str(u) for u in resp.get("members") or [])
                cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
                if cursor is None:
                    break
        except SlackApiError as exc:
            err = exc.response.get("error")
            scope = " (the Slack app needs channels:read and groups:read)" if err == "missing_scope" else ""
            log.warning("could not list the members of %s: %s%s", channel, err, scope)
            found = set()
        members = frozenset(found)
        self._channels[channel] = (time.monotonic(), members)
        return members

    async def in_channel(self, user_id: str, channel: str | None) -> bool:
        return channel is not None and user_id in await self.channel_members(channel)

    async def name(self, user_id: str) -> str:
        cached = self._names.get(user_id)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        try:
            resp = await self.client.users_info(user=user_id)
            u = resp.get("user") or {}
            name = str((u.get("profile") or {}).get("display_name") or u.get("real_name") or u.get("name") or user_id)
        except SlackApiError:
            name = user_id
        self._names[user_id] = (time.monotonic(), name)
        return name

    async def actor(self, user_id: str, name: str | None = None) -> Actor:
        groups = tuple([g for g in self._group_ids() if user_id in await self.members(g)])
        return Actor(id=user_id, name=name or await self.name(user_id), groups=groups)
