"""Who a decision asks, and asking them once.

The people who may decide come from ``pipeline.domain.authz.deciders`` (the rules the
buttons obey). Each is reached once while the decision is open: by a DM when
SFTBOT_DM_APPROVERS is on (users only; a DM cannot reach a user group), else by a mention in
the decision's own thread message. Everything else names them without a ping.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from handlers.messages import MessageKey, RunMessages
from handlers.render import direct
from handlers.render.action_ids import CANCEL
from handlers.render.mrkdwn import Block, Message
from handlers.render.people import Ask
from pipeline.domain.authz import Action, Deciders, Policy, deciders
from pipeline.domain.gates import GateKey
from pipeline.domain.machine import Phase
from pipeline.domain.records import RunRecord
from pipeline.run.authorship import authors_of
from pipeline.store.db import Database

DM_LIMIT = 20  # deciders DMed per gate: a large approver list is a group's job


async def _same(user_id: str) -> str:
    return user_id


def _is_user(entity: str) -> bool:
    return entity[:1] in ("U", "W")


class Asker:
    def __init__(
        self,
        db: Database,
        out: RunMessages,
        *,
        policy: Callable[[], Policy],
        names: Callable[[str], Awaitable[str]] | None = None,
        dm: Callable[[str, str | None], Awaitable[bool]] | None = None,
    ) -> None:
        """``dm``: SFTBOT_DM_APPROVERS on: whether a person is in a channel (a DM names the run,
        so only people who can see its channel get one; the others are mentioned in the thread)."""
        self.db, self.out, self.policy, self.in_channel = db, out, policy, dm
        self._name = names or _same

    async def names(self, ids: Iterable[str]) -> dict[str, str]:
        """Display names for plain-words mentions (the directory caches them)."""
        return {i: await self._name(i) for i in dict.fromkeys(ids) if _is_user(i)}

    async def deciders(self, run: RunRecord, action: Action) -> Deciders:
        authors = await authors_of(self.db, run, run.plan_version) if action is Action.APPROVE else frozenset()
        usd = run.estimated_usd
        if run.phase is Phase.AWAITING_BUDGET and run.budget is not None:
            usd = run.budget.approved_usd + run.budget.more_usd  # what would be approved in all
        return deciders(action, policy=self.policy(), requester=run.requester, authors=authors, estimated_usd=usd)

    async def ask(self, run: RunRecord, action: Action, *, extra: Iterable[str] = ()) -> Ask:
        """Who decides ``action`` now; with DMs on, every user among them is asked by DM."""
        d = await self.deciders(run, action)
        dmed: frozenset[str] = frozenset()
        if self.in_channel is not None:
            dmed = frozenset([i for i in d.ids[:DM_LIMIT] if _is_user(i) and await self.in_channel(i, run.channel)])
        return Ask(d, await self.names([*d.ids, *d.excluded, run.requester, *extra]), dmed)

    async def dm(self, run: RunRecord, gate: GateKey, ask: Ask, head: str, thread_msg: Message) -> None:
        """One DM per decider for ``gate`` (never twice, across restarts), with the thread
        message's own decision buttons (a cancel stays in the thread)."""
        if not ask.dmed:
            return
        buttons = _decision_buttons(thread_msg.blocks)
        link = await self.out.permalink(run.id)
        msg = direct.ask_dm(head, buttons, link=link, block_id=f"dm|{run.id}|{gate}")
        for person in sorted(ask.dmed):
            await self.out.direct_once(run.id, MessageKey.dm(gate, person), person, msg, head=head)


def _decision_buttons(blocks: list[Block]) -> list[dict[str, Any]]:
    return [
        el
        for b in blocks
        if b.get("type") == "actions"
        for el in b.get("elements", [])
        if el.get("action_id") != CANCEL and el.get("type") == "button"
    ]
