"""Which files on the bot's machine a run may read, and who decides.

From the terminal the person at the keyboard is the operator: any path they can read is
theirs to use. From Slack anyone in a channel can type ``dataset=``, and the bot reads as
its own user (often root in a container): a path there could name ``/proc/self/environ`` or
the bot's ``.env``. So in the Slack bot a local file is only ever one of:

- a file attached in Slack, saved by the bot under its own uploads folder;
- a regular ``.jsonl`` file inside ``SFTBOT_DATASET_DIR`` (only when an admin sets it), with
  symlinks resolved first so none leads out, under a size cap;
- for ``model=``: a model folder or ``.gguf`` file inside ``SFTBOT_MODEL_DIR``.

Anything else that looks like a path is refused with one sentence before a run exists.
Which references are paths is decided by their spelling, never by what exists on disk, so
a platform dataset id can never be mistaken for a local file (or the other way round).

Data also stays where it was given (``origin_refusal``): an attached file is usable only by
runs of the conversation it was attached in, and a platform dataset id by runs of the first
channel whose run named it, checked where the data is used, never by the secrecy of a name.
Datasets and hosted evaluators in another Fireworks account are refused unless an admin
listed that account (``foreign_refusal``). Uploads are bounded: per person and in total, and
deleted once no run has named them for a while (``quota_refusal``, ``expired``).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from pipeline.dataset.demo_data import DEMO_REF, demo_path
from pipeline.domain.fsio import atomic_output
from pipeline.domain.spec import RunSpec, SpecError

UPLOAD_PREFIX = "upload:"  # a file someone attached in Slack, saved in the uploads folder
_SYSTEM = (Path("/proc"), Path("/sys"), Path("/dev"))
_MB = 1024 * 1024

RefKind = Literal["demo", "upload", "path", "platform"]


def kind_of(ref: str) -> RefKind:
    """What a dataset or model reference names, from its spelling alone."""
    text = ref.strip()
    if text == DEMO_REF:
        return "demo"
    if text.startswith(UPLOAD_PREFIX):
        return "upload"
    if text.startswith("accounts/"):
        return "platform"
    if text.startswith(("/", "~", ".")) or "/" in text or "\\" in text or text.lower().endswith((".jsonl", ".json", ".gguf")):
        return "path"
    return "platform"


class LocalFiles(BaseModel):
    """The local files runs may read: ``any`` (the terminal) or ``folders`` (the Slack bot)."""

    mode: Literal["any", "folders"] = "any"
    uploads_dir: Path | None = None  # where the bot saves files attached in Slack
    dataset_dir: Path | None = None  # SFTBOT_DATASET_DIR
    model_dir: Path | None = None  # SFTBOT_MODEL_DIR
    max_dataset_bytes: int = 2048 * _MB
    # Uploads: bytes kept per person and in all (SFTBOT_UPLOAD_QUOTA_MB, SFTBOT_UPLOADS_TOTAL_MB), and
    # how long one no unfinished run names is kept after its last use (SFTBOT_UPLOAD_RETENTION_HOURS).
    upload_quota_bytes: int = 4096 * _MB
    uploads_total_bytes: int = 16384 * _MB
    upload_retention_seconds: float = 24 * 3600.0
    # The bot's Fireworks account, and other accounts whose datasets and evaluators runs may
    # name (SFTBOT_FOREIGN_ACCOUNTS); with no account configured the platform decides.
    account: str | None = None
    foreign_accounts: list[str] = Field(default_factory=list)


def _within(folder: Path, ref: str) -> Path | None:
    """``ref`` resolved (symlinks followed) if it stays inside ``folder``; None otherwise."""
    base = Path(os.path.realpath(folder))
    candidate = Path(ref).expanduser()
    real = Path(os.path.realpath(candidate if candidate.is_absolute() else base / candidate))
    if real != base and base not in real.parents:
        return None
    if any(real == s or s in real.parents for s in _SYSTEM):
        return None
    return real


class FileRefused(SpecError):
    """A file reference this run may not use; the message says what may be used instead."""


def _where(files: LocalFiles) -> str:
    options = "a Fireworks dataset id (accounts/<account>/datasets/<id>), `sftbot:demo`, a .jsonl file attached in the thread"
    if files.dataset_dir is not None:
        options += ", or a .jsonl file in the team's dataset folder by its name there"
    return options


def dataset_file(ref: str, files: LocalFiles) -> Path | None:
    """The local file a dataset reference names, checked against ``files``; None for a platform dataset."""
    kind = kind_of(ref)
    if kind == "platform":
        return None
    if kind == "demo":
        return demo_path()
    if kind == "upload":
        name = ref.strip().removeprefix(UPLOAD_PREFIX)
        path = _within(files.uploads_dir, name) if files.uploads_dir is not None and "/" not in name else None
        if path is None:
            raise FileRefused(f"the attached file {name[:80]!r} is not one the bot saved; attach it again")
        return _regular(path, ref, files)
    if files.mode == "any":
        return _regular(Path(ref).expanduser(), ref, files)
    shown = ref.strip()[:80]
    if files.dataset_dir is None:
        raise FileRefused(f"I can't read files on the bot's machine from Slack ({shown!r}): use {_where(files)}")
    path = _within(files.dataset_dir, ref.strip())
    if path is None:
        raise FileRefused(f"{shown!r} is outside the team's dataset folder: use {_where(files)}")
    if path.suffix.lower() != ".jsonl":
        raise FileRefused(f"{shown!r} is not a .jsonl file: datasets are JSONL, one conversation per line")
    return _regular(path, ref, files)


def _regular(path: Path, ref: str, files: LocalFiles) -> Path:
    shown = ref.strip()[:80]
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileRefused(f"there is no file {shown!r}; check the name (it is case-sensitive)") from None
    except OSError as exc:
        raise FileRefused(f"{shown!r} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused(f"{shown!r} is not a regular file")
    if st.st_size > files.max_dataset_bytes:
        raise FileRefused(
            f"{shown!r} is {st.st_size / _MB:,.0f} MB; the bot takes local files up to {files.max_dataset_bytes / _MB:,.0f} MB "
            "(upload bigger ones to Fireworks and name the dataset id)"
        )
    return path


def model_path_allowed(ref: str, files: LocalFiles) -> None:
    """Refuse a base-model path outside the model folder (model ids are the platform's business)."""
    if files.mode == "any" or kind_of(ref) != "path":
        return
    shown = ref.strip()[:80]
    if files.model_dir is None or _within(files.model_dir, ref.strip()) is None:
        raise FileRefused(
            f"I can't load models from paths on the bot's machine from Slack ({shown!r}): name a base model (`/sft models`)"
        )


def check_spec(spec: RunSpec, files: LocalFiles) -> None:
    """Every local file a spec names, and every account it reaches, checked before a run exists
    (or a revision is accepted)."""
    hosted = spec.evaluation.ref if spec.evaluation is not None and spec.evaluation.hosted else None
    for ref in (spec.dataset, spec.eval_dataset, hosted):
        if ref and (why := foreign_refusal(ref, files)):
            raise FileRefused(why)
    for ref in (spec.dataset, spec.eval_dataset):
        if ref:
            dataset_file(ref, files)
    for model in spec.base_models:
        model_path_allowed(model, files)


def copy_checked(src: Path, dest: Path, files: LocalFiles) -> None:
    """Copy a checked file, re-checked on the open descriptor (it may have changed since)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(Path(os.path.realpath(src)), flags)
    with os.fdopen(fd, "rb") as fin:
        st = os.fstat(fin.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > files.max_dataset_bytes:
            raise FileRefused(f"{src.name!r} changed while it was being read")
        with atomic_output(dest) as tmp, tmp.open("wb") as fout:
            shutil.copyfileobj(fin, fout, length=1 << 20)


class Origin(BaseModel):
    """Where a dataset was given: the conversation an upload was attached in (and by whom), or
    the channel of the first Slack run that named (or created) a platform dataset."""

    channel: str
    uploader: str | None = None


def origin_refusal(ref: str, origin: Origin | None, *, channel: str | None, files: LocalFiles) -> str | None:
    """Why a run in ``channel`` may not use the dataset ``ref`` given at ``origin``; None if it may.

    From Slack (``files.mode`` "folders") data stays in the conversation it was given in: an
    upload only there (a DM's only for its uploader, who alone is in that DM), a platform
    dataset only in the channel whose run named it first; a dataset no Slack run has named is
    the account's, for any channel. Admins are bound too (an admin's run in another channel
    would hand the data to that channel's members, who can revise it and attach evaluators);
    the terminal is not. The sentences never say where the data lives.
    """
    if files.mode == "any":
        return None
    shown = ref.strip()[:80]
    kind = kind_of(ref)
    if kind == "upload" and origin is None:
        return f"the attached file {shown.removeprefix(UPLOAD_PREFIX)!r} is not one the bot saved; attach it again"
    if kind not in ("upload", "platform") or origin is None or origin.channel == channel:
        return None
    if kind == "upload":
        return (
            f"the attached file {shown.removeprefix(UPLOAD_PREFIX)!r} was attached in another conversation, and data "
            "stays where it was given: attach the file here to use it in this channel"
        )
    return (
        f"the dataset {shown} belongs to runs of another channel (a run there used it first), and data stays where it "
        "was given: upload the file here, or start the run in that channel"
    )


async def check_origins(
    refs: list[str], *, channel: str | None, files: LocalFiles, origin: Callable[[str], Awaitable[Origin | None]]
) -> None:
    """Raise FileRefused for the first of ``refs`` a run in ``channel`` may not use (``origin`` looks it up)."""
    if files.mode == "any":
        return
    for ref in refs:
        if ref and (why := origin_refusal(ref, await origin(ref), channel=channel, files=files)):
            raise FileRefused(why)


async def check_use(
    spec: RunSpec, *, channel: str | None, files: LocalFiles, origin: Callable[[str], Awaitable[Origin | None]]
) -> None:
    """``check_spec``, then whether a run in ``channel`` may use the datasets ``spec`` names."""
    check_spec(spec, files)
    await check_origins([r for r in (spec.dataset, spec.eval_dataset) if r], channel=channel, files=files, origin=origin)


_ACCOUNT = re.compile(r"^accounts/([^/]+)/(datasets|evaluators)/[^/]+$")


def foreign_refusal(ref: str, files: LocalFiles) -> str | None:
    """Why a dataset or hosted evaluator of another Fireworks account may not be used; None if it may.

    Held-out rows and the candidates' answers go to a hosted evaluator, and a foreign dataset
    is someone else's data: both only with an account an admin listed in SFTBOT_FOREIGN_ACCOUNTS.
    """
    found = _ACCOUNT.match(ref.strip())
    if files.mode == "any" or files.account is None or found is None:
        return None
    account, what = found.group(1), found.group(2)[:-1]
    if account == files.account or account in files.foreign_accounts:
        return None
    return (
        f"the {what} {ref.strip()[:120]} is in the Fireworks account {account!r}, not this bot's ({files.account!r}): "
        f"name a {what} of this account, or ask an admin to add {account!r} to SFTBOT_FOREIGN_ACCOUNTS"
    )


def quota_refusal(size: int, *, mine: int, everyone: int, files: LocalFiles) -> str | None:
    """Why an upload of ``size`` bytes cannot be kept next to ``mine`` (this person's) and ``everyone``'s bytes."""
    name, wait = f"{size / _MB:,.1f} MB", f"files no run uses are deleted {_hours(files)} after their last use"
    quota, total = files.upload_quota_bytes / _MB, files.uploads_total_bytes / _MB
    if size > files.upload_quota_bytes:
        return f"it is {name}, more than the {quota:,.0f} MB each person may keep on the bot; an admin can raise SFTBOT_UPLOAD_QUOTA_MB"
    if mine + size > files.upload_quota_bytes:
        return (
            f"it is {name}, and your files kept on the bot already take {mine / _MB:,.1f} MB of your {quota:,.0f} MB; "
            f"{wait}, or an admin can raise SFTBOT_UPLOAD_QUOTA_MB"
        )
    if everyone + size > files.uploads_total_bytes:
        return (
            f"it is {name}, and the files kept on the bot already take {everyone / _MB:,.0f} MB of {total:,.0f} MB for "
            f"everyone; {wait}, or an admin can raise SFTBOT_UPLOADS_TOTAL_MB"
        )
    return None


def _hours(files: LocalFiles) -> str:
    hours = files.upload_retention_seconds / 3600
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


def expired(uploads: list[tuple[str, float]], *, in_use: set[str], now: float, files: LocalFiles) -> list[str]:
    """The uploads (name, last used) to delete: no unfinished run names them and their time is up."""
    cutoff = now - files.upload_retention_seconds
    return [name for name, used_at in uploads if used_at < cutoff and UPLOAD_PREFIX + name not in in_use]
