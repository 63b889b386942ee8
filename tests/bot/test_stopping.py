"""The first Ctrl-C asks a command to stop cleanly; a second one forces it out at once, after
the quick force actions (killing trainers), with the exit code of the first signal."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from tests.bot.cli_support import Cli, clean_env

# A command whose clean-up hangs after the first Ctrl-C (a worker that never answers).
HANGS = """
import asyncio
from bot.stopping import Stop

async def main() -> None:
    async with Stop() as stop:
        stop.on_force(lambda: print("force action ran", flush=True))
        print("ready", flush=True)
        await stop.event.wait()
        print("cleaning up", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_second_ctrl_c_forces_a_stuck_stop(tmp_path: Path) -> None:
    script = tmp_path / "hangs.py"
    script.write_text(HANGS, encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env=clean_env(PYTHONPATH=str(Path(__file__).resolve().parents[1])),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    cli = Cli(proc)
    try:
        await cli.line(lambda ln: ln.startswith("ready"), timeout=30)
        cli.signal(signal.SIGINT)
        await cli.line(lambda ln: ln.startswith("cleaning up"), timeout=30)
        assert "stopping after Ctrl-C (Ctrl-C again to force)" in "".join(cli.err)
        cli.signal(signal.SIGINT)
        assert await cli.finish(30) == 130
    finally:
        if proc.returncode is None:
            proc.kill()
    assert "force action ran\n" in cli.out and "sftbot: forced to stop\n" in cli.err
