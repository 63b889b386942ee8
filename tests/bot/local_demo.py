"""The tiny-model demo run the local-platform tests share (tests/conftest.py: ``local_demo_run``).

It is the real `sftbot demo` code path (bot/demo.py) with the bundled dataset, a generated
evaluator, two candidates, the final run, deployment and the report; only the base model is
the tiny test Llama, so it takes seconds instead of minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from bot.settings import Settings

TINY_DEMO = "dataset=sftbot:demo model=tiny-llama hp_samples=24 epochs=1 rank=8 lr=5e-3,1e-3 eval=generate eval_examples=4"


@dataclass
class DemoRun:
    data_dir: Path
    port: int
    number: int
    report: Path
    output: str  # what the demo printed

    def settings(self, **changes: object) -> Settings:
        values: dict[str, object] = {"data_dir": self.data_dir, "local_port": self.port, **changes}
        return Settings(**values)  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("SFTBOT_", "SLACK_", "FIREWORKS_"))}
        return {**keep, "SFTBOT_DATA_DIR": str(self.data_dir), "SFTBOT_LOCAL_PORT": str(self.port)}

    def snippet(self) -> str:
        """The Python code under "Use it" in the report, verbatim."""
        text = self.report.read_text(encoding="utf-8")
        match = re.search(r"### Use it\n\n```python\n(.*?)\n```", text, re.S)
        assert match, "the report has no snippet"
        return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_tiny_demo(root: Path) -> DemoRun:
    from bot.demo import run_demo

    port = free_port()
    settings = Settings(data_dir=root / "data", local_port=port)  # type: ignore[call-arg]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = asyncio.run(run_demo(settings, yes=True, instruction=TINY_DEMO, batch_size=16))
    printed = out.getvalue()
    assert code == 0, printed[-3000:]
    number = int(re.search(r"Run #(\d+) ", printed).group(1))  # type: ignore[union-attr]
    report = Path(re.search(r"Report:\s+(\S+)", printed).group(1))  # type: ignore[union-attr]
    return DemoRun(data_dir=root / "data", port=port, number=number, report=report, output=printed)
