"""What the listeners share: the engine's runner, the notifier, the directory, and the two
operations every entry point needs — run a parsed command, and record a gate decision.

Both return what to tell the person; the listener decides *how* (ack text, ephemeral,
thread reply), so slash commands, mentions and DMs behave the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from handlers.actors import Directory
from handlers.commands import Command
from handlers.messages import RunMessages
from handlers.notifier import Notifier
from handlers.render import idle_notice, replies, spend_summary
from handlers.render.mrkdwn import Message, at_time, code, user
from handlers.render.root_message import short_name
from handlers.slack_client import trusted_slack_url
from pipeline.domain import ids
from pipeline.domain.authz import Action, admin, authorize, sees
from pipeline.domain.catalog import known_models
from pipeline.domain.platform import PlatformError
from pipeline.domain.records import Actor, RunRecord
from pipeline.domain.spec import SpecError
from pipeline.run import idle
from pipeline.run.decisions import Decision, Refusal, RefusalKind, permission, screen
from pipeline.run.runner import Runner, RunNotFound
from pipeline.run.spending import parse_since, spend
from pipeline.run.teardown import target as teardown_target
from pipeline.store import runs
from pipeline.store.db import Database

Reply = Callable[[Message], Awaitable[Any]]


def person(user_id: str, label: str) -> str:
    """A person or a user group as Slack renders them (ids only; a name is never trusted)."""
    if user_id.startswith("S"):
        return f"<!subteam^{user_id}>"
    return user(user_id) if user_id[:1] in ("U", "W") else code(label or user_id)


def refusal_message(refusal: Refusal) -> Message:
    """A refusal as the person who clicked reads it (denials say they were recorded)."""
    text = refusal.sentence(person=person, when=at_time, place=lambda c: f"<#{c}>")
    if refusal.kind is RefusalKind.DENIED:
        text = f"You can't do that: {text} (Recorded in the audit trail.)"
    return replies.note_message(("⚠️ " if refusal.kind is not RefusalKind.DECIDED else "") + text)


@dataclass
class Surface:
    runner: Runner
    notifier: Notifier
    directory: Directory
    messages: RunMessages

    @property
    def db(self) -> Database:
        return self.runner.db

    def responder(self, body: dict[str, Any]) -> Responder:
        return Responder(body.get("response_url"), self.messages.client)

    async def sees(self, actor: Actor, run: RunRecord) -> bool:
        """Whether this person may see ``run`` at all: members of its channel, and admins."""
        in_channel = await self.directory.in_channel(actor.id, run.channel)
        return sees(actor, run.channel, policy=self.runner.policy, in_channel=in_channel)

    async def seen_channels(self, actor: Actor) -> list[str]:
        """The channels whose runs this person may see."""
        policy = self.runner.policy
        return [
            c
            for c in await runs.run_channels(self.db)
            if sees(actor, c, policy=policy, in_channel=await self.directory.in_channel(actor.id, c))
        ]

    async def visible(self, actor: Actor, found: list[RunRecord]) -> list[RunRecord]:
        """The runs of ``found`` this person may see, in order."""
        return [r for r in found if await self.sees(actor, r)]

    async def judged_in(self, run_key: str, channel: str | None) -> str | None:
        """Where a click is judged: its channel, or the run's own channel for a click in a DM or
        on the App Home (the channel rule is about where runs happen, and the run happens there)."""
        if channel and not channel.startswith("D"):
            return channel
        try:
            return (await self.runner.get(run_key)).channel
        except RunNotFound:
            return channel

    async def fresh(self, key: str) -> bool:
        """True the first time a delivery key is seen: Slack retries must not act twice."""
        return await self.db.mark_processed(key)

    async def execute(self, cmd: Command, *, user: str, name: str | None, channel: str, reply: Reply) -> RunRecord | None:
        """Carry out a parsed command for ``user`` in ``channel``; answers go through ``reply``."""
        if cmd.kind == "help":
            await reply(replies.help_message())
            return None
        actor = await self.directory.actor(user, name)
        if cmd.kind == "run":
            return await self._start(cmd, actor, channel, reply)
        if cmd.kind == "models":
            try:
                models = await self.runner.platform.models.list_models()
            except PlatformError:
                models = list(known_models())
            await reply(replies.models_message(models, platform=self.runner.platform.facts.name))
            return None
        verdict = authorize(actor, Action.VIEW, policy=self.runner.policy, channel=channel)
        if verdict.denied:
            await reply(refusal_message(Refusal.denied(verdict.rule, self.runner.policy)))
            return None
        if cmd.kind in ("spend", "runs"):
            await reply(await self._listing(cmd, actor, channel))
            return None
        try:
            run = await self.runner.get(cmd.run or "")
        except RunNotFound:
            run = None
        if run is None or not await self.sees(actor, run):  # the same words: no hint that it exists elsewhere
            text = f"There is no run {cmd.run} in your channels: `/sft runs all` lists the runs you can see."
            await reply(replies.problem_message(text))
            return None
        await reply(await self._about(cmd, run, actor, channel))
        return run

    async def _start(self, cmd: Command, actor: Actor, channel: str, reply: Reply) -> RunRecord | None:
        try:
            return await self.runner.start(cmd.instruction, actor, spec=cmd.spec, channel=channel)
        except Refusal as exc:
            await reply(refusal_message(exc))
        except (SpecError, ValueError) as exc:
            await reply(replies.problem_message(str(exc)))
        return None

    async def _listing(self, cmd: Command, actor: Actor, channel: str) -> Message:
        """``/sft spend`` and ``/sft runs``: only runs of channels this person is in (admins: all);
        other channels' runs (private ones among them) name their data and instructions."""
        if cmd.kind == "spend":
            window = parse_since(cmd.window)
            seen = None if admin(actor, self.runner.policy) else await self.seen_channels(actor)
            return spend_summary.spend_message(await spend(self.db, since_seconds=window, channels=seen), days=window / 86400)
        # The team's runs where the question was asked, by default: a run is team work.
        # Runs of channels the bot is not enabled in stay out of every list.
        channels = [channel] if cmd.scope == "channel" else self.runner.policy.channels or None
        requester = actor.id if cmd.scope == "mine" else None
        found = await runs.list_runs(self.db, requester=requester, channels=channels, limit=200)
        listed = (await self.visible(actor, found))[:15]
        links = {r.id: link for r in listed if (link := await self.messages.permalink(r.id))}
        return replies.runs_message(listed, scope=cmd.scope, links=links)

    async def _about(self, cmd: Command, run: RunRecord, actor: Actor, channel: str) -> Message:
        """``/sft status|audit|cancel|teardown N`` for a run this person may see."""
        if cmd.kind == "status":
            cands = await runs.candidates(self.db, run.id)
            link = await self.messages.permalink(run.id)
            return replies.status_message(run, cands, channel=await self.messages.channel(run.id), link=link)
        if cmd.kind == "audit":
            return replies.audit_message(run, await self.db.audit_trail(run.id))
        if cmd.kind == "cancel":
            if run.phase.finished:
                return replies.problem_message(f"Run #{run.number} has already {run.phase.value}; nothing to cancel.")
            return replies.confirm_cancel_message(run)
        # teardown: checked before the confirm button, so nobody confirms into a refusal.
        try:
            found = await teardown_target(self.db, self.runner.policy, run.id, actor, channel=channel)
        except Refusal as exc:
            return refusal_message(exc)
        return replies.confirm_teardown_message(run, found.deployment.resource_id)

    async def teardown(self, run_key: str, *, user: str, name: str | None, channel: str | None) -> Message:
        """Delete a run's deployment for ``user`` (after the confirm click); what to tell them."""
        actor = await self.directory.actor(user, name)
        try:
            run, state = await self.runner.teardown(run_key, actor, channel=channel)
        except Refusal as exc:
            return refusal_message(exc)
        return replies.note_message(replies.torn_down_text(run, ids.deployment_id(run.id), state))

    async def idle_choice(self, choice: str, run_key: str, *, user: str, name: str | None) -> Message:
        """Keep / scale to zero / delete, from the idle-deployment DM (judged in the run's channel)."""
        actor = await self.directory.actor(user, name)
        try:
            run = await self.runner.get(run_key)
            policy, channel = self.runner.policy, run.channel
            if choice == "delete":
                run, state = await self.runner.teardown(run.id, actor, channel=channel)
                return replies.note_message(replies.torn_down_text(run, ids.deployment_id(run.id), state))
            if choice == "scale":
                run = await idle.scale_to_zero(self.db, self.runner.platform, policy, run.id, actor, channel=channel)
            else:
                run = await idle.keep(self.db, policy, run.id, actor, channel=channel)
        except Refusal as exc:
            return refusal_message(exc)
        except RunNotFound:
            return replies.problem_message(f"Run {run_key} no longer exists.")
        except PlatformError as exc:
            return replies.problem_message(f"The platform refused: {exc}. Nothing was changed; try again or `/sft teardown`.")
        scaled = choice == "scale"
        return replies.note_message(idle_notice.kept_text(run, ids.deployment_id(run.id), scaled=scaled, who="you"))

    async def start_refused(self, user: str, channel: str) -> Message | None:
        """Why this person may not start a run in ``channel`` (audited), or None: asked before
        anything is downloaded for a run."""
        try:
            await self.runner.check_start(await self.directory.actor(user), channel=channel)
        except Refusal as exc:
            return refusal_message(exc)
        return None

    async def refused(
        self, run: RunRecord, decision: Decision, *, user: str, name: str | None, channel: str | None, audit: bool = False
    ) -> Message | None:
        """Why this person may not make ``decision`` (asked before opening a form, and before
        anything is downloaded or posted for it: ``audit`` records that denial), or None."""
        check = screen if audit else permission
        refusal = await check(self.runner, run, decision, await self.directory.actor(user, name), channel=channel)
        return None if refusal is None else refusal_message(refusal)

    async def decide(
        self, run_key: str, decision: Decision, *, user: str, name: str | None, channel: str | None
    ) -> tuple[RunRecord | None, Message | None]:
        """Record one decision (``Runner.decide`` authorizes and audits it).

        Returns the run after the decision, or a message explaining why nothing happened.
        """
        actor = await self.directory.actor(user, name)
        try:
            return await self.runner.decide(run_key, decision, actor, channel=channel), None
        except Refusal as exc:
            return None, refusal_message(exc)
        except RunNotFound:
            return None, replies.problem_message(f"Run {run_key} no longer exists.")


class Responder:
    """Posts to an interaction's response_url over the app's shared HTTP session.

    Bolt's own ``respond`` opens a new HTTP session per call; under a burst of commands that
    setup cost lands on the event loop that is also acking other requests.
    """

    def __init__(self, url: str | None, client: AsyncWebClient) -> None:
        self.url = url
        self.client = client

    async def __call__(
        self,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
    ) -> None:
        if not self.url or not trusted_slack_url(self.url, self.client.base_url):
            return  # no answer rather than a post to a host a forged payload named
        hook = AsyncWebhookClient(self.url, session=self.client.session, retry_handlers=self.client.retry_handlers)
        await hook.send(
            text=text,
            blocks=blocks,
            response_type=response_type,
            replace_original=replace_original,
            delete_original=delete_original,
        )


def run_started_text(run: RunRecord) -> str:
    return (
        f"Run #{run.number} started on {code(short_name(run.spec.dataset))}: I'm inspecting the data. The plan appears "
        "in this channel; if the data has a problem, I'll tell you privately."
    )
