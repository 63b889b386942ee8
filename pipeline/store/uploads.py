"""Reads and writes of the uploads table, and where a dataset a run names was given.

The rules (who may use which data, the quotas, how long an unused upload is kept) are
``pipeline.dataset.access``'s; this module only answers its questions from the store.
"""

from __future__ import annotations

import contextlib
import json
import time

from pipeline.dataset.access import UPLOAD_PREFIX, LocalFiles, Origin, expired, kind_of
from pipeline.store.db import Database

_UNFINISHED = "phase NOT IN ('succeeded','failed','cancelled')"


async def reserve(db: Database, name: str, *, channel: str, uploader: str, size: int) -> None:
    """Record an upload before its bytes arrive (so two at once cannot both pass a quota)."""
    now = time.time()
    async with db.write() as tx:
        await tx.execute(
            "INSERT OR REPLACE INTO uploads(name, channel, uploader, bytes, created_at, used_at) VALUES (?,?,?,?,?,?)",
            (name, channel, uploader, size, now, now),
        )


async def saved(db: Database, name: str, size: int) -> None:
    async with db.write() as tx:
        await tx.execute("UPDATE uploads SET bytes=? WHERE name=?", (size, name))


async def forget(db: Database, names: list[str]) -> None:
    if not names:
        return
    async with db.write() as tx:
        await tx.execute(f"DELETE FROM uploads WHERE name IN ({','.join('?' * len(names))})", tuple(names))


async def used(db: Database, refs: list[str]) -> None:
    """Runs named these uploads now: their retention starts again."""
    names = [r.strip().removeprefix(UPLOAD_PREFIX) for r in refs if kind_of(r) == "upload"]
    if names:
        async with db.write() as tx:
            await tx.execute(f"UPDATE uploads SET used_at=? WHERE name IN ({','.join('?' * len(names))})", (time.time(), *names))


async def usage(db: Database, uploader: str) -> tuple[int, int]:
    """Bytes kept for ``uploader``, and for everyone."""
    row = await db.fetchone(
        "SELECT COALESCE(SUM(CASE WHEN uploader=? THEN bytes ELSE 0 END), 0), COALESCE(SUM(bytes), 0) FROM uploads",
        (uploader,),
    )
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)


async def all_uploads(db: Database) -> list[tuple[str, float]]:
    """Every recorded upload: (name, last used)."""
    return [(str(r[0]), float(r[1])) for r in await db.fetchall("SELECT name, used_at FROM uploads")]


async def named_by_unfinished_runs(db: Database) -> set[str]:
    """Datasets (upload:… and others) that a run still going names."""
    rows = await db.fetchall(f"SELECT spec_json FROM runs WHERE {_UNFINISHED}")
    found: set[str] = set()
    for (spec_json,) in rows:
        spec = json.loads(spec_json)
        found.update(str(spec[k]) for k in ("dataset", "eval_dataset") if spec.get(k))
    return found


async def origin(db: Database, ref: str) -> Origin | None:
    """Where the dataset ``ref`` was given: the conversation an upload was attached in, or the
    channel of the first Slack run that named a platform dataset (or created it); None when
    the bot knows nothing of it."""
    text = ref.strip()
    kind = kind_of(text)
    if kind == "upload":
        row = await db.fetchone("SELECT channel, uploader FROM uploads WHERE name=?", (text.removeprefix(UPLOAD_PREFIX),))
        return Origin(channel=str(row[0]), uploader=str(row[1])) if row is not None else None
    if kind != "platform":
        return None
    row = await db.fetchone(
        "SELECT channel FROM runs WHERE channel IS NOT NULL AND (json_extract(spec_json, '$.dataset')=? "
        "OR json_extract(spec_json, '$.eval_dataset')=? OR id IN (SELECT run_id FROM resources WHERE kind='dataset' AND name=?)) "
        "ORDER BY created_at LIMIT 1",
        (text, text, text),
    )
    return Origin(channel=str(row[0])) if row is not None else None


async def sweep(db: Database, files: LocalFiles, *, now: float | None = None) -> list[str]:
    """Delete the uploads whose time is up (``pipeline.access.expired``), and files in the uploads
    folder the store does not know (a crash mid-download, or saved before uploads were recorded)
    once they are as old; returns the names deleted."""
    folder = files.uploads_dir
    if folder is None:
        return []
    now = time.time() if now is None else now
    known = await all_uploads(db)
    gone = expired(known, in_use=await named_by_unfinished_runs(db), now=now, files=files)
    names = {name for name, _ in known}
    with contextlib.suppress(FileNotFoundError):
        for path in folder.iterdir():
            if path.name not in names and path.is_file() and path.stat().st_mtime < now - files.upload_retention_seconds:
                gone.append(path.name)
    for name in gone:
        (folder / name).unlink(missing_ok=True)
    await forget(db, [n for n in gone if n in names])
    return gone
