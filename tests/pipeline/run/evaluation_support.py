"""A platform whose models answer SQL: the evaluation tests of the engine and of Slack share it."""

from __future__ import annotations

import json

from bot.testing.memory_platform import MemoryPlatform
from tests.paths import TEXT2SQL


def sql_platform() -> MemoryPlatform:
    platform = MemoryPlatform()
    for line in TEXT2SQL.read_text().splitlines():
        msgs = json.loads(line)["messages"]
        platform.answers[msgs[-2]["content"]] = msgs[-1]["content"]
    platform.good_lr = 5e-5  # the candidate validation loss ranks LAST answers right
    return platform
