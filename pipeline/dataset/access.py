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
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

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
    """Every local file a spec names, checked before a run exists (or a revision is accepted)."""
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
