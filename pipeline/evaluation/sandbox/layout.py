"""What of the host the evaluator sandbox must see, and at which paths: the interpreter and
nothing else.

The sandbox's filesystem starts empty. It gets, read-only: the real interpreter binary, its
standard library (with ``lib-dynload``), ``libpython`` when the build is shared, a venv's
site-packages (evaluators import numpy, or Eval Protocol's packages, from the bot's
environment, as they always could), the two util-linux tools that drop privileges inside,
and the shared libraries all of those load, found with ``ldd`` when the layout is made. Not
``/usr`` or ``/usr/local`` whole: an official Python image keeps the app (and its ``.env``)
in ``/usr/src/app``, and anything world-readable there would be the evaluator's to read.

Each library is bound at the path the dynamic loader looks it up by (its folder's real
path, its own name), so no ``/etc/ld.so.cache`` is needed: the loader's default folders are
searched. The interpreter is asked where its files are rather than guessed at: pyenv,
Debian and venv layouts all differ.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

# The sandbox sees a venv at this neutral path: a symlink to the real binary, a pyvenv.cfg
# written for it and the venv's site-packages, so the bot's own paths appear nowhere in
# argv, sys.path or a config file (a venv's own pyvenv.cfg names the folder it was made in).
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
    "dynload": [os.path.realpath(p) for p in sys.path if p.endswith("lib-dynload") and os.path.isdir(p)],
    "libpython": lib,
    "venv": sys.prefix != sys.base_prefix,
    "prefix": sys.prefix,
    "purelib": os.path.realpath(paths["purelib"]),
    "platlib": os.path.realpath(paths["platlib"]),
    "version": "%d.%d" % sys.version_info[:2],
    "full_version": "%d.%d.%d" % sys.version_info[:3],
}))
"""
# "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" and the loader's "/lib64/ld-linux-x86-64.so.2 (0x...)".
_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")
_LDD_CHUNK = 60  # files per ldd process (two run at a time)


@dataclass(frozen=True)
class Layout:
    """Host paths to bind read-only (``binds``: source -> path inside), symlinks to make,
    files to write inside (``files``: content -> path; no mount, so no host path shows), and
    the argv0 to run."""

    binds: tuple[tuple[str, str], ...]
    symlinks: tuple[tuple[str, str], ...]  # (target, path inside)
    python: str  # the interpreter's path inside the sandbox
    files: tuple[tuple[bytes, str], ...] = ()


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _ldd(files: list[str]) -> set[str]:
    """The shared libraries ``files`` load, as ldd resolves them (several ldd processes at once)."""

    def one(chunk: list[str]) -> str:
        return subprocess.run(["ldd", *chunk], capture_output=True, text=True, env={}, timeout=60, check=False).stdout

    chunks = [files[i : i + _LDD_CHUNK] for i in range(0, len(files), _LDD_CHUNK)]
    with ThreadPoolExecutor(2) as pool:
        out = "\n".join(pool.map(one, chunks))
    return {m.group(1) for line in out.splitlines() if (m := _LDD_LINE.match(line))}


def lookup_path(path: str) -> str:
    """Where the loader finds ``path``: its folder's real path and its own name (``/lib`` may be
    a symlink to ``usr/lib``, ``libz.so.1`` one to ``libz.so.1.2.13``)."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _shared_objects(folders: list[str]) -> list[str]:
    found: list[str] = []
    for folder in folders:
        found += [p for p in glob.glob(os.path.join(folder, "**", "*.so*"), recursive=True) if os.path.isfile(p)]
    return found


def _libraries(d: dict[str, object], tools: tuple[str, ...], own: list[str]) -> list[tuple[str, str]]:
    """(source, inside) binds for every shared library the interpreter, its extension modules
    and ``tools`` load, apart from those inside folders bound anyway (``own``)."""
    dynload = [str(p) for p in d["dynload"]] if isinstance(d["dynload"], list) else []
    site = [str(d["purelib"]), str(d["platlib"])]
    files = [str(d["binary"]), *(str(d["libpython"]),) * bool(d["libpython"]), *tools, *_shared_objects(dynload + site)]
    libs = sorted(_ldd(files))
    return [(lib, lookup_path(lib)) for lib in libs if not any(_under(os.path.realpath(lib), top) for top in own)]


def _pyvenv_cfg(d: dict[str, object]) -> bytes:
    home = os.path.dirname(str(d["binary"]))
    return f"home = {home}\ninclude-system-site-packages = false\nversion = {d['full_version']}\n".encode()


@cache
def layout(python: str, tools: tuple[str, ...] = ()) -> Layout:
    """Ask ``python`` where its files are, and ldd what they load (once per interpreter: about
    half a second, a second or two with a large venv). ``tools``: programs run inside too.

    Raises OSError, subprocess.SubprocessError or ValueError when the interpreter cannot say.
    """
    out = subprocess.run([python, "-I", "-c", _ASK], capture_output=True, text=True, check=True, env={}, timeout=30).stdout
    d = json.loads(out)
    dirs = [p for p in dict.fromkeys([d["stdlib"], d["platstdlib"], *d["dynload"]]) if p and os.path.isdir(p)]
    # A folder inside another is bound with it.
    dirs = [p for p in dirs if not any(p != q and _under(p, q) for q in dirs)]
    site = [p for p in dict.fromkeys([d["purelib"], d["platlib"]]) if os.path.isdir(p) and not any(_under(p, q) for q in dirs)]
    binds = [(p, p) for p in dirs]
    files: list[tuple[bytes, str]] = []
    symlinks: list[tuple[str, str]] = []
    inside_python = d["binary"]
    if d["venv"]:
        binds += [(p, f"{VENV}/lib/python{d['version']}/site-packages") for p in site[:1]]
        files.append((_pyvenv_cfg(d), f"{VENV}/pyvenv.cfg"))
        symlinks.append((d["binary"], f"{VENV}/bin/python"))
        inside_python = f"{VENV}/bin/python"
    else:
        binds += [(p, p) for p in site]
    binds.append((d["binary"], d["binary"]))
    binds += [(t, lookup_path(t)) for t in tools]
    binds += _libraries(d, tools, [*dirs, *site])
    unique = list(dict.fromkeys(binds))
    return Layout(tuple(unique), tuple(symlinks), inside_python, tuple(files))
