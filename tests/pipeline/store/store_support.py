"""Another process holding the database's write lock, as a backup tool or a second bot would."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


def hold_write_lock(path: Path, seconds: float, held: threading.Event) -> None:
    """What a backup or `sqlite3 sftbot.sqlite3` in a shell does: take the write lock and keep it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    held.set()
    threading.Event().wait(seconds)
    conn.execute("COMMIT")
    conn.close()
