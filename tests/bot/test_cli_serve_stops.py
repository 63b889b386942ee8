"""`sftbot serve` as a real process, against a Slack that refuses its tokens, one it cannot
reach, and one whose WebSocket it cannot open: a wrong token ends it with one line naming the
token; otherwise it logs each failure as one line with back-off, and SIGTERM stops it within
5 s (exit 143) with no traceback anywhere in its output."""

from __future__ import annotations

import signal
import socket
from collections.abc import AsyncIterator

import pytest

from bot.testing.slack import FakeSlack
from bot.testing.slack_app import SECRET
from tests.bot.cli_support import Cli, clean_env, sftbot_process
from tests.bot.local_demo import free_port

STOP_WITHIN = 5.0  # seconds from SIGTERM to exit (issue #24)


def serve_env(slack_api_url: str, tmp: str, *, bot: str, app: str) -> dict[str, str]:
    return clean_env(
        SLACK_BOT_TOKEN=bot,
        SLACK_APP_TOKEN=app,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack_api_url,
        SFTBOT_PLATFORM="local",
        SFTBOT_LOCAL_PORT=str(free_port()),
        SFTBOT_DATA_DIR=tmp,
    )


async def stopped_cleanly(cli: Cli) -> None:
    cli.signal(signal.SIGTERM)
    code = await cli.finish(timeout=STOP_WITHIN)
    assert code == 143, cli.text()
    assert "Traceback" not in cli.text()
    assert any("stopping after SIGTERM" in line for line in cli.err), cli.text()


@pytest.mark.parametrize(
    ("bot", "app", "says"),
    [
        ("xoxb-mistyped", "xapp-test-token", "SLACK_BOT_TOKEN was refused by Slack (invalid_auth): use the Bot User OAuth Token"),
        ("xoxb-test-token", "xapp-mistyped", "SLACK_APP_TOKEN was refused by Slack (invalid_auth): use an app-level token"),
        ("xapp-test-token", "xoxb-test-token", "SLACK_BOT_TOKEN and SLACK_APP_TOKEN are swapped"),
    ],
)
async def test_a_wrong_token_ends_serve_with_one_line_naming_it(
    fake_slack: FakeSlack, tmp_path: object, bot: str, app: str, says: str
) -> None:
    async with sftbot_process("serve", env=serve_env(fake_slack.base_url, str(tmp_path), bot=bot, app=app)) as cli:
        code = await cli.finish(timeout=60)
    assert code == 1, cli.text()
    assert cli.err[-1].startswith(f"sftbot: {says}"), cli.text()
    assert "Traceback" not in cli.text() and bot not in cli.text() and app not in cli.text()  # tokens never echoed
    # Nothing was started: the database is not even opened before the tokens are checked.
    assert not any("resumed" in line or "database:" in line for line in cli.err)


@pytest.fixture
async def closed_port() -> AsyncIterator[int]:
    """A port nothing listens on: connections are refused at once."""
    yield free_port()


@pytest.fixture
async def black_hole() -> AsyncIterator[int]:
    """A port that accepts connections and never answers (a proxy or a firewall that drops)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


async def test_serve_with_slack_unreachable_retries_in_one_line_and_stops_on_sigterm(closed_port: int, tmp_path: object) -> None:
    env = serve_env(f"http://127.0.0.1:{closed_port}/api/", str(tmp_path), bot="xoxb-test-token", app="xapp-test-token")
    async with sftbot_process("serve", env=env) as cli:
        first = await cli.line(lambda ln: "Slack is unreachable" in ln, stream="err")
        assert "checking SLACK_BOT_TOKEN again in 1 s" in first
        await cli.line(lambda ln: "checking SLACK_BOT_TOKEN again in 2 s" in ln, stream="err")  # back-off
        await stopped_cleanly(cli)
    assert len([ln for ln in cli.err if "unreachable" in ln]) >= 2  # one line per attempt, nothing else


async def test_serve_waiting_on_a_slack_that_never_answers_stops_on_sigterm(black_hole: int, tmp_path: object) -> None:
    env = serve_env(f"http://127.0.0.1:{black_hole}/api/", str(tmp_path), bot="xoxb-test-token", app="xapp-test-token")
    async with sftbot_process("serve", env=env) as cli:
        await cli.line(lambda ln: "settings: socket mode" in ln, stream="err")  # then auth.test hangs
        await stopped_cleanly(cli)


async def test_serve_whose_socket_mode_cannot_connect_stops_on_sigterm(fake_slack: FakeSlack, tmp_path: object) -> None:
    fake_slack.refuse_sockets = True
    env = serve_env(fake_slack.base_url, str(tmp_path), bot=fake_slack.bot_token, app=fake_slack.app_token)
    async with sftbot_process("serve", env=env) as cli:
        await fake_slack.wait_for(lambda: fake_slack.calls_to("socket_refused"), timeout=60)
        failed = await cli.line(lambda ln: "Failed to connect" in ln, stream="err", timeout=60)
        assert "403" in failed  # the refusal, said in the same line
        await stopped_cleanly(cli)
    said = "".join(cli.err)
    for checked in ("settings: socket mode", "Slack: bot token accepted (@sftbot", "app-level token accepted"):
        assert checked in said, said
    for started in ("database: ", "platform: local", "resumed 0 unfinished run(s)"):
        assert started in said, said
    assert "Socket Mode: connected" not in said


async def test_serve_in_http_mode_logs_what_it_checked_and_stops_on_sigterm(fake_slack: FakeSlack, tmp_path: object) -> None:
    env = serve_env(fake_slack.base_url, str(tmp_path), bot=fake_slack.bot_token, app="")
    env.update(SFTBOT_MODE="http", SFTBOT_HTTP_PORT=str(free_port()))
    async with sftbot_process("serve", env=env) as cli:
        await cli.line(lambda ln: "HTTP: listening on :" in ln, stream="err", timeout=60)
        assert not fake_slack.calls_to("apps.connections.open")  # HTTP mode needs no app-level token
        await stopped_cleanly(cli)
    assert any("stopped; unfinished runs go on when sftbot serve starts again" in ln for ln in cli.err)
