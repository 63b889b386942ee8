"""manifest.yml is a valid Slack app manifest and declares everything the code handles:
the command, every subscribed event has a listener (and vice versa), each Web API method
the bot calls has its scope, and every button/select/modal id answers 200 (not 404)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.testing.memory_platform import MemoryPlatform
from bot.testing.slack import FakeSlack
from bot.testing.slack_app import block_actions, fast_runner, make_bot, slash_fields
from handlers.listeners import COMMAND, EVENTS
from handlers.render import action_ids
from handlers.render.modals import CALLBACK_ID
from pipeline.store.db import Database
from tests.paths import DATASETS, MANIFEST_SCHEMA, ROOT

SCHEMA = MANIFEST_SCHEMA
# Web API methods the bot calls, with the bot scope each needs (reference/slack.md §4).
METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "users.info": "users:read",
    "usergroups.users.list": "usergroups:read",
    "conversations.members": "channels:read",  # and groups:read for private channels
}
EVENT_SCOPES = {"app_mention": "app_mentions:read", "message.im": "im:history"}


def manifest() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))


def test_manifest_is_valid_against_slacks_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(manifest()), key=str)
    assert not errors, [e.message for e in errors]


def test_manifest_declares_what_the_code_handles() -> None:
    m = manifest()
    assert [c["command"] for c in m["features"]["slash_commands"]] == [COMMAND]
    subscribed = set(m["settings"]["event_subscriptions"]["bot_events"])
    # message.im / message.channels etc. all arrive as the "message" event type.
    assert {e.split(".")[0] for e in subscribed} == set(EVENTS)
    scopes = set(m["oauth_config"]["scopes"]["bot"])
    assert "commands" in scopes and set(METHOD_SCOPES.values()) <= scopes and "groups:read" in scopes
    assert {EVENT_SCOPES[e] for e in subscribed if e in EVENT_SCOPES} <= scopes
    assert m["settings"]["interactivity"]["is_enabled"] is True  # buttons, selects, the modal
    assert m["settings"]["socket_mode_enabled"] is True and "request_url" not in m["settings"]["interactivity"]
    assert m["features"]["app_home"]["home_tab_enabled"] is True


async def test_every_interactive_id_and_event_has_a_listener(fake_slack: FakeSlack, db: Database, tmp_path: Path) -> None:
    bot = await make_bot(fake_slack, db, MemoryPlatform(), fast_runner(tmp_path / "runs"), dataset_dir=DATASETS)
    try:

        async def status(body: dict[str, Any]) -> int:
            return (await bot.app.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))).status

        for action_id in action_ids.ACTION_IDS:
            action = {"action_id": action_id, "block_id": "x", "type": "button", "value": json.dumps({"run": "nope"})}
            body = block_actions(
                action, user="U0X", channel="C0X", message=None, response_url=fake_slack.response_url("U0X", "C0X")
            )
            assert await status(body) == 200, action_id
        view = {
            "type": "view_submission",
            "user": {"id": "U0X"},
            "team": {"id": "T111"},
            "api_app_id": "A111",
            "view": {"id": "V1", "type": "modal", "callback_id": CALLBACK_ID, "private_metadata": "{}", "state": {"values": {}}},
        }
        assert await status(view) == 200
        assert (
            await status(
                dict(slash_fields("help", user="U0X", channel="C0X", response_url=fake_slack.response_url("U0X", "C0X")))
            )
            == 200
        )
        for event in (
            {**fake_slack.user_says("C0X", "<@UBOT> help", user="U0X"), "type": "app_mention"},
            {"type": "message", "subtype": "message_changed", "channel": "D0X", "ts": "1.2"},
            {"type": "app_home_opened", "user": "U0X", "channel": "D0X", "tab": "messages"},
        ):
            body = {
                "type": "event_callback",
                "team_id": "T111",
                "api_app_id": "A111",
                "event_id": f"Ev{event['type']}",
                "event": event,
                "authorizations": [{"team_id": "T111", "user_id": "UBOT", "is_bot": True}],
            }
            assert await status(body) == 200, event["type"]
        await bot.settle()
    finally:
        await bot.close()


@pytest.mark.parametrize("action_id", action_ids.ACTION_IDS)
def test_action_ids_are_namespaced(action_id: str) -> None:
    assert action_id.startswith("sft_") and len(action_id) <= 255
