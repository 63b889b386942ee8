"""The leak an adversarial review found, replayed through the real Bolt app with the strictest
settings: a plain channel member names a server file as the dataset, then supplies an
evaluator that reads the bot's files and raises them. Nothing secret may reach Slack, the
store, a log or a report; each attempt gets one clear line.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from bot.testing.slack import FakeSlack
from bot.testing.slack_app import ALICE, BOB, CHANNEL, MakeBot, has, in_thread, press, root_of
from pipeline.domain.authz import Policy
from pipeline.store import runs
from tests.handlers.slack_support import attach
from tests.paths import TEXT2SQL
from tests.pipeline.run.evaluation_support import sql_platform

SECRETS = {"FIREWORKS_API_KEY": "fw-LEAK-env-0001", "SFTBOT_CANARY": "LEAK-env-0002"}
DOTENV = "SLACK_SIGNING_SECRET=LEAK-dotenv-0003\n"
OTHER_RUN = "LEAK-other-run-0004"
STRICT = Policy(approvers=[BOB], channels=[CHANNEL], allow_self_approval=False)
# Reads everything worth stealing that a server process could reach, and raises it.
THIEF = """
import glob, os
def evaluate(messages, ground_truth=None, **kw):
    loot = []
    for pattern in ("/proc/self/environ", "/proc/1/environ", "{cwd}/.env", "{data}/**/*", "/root/**/.env", "/tmp/**/*"):
        for path in glob.glob(pattern, recursive=True)[:200]:
            try:
                loot.append(open(path, "rb").read(4000).decode("latin-1"))
            except Exception as exc:
                loot.append(type(exc).__name__)
    loot.append(repr(dict(os.environ)))
    raise RuntimeError(" | ".join(loot))
"""


def leaked(text: str) -> list[str]:
    return [s for s in [*SECRETS.values(), "LEAK-dotenv-0003", OTHER_RUN] if s in text]


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    (tmp_path / ".env").write_text(DOTENV)  # the bot's working directory (tests chdir to tmp_path)
    other = tmp_path / "runs" / "0001-deadbeef"
    other.mkdir(parents=True)
    (other / "source.jsonl").write_text(json.dumps({"secret": OTHER_RUN}) + "\n")  # another team's data
    return tmp_path


@pytest.mark.parametrize("ref", ["/proc/self/environ", "../.env", ".env", "/etc/shadow", "runs/0001-deadbeef/source.jsonl"])
async def test_a_server_path_from_slack_is_refused_in_one_line(
    bot_factory: MakeBot, fake_slack: FakeSlack, secrets: Path, ref: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = await bot_factory(policy=STRICT)
    await bot.driver.command(f"run dataset={ref} model=qwen3-8b", user=ALICE)
    await bot.settle()
    answers = fake_slack.ephemerals(ALICE)
    # One line that says what is wrong: a path from Slack, outside the folder, not JSONL, or
    # simply absent from the team's dataset folder (a relative name never reaches the cwd).
    assert len(answers) == 1 and answers[0]["rendered"].startswith("⚠️") and "\n" not in answers[0]["rendered"].strip()
    assert await runs.list_runs(bot.runner.db) == []  # nothing was created
    assert leaked(json.dumps(fake_slack.calls)) == [] and leaked(caplog.text) == []


async def test_a_symlink_in_the_dataset_folder_does_not_lead_out(
    bot_factory: MakeBot, fake_slack: FakeSlack, secrets: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "team-data"
    folder.mkdir()
    (folder / "data.jsonl").symlink_to(tmp_path / ".env")
    bot = await bot_factory(policy=STRICT, dataset_dir=folder)
    await bot.driver.command("run dataset=data.jsonl model=qwen3-8b", user=ALICE)
    await bot.settle()
    answers = fake_slack.ephemerals(ALICE)
    assert len(answers) == 1 and "outside the team's dataset folder" in answers[0]["rendered"]
    assert await runs.list_runs(bot.runner.db) == [] and leaked(json.dumps(fake_slack.calls)) == []


async def test_an_evaluator_that_steals_and_raises_leaks_nothing(
    bot_factory: MakeBot, fake_slack: FakeSlack, secrets: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = await bot_factory(sql_platform(), policy=STRICT, ask_evaluation=True)
    await bot.driver.command(f"run dataset={TEXT2SQL} model=qwen3-8b", user=ALICE)
    root = await root_of(fake_slack)
    question = await in_thread(fake_slack, root, has("needs an answer"))
    await press(bot, question, "Use my evaluator", user=ALICE)
    await in_thread(fake_slack, root, has("Send me your evaluator"))
    thief = THIEF.replace("{cwd}", os.getcwd()).replace("{data}", str(tmp_path))
    await attach(bot, fake_slack, root, "thief.py", thief)
    await in_thread(fake_slack, root, has("needs an answer", "evaluator failed"))  # it raised: asked again
    told = await fake_slack.wait_for(lambda: [e for e in fake_slack.ephemerals(ALICE) if "RuntimeError" in e["rendered"]])
    assert told  # what it raised went only to the person who attached it...
    await bot.settle()
    assert leaked(json.dumps(fake_slack.calls)) == []  # ...and carries nothing of the bot's secrets
    tables = ("runs", "audit_events", "candidates")
    dump = json.dumps([[dict(r) for r in await bot.runner.db.fetchall(f"SELECT * FROM {t}")] for t in tables])
    assert leaked(dump) == [] and leaked(caplog.text) == []
    for path in (tmp_path / "runs").rglob("*"):
        if path.is_file() and "0001-deadbeef" not in str(path):
            assert leaked(path.read_text(errors="replace")) == [], path
