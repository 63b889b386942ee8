"""`sftbot run` on this machine with the tiny test model, as a real process in a pipe: ShareGPT
and Alpaca files train once converted, the output has one line per change and no progress
bars; Ctrl-C stops the trainer and leaves the run resumable, `resume` (keeping --yes) starts
the job again, SIGTERM stops it too, and `cancel` ends it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

pytestmark = pytest.mark.local
pytest.importorskip("torch")
pytest.importorskip("peft")

from pipeline.dataset.demo_data import generate  # noqa: E402
from tests.bot.cli_support import CONTROL, clean_env, repeated, sftbot, sftbot_process  # noqa: E402
from tests.bot.local_demo import free_port  # noqa: E402

ROLE_TO_FROM = {"system": "system", "user": "human", "assistant": "gpt"}


def as_sharegpt(row: dict[str, list[dict[str, str]]]) -> dict[str, object]:
    return {"conversations": [{"from": ROLE_TO_FROM[m["role"]], "value": m["content"]} for m in row["messages"]]}


def as_alpaca(row: dict[str, list[dict[str, str]]]) -> dict[str, object]:
    system, user, assistant = row["messages"]
    return {
        "system": system["content"],
        "instruction": "Extract the facts as JSON.",
        "input": user["content"],
        "output": assistant["content"],
    }


def local_env(tmp_path: Path) -> dict[str, str]:
    return clean_env(SFTBOT_DATA_DIR=str(tmp_path / "data"), SFTBOT_LOCAL_PORT=str(free_port()))


def dataset(tmp_path: Path, name: str, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["sharegpt", "alpaca"])
async def test_a_sharegpt_or_alpaca_file_trains_on_this_machine_once_converted(tmp_path: Path, fmt: str) -> None:
    convert = as_sharegpt if fmt == "sharegpt" else as_alpaca
    data = dataset(tmp_path, fmt, [convert(r) for r in generate(n=24, seed=5)])
    instruction = f"dataset={data} model=tiny-llama candidates=8:5e-3 epochs=1 final=no deploy=no eval=loss"
    code, out, err = await sftbot("run", instruction, "--yes", env=local_env(tmp_path), timeout=600)
    assert code == 0, out + err
    assert f"The data will be converted before training: each {'ShareGPT' if fmt == 'sharegpt' else 'Alpaca'}" in out
    assert "[run #1] #1 tiny-llama r8 lr0.005: completed" in out and "Run #1 succeeded." in out
    assert repeated(out) == [] and CONTROL.search(out + err) is None  # a pipe: no redraws, no bars
    trained = next((tmp_path / "data" / "runs").glob("*/converted.jsonl"))
    assert all("messages" in json.loads(line) for line in trained.read_text(encoding="utf-8").splitlines())


def trainer(tmp_path: Path) -> tuple[int, dict[str, object]]:
    """The sweep's one local job: its trainer's pid and its launch record."""
    (launch,) = (tmp_path / "data" / "local" / "jobs").glob("*/launch.json")
    record = json.loads(launch.read_text(encoding="utf-8"))
    return int(record["pid"]), record


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def test_ctrl_c_stops_the_trainer_and_resume_starts_it_again(tmp_path: Path) -> None:
    data = dataset(tmp_path, "contacts", generate(n=200, seed=7))  # 50 epochs of this: minutes, never reached
    instruction = f"dataset={data} model=tiny-llama candidates=8:1e-3 epochs=50 final=no deploy=no eval=loss"
    env = local_env(tmp_path)
    async with sftbot_process("run", instruction, "--yes", env=env) as cli:
        await cli.line(lambda ln: ": running" in ln, timeout=600)
        pid, _ = trainer(tmp_path)
        assert alive(pid)
        cli.signal(signal.SIGINT)
        assert await cli.finish(60) == 130, cli.text()
    assert "Run #1 stopped; `sftbot resume 1` continues it." in "".join(cli.out)
    assert "Traceback" not in cli.text() and not alive(pid)  # the trainer went with the command
    _, record = trainer(tmp_path)
    assert record["state"] == "pending" and "starts again from the beginning" in str(record["message"])

    async with sftbot_process("resume", "1", env=env) as resumed:  # --yes is remembered
        await resumed.line(lambda ln: ": running" in ln, timeout=600)
        again, record = trainer(tmp_path)
        assert again != pid and alive(again) and record["attempts"] == 1  # a stop is not a failed attempt
        resumed.signal(signal.SIGTERM)
        assert await resumed.finish(60) == 143, resumed.text()
    assert "with --yes, as it was started" in "".join(resumed.out) and not alive(again)

    code, out, err = await sftbot("cancel", "1", "--yes", env=env)
    assert code == 0 and "Run #1 cancelled" in out, err
    code, out, _ = await sftbot("wait", "1", env=env)
    assert code == 3
