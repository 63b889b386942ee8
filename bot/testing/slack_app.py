"""Drive the real Bolt app like Slack does: correctly signed requests built from the real
payload shapes in ``payloads/`` (recorded from bolt-python's own tests, see its README),
dispatched through ``app.async_dispatch`` or over real HTTP to the HTTP-mode server; plus
``make_bot``, the real app on a real runner wired to the fake Slack.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.app import aclose, create_app, surface_of
from bot.doctor_results import live_merge_bases
from bot.engine import Engine
from bot.settings import Settings
from bot.testing.runs import EventLog
from bot.testing.slack import FakeSlack
from handlers.surface import Surface
from pipeline.domain.authz import Policy
from pipeline.run.context import RunnerConfig
from pipeline.run.runner import Runner
from pipeline.store.db import Database

SECRET = "test-signing-secret"
ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
CHANNEL = "C0TEAM"
_ids = itertools.count(1)


PAYLOADS = Path(__file__).resolve().parent / "slack" / "payloads"


def fixture(name: str) -> dict[str, Any]:
    """A recorded Slack payload (``slack/payloads/``)."""
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def signed_headers(
    body: str, *, content_type: str, secret: str = SECRET, timestamp: int | None = None, retry_num: int | None = None
) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    headers = {
        "content-type": content_type,
        "x-slack-request-timestamp": ts,
        "x-slack-signature": SignatureVerifier(secret).generate_signature(timestamp=ts, body=body),
    }
    if retry_num is not None:
        headers.update({"x-slack-retry-num": str(retry_num), "x-slack-retry-reason": "http_timeout"})
    return headers


# --- payload builders (real shapes, our ids) ----------------------------------------------


def slash_fields(text: str, *, user: str, channel: str, response_url: str, trigger: str | None = None) -> dict[str, str]:
    f = dict(fixture("slash_command.json")["fields"])
    f.update(
        command="/sft",
        text=text,
        user_id=user,
        user_name=user.lower(),
        channel_id=channel,
        response_url=response_url,
        trigger_id=trigger or f"{next(_ids)}.111.trigger",
    )
    return f


def block_actions(
    action: dict[str, Any],
    *,
    user: str,
    channel: str,
    message: dict[str, Any] | None,
    response_url: str,
    trigger: str | None = None,
) -> dict[str, Any]:
    """A click as Slack sends it; ``message=None``: on an ephemeral message, which the payload
    does not carry (container.is_ephemeral says so)."""
    p = copy.deepcopy(fixture("block_actions_message_button.json")["payload"])
    ts = (message or {}).get("ts", "0.0")
    p.update(
        user={"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T111"},
        trigger_id=trigger or f"{next(_ids)}.222.trigger",
        response_url=response_url,
        channel={"id": channel},
        actions=[{**action, "action_ts": f"{time.time():.6f}"}],
    )
    p["container"] = {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": message is None}
    if message is not None:
        p["message"] = {
            "type": "message",
            "ts": ts,
            "text": message.get("text", ""),
            "blocks": message.get("blocks", []),
            "bot_id": "BBOT",
            "thread_ts": message.get("thread_ts"),
        }
        if message.get("thread_ts"):
            p["container"]["thread_ts"] = message["thread_ts"]
    else:
        p.pop("message", None)
    return p


def view_submission(view: dict[str, Any], values: dict[str, Any], *, user: str) -> dict[str, Any]:
    p = copy.deepcopy(fixture("view_submission.json")["payload"])
    p["user"] = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T111"}
    p["trigger_id"] = f"{next(_ids)}.333.trigger"
    p["view"].update(
        id=view.get("id", "V1"),
        blocks=view["blocks"],
        callback_id=view["callback_id"],
        private_metadata=view["private_metadata"],
        title=view["title"],
        state={"values": values},
    )
    return p


def event_callback(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    p = copy.deepcopy(fixture("app_mention_event_callback.json"))
    p["event"] = event
    p["event_id"] = event_id or f"Ev{next(_ids):08d}"
    p["authorizations"][0]["user_id"] = "UBOT"
    return p


def find_element(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any] | None:
    """The interactive element with ``action_id`` in a message, as Slack renders it."""
    for b in blocks:
        for el in [*(b.get("elements") or []), *([b["accessory"]] if "accessory" in b else [])]:
            if isinstance(el, dict) and el.get("action_id") == action_id:
                return el
    return None


def input_values(view: dict[str, Any], **changes: str) -> dict[str, Any]:
    """``state.values`` of a modal as Slack sends it: initial values, with ``changes`` typed in."""
    values: dict[str, Any] = {}
    for b in view["blocks"]:
        if b.get("type") != "input":
            continue
        el = b["element"]
        if el["type"] == "conversations_select":
            picked = changes.get(b["block_id"], el.get("initial_conversation"))
            values[b["block_id"]] = {el["action_id"]: {"type": "conversations_select", "selected_conversation": picked}}
            continue
        if el["type"] == "radio_buttons":
            chosen = el.get("initial_option")
            if b["block_id"] in changes:
                chosen = next(o for o in el["options"] if o["value"] == changes[b["block_id"]])
            state: dict[str, Any] = {"type": "radio_buttons", "selected_option": chosen}
        else:
            state = {"type": "plain_text_input", "value": changes.get(b["block_id"], el.get("initial_value"))}
        values[b["block_id"]] = {el["action_id"]: state}
    return values


# --- the driver ---------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: str
    seconds: float

    def json(self) -> dict[str, Any]:
        return json.loads(self.body) if self.body else {}


@dataclass
class Driver:
    """Sends Slack's requests to the app: ``http_url`` set = over HTTP, else async_dispatch."""

    app: AsyncApp
    slack: FakeSlack
    http_url: str | None = None
    secret: str = SECRET
    sent: list[str] = field(default_factory=list)

    async def send(self, body: str, *, content_type: str, retry_num: int | None = None, **sig: Any) -> Reply:
        headers = signed_headers(body, content_type=content_type, secret=self.secret, retry_num=retry_num, **sig)
        start = time.perf_counter()
        if self.http_url:
            async with (
                aiohttp.ClientSession() as session,
                session.post(self.http_url, data=body.encode(), headers=headers) as resp,
            ):
                return Reply(resp.status, await resp.text(), time.perf_counter() - start)
        resp = await self.app.async_dispatch(AsyncBoltRequest(body=body, headers={k: [v] for k, v in headers.items()}))
        return Reply(resp.status, resp.body, time.perf_counter() - start)

    async def command(
        self, text: str, *, user: str, channel: str = CHANNEL, trigger: str | None = None, retry_num: int | None = None
    ) -> Reply:
        f = slash_fields(text, user=user, channel=channel, response_url=self.slack.response_url(user, channel), trigger=trigger)
        return await self.send(urlencode(f), content_type="application/x-www-form-urlencoded", retry_num=retry_num)

    async def interact(self, payload: dict[str, Any]) -> Reply:
        return await self.send(f"payload={quote(json.dumps(payload))}", content_type="application/x-www-form-urlencoded")

    async def click(
        self,
        message: dict[str, Any],
        action_id: str,
        *,
        user: str,
        channel: str = CHANNEL,
        option: int | None = None,
        trigger: str | None = None,
    ) -> Reply:
        """Click a button (or pick ``option`` in a select) on a message as the fake shows it.
        An ephemeral message (one without a ts: Slack gives it none) is clicked as Slack sends
        such a click, without the message."""
        el = find_element(message["blocks"], action_id)
        assert el is not None, f"no {action_id} in {message.get('text')!r}"
        action = {"action_id": action_id, "block_id": "b", "type": el["type"]}
        if el["type"] == "button":
            action.update(value=el.get("value"), text=el["text"])
        else:
            action["selected_option"] = el["options"][option or 0]
        payload = block_actions(
            action,
            user=user,
            channel=channel,
            message=message if "ts" in message else None,
            response_url=self.slack.response_url(user, channel),
            trigger=trigger,
        )
        return await self.interact(payload)

    async def submit(self, view: dict[str, Any], *, user: str, **changes: str) -> Reply:
        return await self.interact(view_submission(view, input_values(view, **changes), user=user))

    async def event(self, event: dict[str, Any], *, event_id: str | None = None, retry_num: int | None = None) -> Reply:
        body = json.dumps(event_callback(event, event_id=event_id))
        return await self.send(body, content_type="application/json", retry_num=retry_num)


@dataclass
class Bot:
    app: AsyncApp
    runner: Runner
    log: EventLog
    driver: Driver
    slack: FakeSlack

    @property
    def surface(self) -> Surface:
        return surface_of(self.app)

    async def close(self) -> None:
        await self.runner.close()
        await aclose(self.app)

    async def settle(self) -> None:
        """Wait until Bolt's listener tasks are done and their messages have reached the fake."""
        await listeners_idle()
        await self.surface.notifier.drain()
        await listeners_idle()


async def listeners_idle(timeout: float = 10.0) -> None:
    """Await the listener tasks Bolt runs after each ack (it keeps no handle to them)."""

    def busy() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if not t.done() and "run_ack_function_asynchronously" in repr(t.get_coro())]

    async def wait() -> None:
        while tasks := busy():
            await asyncio.gather(*tasks, return_exceptions=True)

    await asyncio.wait_for(wait(), timeout)


def settings_for(slack: FakeSlack, **extra: Any) -> Settings:
    """The bot's settings on the fake Slack (``dataset_dir=`` names the team's dataset folder)."""
    return Settings(slack_bot_token=slack.bot_token, slack_signing_secret=SECRET, slack_api_url=slack.base_url, **extra)


def fast_runner(runs_dir: Path, *, policy: Policy | None = None, ask_evaluation: bool = False) -> RunnerConfig:
    """The runner's configuration in tests: fast polling. ``ask_evaluation``: as `sftbot serve`
    runs it, asking how to judge candidates when the instruction does not say (the evaluator
    folder is left for create_app to choose)."""
    return RunnerConfig(runs_dir=runs_dir, poll_seconds=0.01, policy=policy or Policy(), ask_evaluation=ask_evaluation)


async def make_bot(
    slack: FakeSlack, db: Database, platform: Any, config: RunnerConfig, *, live_interval: float = 0.0, **settings: Any
) -> Bot:
    """The real app on a real runner (``config``, see :func:`fast_runner`), talking to the fake Slack;
    what `sftbot doctor` saved in the data dir is read as serve reads it."""
    bot_settings = settings_for(slack, **settings)
    if not config.live_merge_bases:
        config = config.model_copy(update={"live_merge_bases": live_merge_bases(bot_settings.data_dir)})
    runner = Runner(db, platform, config)
    log = EventLog()
    runner.bus.subscribe(log)
    engine = Engine(settings=bot_settings, db=db, platform=platform, runner=runner, bus=runner.bus)
    app = create_app(engine, bot_settings, live_interval=live_interval, post_interval=0.0, retry_jitter=0.0)
    return Bot(app=app, runner=runner, log=log, driver=Driver(app, slack), slack=slack)


MakeBot = Callable[..., Awaitable[Bot]]


# --- reading the thread as a person does -----------------------------------------------------


def text_of(msg: dict[str, Any]) -> str:
    return str(msg["rendered"])


async def root_of(slack: FakeSlack, number: int = 1) -> dict[str, Any]:
    return await slack.wait_for(lambda: next((m for m in slack.roots(CHANNEL) if f"SFT run #{number} " in text_of(m)), None))


async def in_thread(slack: FakeSlack, root: dict[str, Any], pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    return await slack.wait_for(lambda: next((m for m in slack.thread(CHANNEL, root["ts"])[1:] if pred(m)), None))


def has(*fragments: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: all(f in text_of(m) for f in fragments)


def buttons(message: dict[str, Any]) -> list[str]:
    return [
        el["text"]["text"]
        for blk in message["blocks"]
        if blk["type"] == "actions"
        for el in blk["elements"]
        if el["type"] == "button"
    ]


async def press(bot: Bot, message: dict[str, Any], label: str, *, user: str) -> None:
    """Click the button labelled ``label`` (several buttons share an action id)."""
    el = next(
        el
        for blk in message["blocks"]
        if blk["type"] == "actions"
        for el in blk["elements"]
        if el["type"] == "button" and el["text"]["text"] == label
    )
    action = {"action_id": el["action_id"], "block_id": "b", "type": "button", "value": el["value"], "text": el["text"]}
    payload = block_actions(
        action, user=user, channel=CHANNEL, message=message, response_url=bot.slack.response_url(user, CHANNEL)
    )
    assert (await bot.driver.interact(payload)).status == 200
