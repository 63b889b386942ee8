"""Who clicked: a Slack user id as an :class:`Actor`, with the user groups the policy names.

``authorize`` knows user ids and group ids; Slack knows which groups a user is in. Only
the groups the policy mentions are looked up (``usergroups.users.list``, Tier 2, so cached).
A failed lookup counts as "not a member": the safe direction for a permission check.
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

    def __init__(self, client: AsyncWebClient, policy: Policy, *, ttl: float = 300.0) -> None:
        self.client = client
        self.policy = policy
        self.ttl = ttl
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._names: dict[str, tuple[float, str]] = {}

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
