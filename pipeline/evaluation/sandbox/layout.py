"""What of the bot's interpreter the evaluator sandbox must see, and at which paths.

The sandbox's filesystem starts empty. It gets ``/usr`` and exactly the interpreter's own
files, read-only: the real binary, its standard library, ``libpython`` when the build is
shared, and a venv's site-packages (evaluators import numpy, or Eval Protocol's packages,
from the bot's environment, as they always could). The interpreter is asked once rather
than guessed at: pyenv, Debian and venv layouts all differ.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from functools import cache

# The sandbox sees a venv at this neutral path: a symlink to the real binary plus the venv's
# pyvenv.cfg and site-packages, so the bot's own paths appear nowhere in argv or sys.path.
VENV = "/venv"

# No -S here: in 3.11 sys.prefix only becomes the venv through `site`.
_ASK = r"""
import json, os, sys, sysconfig
cfg = sysconfig.get_config_vars()
lib = None
if cfg.get("Py_ENABLE_SHARED"):
    cand = os.path.join(cfg.get("LIBDIR") or "", cfg.get("INSTSONAME") or cfg.get("LDLIBRARY") or "")
    lib = os.path.realpath(cand) if os.path.exists(cand) else None
paths = sysconfig.get_paths()
print(json.dumps({
    "binary": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
    "stdlib": os.path.realpath(paths["stdlib"]),
    "platstdlib": os.path.realpath(sysconfig.get_path("platstdlib", vars={"platbase": sys.base_prefix})),
    "libpython": lib,
    "venv": sys.prefix != sys.base_prefix,
    "prefix": sys.prefix,
    "purelib": os.path.realpath(paths["purelib"]),
    "version": "%d.%d" % sys.version_info[:2],
}))
"""


@dataclass(frozen=True)
class Layout:
    """Host paths to bind read-only (``binds``: source -> path inside) and the argv0 to run."""

    binds: tuple[tuple[str, str], ...]
    symlinks: tuple[tuple[str, str], ...]  # (target, path inside)
    python: str  # the interpreter's path inside the sandbox


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


@cache
def layout(python: str) -> Layout:
    """Ask ``python`` where its files are (once per interpreter; about 50 ms).

    Raises OSError, subprocess.SubprocessError or ValueError when the interpreter cannot say.
    """
    out = subprocess.run([python, "-I", "-c", _ASK], capture_output=True, text=True, check=True, env={}, timeout=30).stdout
    d = json.loads(out)
    same = [d["binary"], d["stdlib"], d["platstdlib"], d["libpython"]]
    # /usr is bound whole; files under it need no bind of their own.
    binds = [(p, p) for p in dict.fromkeys(same) if p and os.path.exists(p) and not _under(p, "/usr")]
    if not d["venv"]:
        return Layout(tuple(binds), (), d["binary"])
    site = f"{VENV}/lib/python{d['version']}/site-packages"
    binds += [(d["purelib"], site), (os.path.join(d["prefix"], "pyvenv.cfg"), f"{VENV}/pyvenv.cfg")]
    return Layout(tuple(binds), ((d["binary"], f"{VENV}/bin/python"),), f"{VENV}/bin/python")
