"""`sftbot doctor` against the fake Fireworks and the fake Slack, as a real process: every
free-tier check is printed with its observation and saved in the data dir; a base whose addon
deployments the account refuses is reported, and the bot reads that back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from bot.doctor_results import live_merge_bases
from bot.slack_scopes import MANIFEST_BOT_SCOPES
from bot.testing.fireworks import FakeFireworks
from bot.testing.slack import FakeSlack
from tests.bot.cli_support import fireworks_env, sftbot
from tests.paths import ROOT

FREE_TIER = [
    ("fireworks", "account"),
    ("fireworks", "catalogue"),
    ("fireworks", "deployments of qwen3-8b"),
    ("fireworks", "adapter list filter"),
    ("fireworks", "past fine-tuning jobs"),
    ("fireworks", "past evaluation jobs"),
    ("slack", "auth.test"),
    ("slack", "scopes"),
    ("slack", "socket mode"),
    ("slack", "channel C0TEAM"),
    ("slack", "channel C0OTHER"),
    ("slack", "user groups"),
]


def doctor_env(fake: FakeFireworks, slack: FakeSlack) -> dict[str, str]:
    return fireworks_env(
        fake,
        SLACK_BOT_TOKEN=slack.bot_token,
        SLACK_APP_TOKEN=slack.app_token,
        SLACK_API_URL=slack.base_url,
        SFTBOT_CHANNELS="C0TEAM,C0OTHER",
    )


async def doctor_json(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = await sftbot("doctor", "--json", *args, env=env)
    assert "Traceback" not in err, err
    return code, json.loads(out)


async def test_doctor_json_prints_every_free_tier_check_with_its_observation(fake: FakeFireworks, fake_slack: FakeSlack) -> None:
    fake_slack.granted_scopes.remove("usergroups:read")  # an app installed before the manifest asked for it
    fake_slack.bot_channels = {"C0TEAM"}
    code, found = await doctor_json(doctor_env(fake, fake_slack))
    checks = {(c["area"], c["name"]): c for c in found["checks"]}
    assert list(checks) == FREE_TIER
    assert all(c["observed"] for c in checks.values())
    assert checks["fireworks", "account"]["observed"] == "account test-acct: state READY, suspendState UNSUSPENDED"
    assert "qwen3-4b" in checks["fireworks", "catalogue"]["facts"]["disagree"]  # deprecated-tunable only
    assert checks["fireworks", "deployments of qwen3-8b"]["ok"] is True
    assert checks["slack", "scopes"]["observed"] == "missing: usergroups:read" and checks["slack", "scopes"]["ok"] is False
    assert checks["slack", "channel C0OTHER"]["ok"] is False and checks["slack", "channel C0TEAM"]["ok"] is True
    assert checks["slack", "user groups"]["observed"] == "usergroups.list: missing_scope"
    assert checks["slack", "socket mode"]["observed"] == "connected"
    assert code == 1  # a check failed
    saved = json.loads((Path(os.environ["SFTBOT_DATA_DIR"]) / "doctor.json").read_text())
    assert saved["checks"] == found["checks"] and saved["tier"] == "free"
    assert not fake.calls("POST", r"/deployments$") or all(
        r.query.get("validateOnly") == "true" for r in fake.calls("POST", r"/deployments$")
    )
    assert fake.api_key not in json.dumps(found) and fake_slack.bot_token not in json.dumps(found)


async def test_doctor_reports_refused_addon_deployments_and_the_bot_reads_it_back(
    fake: FakeFireworks, fake_slack: FakeSlack
) -> None:
    fake.addons_refused = {"accounts/fireworks/models/qwen3-8b"}
    _, found = await doctor_json(doctor_env(fake, fake_slack), "--model", "qwen3-8b")
    (check,) = [c for c in found["checks"] if c["name"] == "deployments of qwen3-8b"]
    assert check["ok"] is False and "addons are not supported for this model" in check["observed"]
    assert "by live merge" in check["action"]
    assert live_merge_bases(Path(os.environ["SFTBOT_DATA_DIR"])) == {"qwen3-8b"}


async def test_paid_tiers_ask_first_and_name_the_amount(fake: FakeFireworks, fake_slack: FakeSlack) -> None:
    code, out, _ = await sftbot("doctor", "--tier", "cents", env=doctor_env(fake, fake_slack))
    assert code == 3 and "under $0.01" in out and "Not run: nothing was spent." in out
    code, out, _ = await sftbot("doctor", "--tier", "gpu", env=doctor_env(fake, fake_slack))
    assert code == 3 and "about $4" in out
    assert fake.calls("POST") == []


def test_the_scopes_doctor_compares_are_the_manifests() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert tuple(manifest["oauth_config"]["scopes"]["bot"]) == MANIFEST_BOT_SCOPES


async def test_the_cents_tier_trains_20_rows_and_cancels_a_second_job(fake: FakeFireworks, fake_slack: FakeSlack) -> None:
    fake.job_seconds = 0.3
    code, found = await doctor_json(doctor_env(fake, fake_slack), "--tier", "cents", "--yes")
    checks = {c["name"]: c for c in found["checks"]}
    job = checks["a 20-row job on qwen3-4b-instruct-2507"]  # the smallest tunable base the fake lists
    assert job["ok"] is True and job["observed"].startswith("JOB_STATE_COMPLETED after") and "$" in job["observed"]
    assert checks["metrics keys"]["ok"] is True and "train/loss" in checks["metrics keys"]["observed"]
    assert "JOB_STATE_CANCELLED" in checks["cancel of a pending job"]["observed"]
    assert code == 0 and len(fake.jobs) == 2 and len(fake.cancels) == 1
    assert sum(fake.create_counts("datasets").values()) == 1
