"""Preflight on the command line, as a real process: each request that cannot start ends in one
line on stderr with the fix, exit 1, before any plan is printed or any run number is spent."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from bot.testing.fireworks import FakeFireworks
from tests.bot.cli_support import clean_env, fireworks_env, sftbot
from tests.bot.local_demo import free_port
from tests.paths import TEXT2SQL


def local_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(SFTBOT_DATA_DIR=str(tmp_path / "data"), SFTBOT_LOCAL_PORT=str(free_port()), **extra)


async def one_line(*args: str, env: dict[str, str], said: str) -> str:
    code, out, err = await sftbot(*args, env=env)
    assert code == 1, out + err
    assert out == "" and "Traceback" not in err  # nothing planned, nothing started
    (line,) = err.splitlines()
    assert said in line, line
    return line


async def no_runs(env: dict[str, str]) -> None:
    code, out, err = await sftbot("runs", "--json", env=env)
    assert code == 0, err
    assert '"number"' not in out


@pytest.mark.parametrize("command", ["plan", "run"])
async def test_a_model_the_local_platform_cannot_tune_lists_the_ones_it_can(tmp_path: Path, command: str) -> None:
    env = local_env(tmp_path)
    line = await one_line(command, "dataset=sftbot:demo model=qwen3-8b", "--platform", "local", env=env, said="qwen3-8b")
    assert line == (
        "sftbot: qwen3-8b is not a model local can fine-tune: the models it can fine-tune: smollm2-135m, tiny-llama. "
        "Change model= and start again"
    )
    await no_runs(env)


async def test_a_typo_gets_did_you_mean(tmp_path: Path) -> None:
    await one_line(
        "plan", "dataset=sftbot:demo model=smolm2-135m", "--platform", "local", env=local_env(tmp_path),
        said="smolm2-135m is not a model local can fine-tune: did you mean smollm2-135m?",
    )  # fmt: skip


async def test_a_taken_serving_port_is_said_before_training(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(SFTBOT_DATA_DIR=str(tmp_path / "data"), SFTBOT_LOCAL_PORT=str(port))
        for command in ("plan", "run"):
            await one_line(
                command, "dataset=sftbot:demo model=smollm2-135m", "--platform", "local", env=env,
                said=f"port 127.0.0.1:{port} is in use by another program",
            )  # fmt: skip
        await no_runs(env)
        # deploy=no serves nothing: the port is not this run's business
        code, out, err = await sftbot("plan", "dataset=sftbot:demo model=smollm2-135m deploy=no", "--platform", "local", env=env)
        assert code == 0 and "Plan" in out, err


async def test_a_refused_key_and_another_account_are_one_line(fake: FakeFireworks) -> None:
    instruction = f"dataset={TEXT2SQL} model=qwen3-8b"
    for command in ("plan", "run"):
        await one_line(
            command, instruction, env=fireworks_env(fake, FIREWORKS_API_KEY="fw-wrong-key-999"),
            said="Fireworks refused FIREWORKS_API_KEY (HTTP 401)",
        )  # fmt: skip
        await one_line(
            command, instruction, env=fireworks_env(fake, FIREWORKS_ACCOUNT_ID="not-mine"),
            said="FIREWORKS_ACCOUNT_ID not-mine is not this API key's account (HTTP 404",
        )  # fmt: skip
    assert not fake.calls("POST")
    await no_runs(fireworks_env(fake))


async def test_a_fireworks_model_typo_names_the_live_catalogue(fake: FakeFireworks) -> None:
    await one_line(
        "plan", f"dataset={TEXT2SQL} model=qwen3-8bb", env=fireworks_env(fake),
        said="qwen3-8bb is not a model fireworks can fine-tune: did you mean qwen3-8b?",
    )  # fmt: skip


async def test_an_account_id_without_a_key_is_one_line(tmp_path: Path) -> None:
    await one_line(
        "plan", "dataset=sftbot:demo model=smollm2-135m", env=local_env(tmp_path, FIREWORKS_ACCOUNT_ID="acme"),
        said="FIREWORKS_ACCOUNT_ID is set but FIREWORKS_API_KEY is not",
    )  # fmt: skip


@pytest.mark.parametrize("where", ["file", "proc"])
@pytest.mark.parametrize(
    "args",
    [("runs",), ("spend",), ("models",), ("plan", "dataset=sftbot:demo model=smollm2-135m"), ("run", "x"), ("cancel", "1")],
)
async def test_an_unusable_data_dir_is_one_line_on_every_command(tmp_path: Path, where: str, args: tuple[str, ...]) -> None:
    data = tmp_path / "a-file" if where == "file" else Path(f"/proc/{os.getpid()}/sftbot")
    if where == "file":
        data.write_text("not a folder")
    env = clean_env(SFTBOT_DATA_DIR=str(data), SFTBOT_PLATFORM="local")
    await one_line(*args, env=env, said=f"sftbot: SFTBOT_DATA_DIR {data} cannot be used (")
