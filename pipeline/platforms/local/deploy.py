"""Local deployments that outlive the command that made them.

A deployment is a record on disk (``<root>/deployments/<id>.json``), not a process: whichever
sftbot process hosts the endpoint of this root — the run that deployed it, ``sftbot serve``
or ``sftbot endpoint RUN`` — reads the records on every request and loads a deployment's
model on its first request (lazily; a few seconds for a small model), so a deployment made
by one process is answered by another.

One process hosts a given port of a root: while its server is up it holds
``<root>/endpoint-<port>.lock`` (flock, released by the kernel if it dies). A process that
finds the port taken checks that lock: held means "another sftbot of this root answers
there" and it relies on that host instead of failing; free means some other program owns
the port, which is a clear error.

Teardown marks the record (``torn_down_at``) instead of deleting it, so a host that has the
model loaded sees it on the next request, unloads it and answers 404 naming the teardown,
and ``sftbot endpoint RUN`` can say the deployment was torn down rather than "never existed".
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from pipeline.domain.fsio import write_atomic
from pipeline.platforms.local.serve import LoadedModel
from pipeline.platforms.local.server import ChatServer, EndpointConfig

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")

Loader = Callable[[str, str], Awaitable[LoadedModel]]  # (deployment id, model) -> loaded model


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class DeploymentRecord(BaseModel):
    """``<root>/deployments/<id>.json``: what a deployment serves, where, and whether it was torn down."""

    deployment_id: str
    model: str
    port: int | None = None  # the port it was first served on: the report's snippet names it
    created_at: str = Field(default_factory=_now)
    torn_down_at: str | None = None


class Unavailable(LookupError):
    """A request named a deployment this host cannot answer for; ``str()`` says why (404)."""


class LocalDeployments:
    """The deployment records of one root, the models loaded for them, and the endpoint."""

    def __init__(self, root: Path, *, port: int, load: Loader, config: EndpointConfig | None = None) -> None:
        self.dir = root / "deployments"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._load = load
        self.loaded: dict[str, LoadedModel] = {}
        self._failed: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._host_fd: int | None = None
        self.shared_with: int | None = None  # pid of the sftbot process that hosts our port, when not us
        # Host mode (`sftbot serve`, `sftbot endpoint`): keep serving while nothing is loaded yet.
        self.hosting = False
        self.server = ChatServer(self._resolve, self._listed, port=port, config=config)

    # --- records ---

    def path(self, deployment_id: str) -> Path:
        return self.dir / f"{deployment_id}.json"

    def record(self, deployment_id: str) -> DeploymentRecord | None:
        if not _ID.fullmatch(deployment_id):
            return None
        path = self.path(deployment_id)
        try:
            return DeploymentRecord.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def save(self, record: DeploymentRecord) -> None:
        write_atomic(self.path(record.deployment_id), record.model_dump_json(indent=1))

    def live_records(self) -> list[DeploymentRecord]:
        out = []
        for path in sorted(self.dir.glob("*.json")):
            record = self.record(path.stem)
            if record is not None and record.torn_down_at is None:
                out.append(record)
        return out

    def _listed(self) -> list[str]:
        """Every name a deployment answers to: its id (the snippet's model string) and the
        model it serves (the report's "Model", e.g. ``sftbot-<run>-final``)."""
        names = [n for r in self.live_records() for n in (r.deployment_id, r.model)]
        return list(dict.fromkeys(names))

    def named(self, name: str) -> DeploymentRecord | None:
        """The deployment a request's ``model`` names: by id, else the live (or last) one serving that model."""
        record = self.record(name)
        if record is not None:
            return record
        serving = [r for r in map(self.record, (p.stem for p in sorted(self.dir.glob("*.json")))) if r and r.model == name]
        return next((r for r in serving if r.torn_down_at is None), serving[-1] if serving else None)

    # --- the endpoint ---

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/v1"

    async def serve(self) -> str | None:
        """Make the endpoint answer: start our server, or rely on this root's host on the port.

        Returns None when it answers, else one sentence saying why not and what to do.
        """
        if self.server.running or self.shared_with is not None:
            return None
        try:
            await self.server.start()
        except OSError as exc:
            host = host_pid(self.root, self.server.port)
            if host is not None:
                self.shared_with = host
                return None
            return (
                f"cannot serve on 127.0.0.1:{self.server.port}: {exc.strerror or exc}; another program uses that port: "
                "stop it, or set SFTBOT_LOCAL_PORT to a free port"
            )
        self._hold_port()
        return None

    def port_problem(self) -> str | None:
        """Why this root could not serve on its port now (another program has it), naming a free
        port to use instead; None when it is free, ours, or hosted by this root's sftbot."""
        port = self.server.port
        if self.server.running or host_pid(self.root, port) is not None or port_free(port):
            return None
        spare = next((p for p in range(port + 1, min(port + 100, 65536)) if port_free(p)), None)
        instead = f"set SFTBOT_LOCAL_PORT={spare} (free now)" if spare is not None else "set SFTBOT_LOCAL_PORT to a free port"
        return (
            f"port 127.0.0.1:{port} is in use by another program, and this run's model would be served there after "
            f"training: stop that program or {instead}"
        )

    def _hold_port(self) -> None:
        fd = os.open(self.root / f"endpoint-{self.server.port}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another instance of this process took it first; it answers too
            os.close(fd)
            return
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._host_fd = fd

    async def stop(self) -> None:
        await self.server.stop()
        if self._host_fd is not None:
            os.close(self._host_fd)  # releases the flock
            self._host_fd = None
        self.shared_with = None

    # --- models ---

    async def ensure_loaded(self, record: DeploymentRecord) -> str | None:
        """Load the record's model once; None when it is ready, else why it cannot be."""
        async with self._lock:
            if record.deployment_id in self.loaded:
                return None
            if record.deployment_id in self._failed:
                return self._failed[record.deployment_id]
            try:
                self.loaded[record.deployment_id] = await self._load(record.deployment_id, record.model)
            except Exception as exc:
                self._failed[record.deployment_id] = f"loading {record.model} failed: {type(exc).__name__}: {exc}"
                return self._failed[record.deployment_id]
        return None

    async def _resolve(self, name: str) -> LoadedModel:
        """The model a request names, read from its record now (it may have been torn down meanwhile)."""
        record = self.named(name) if _ID.fullmatch(name) else None
        if record is None:
            raise Unavailable(f"The model {name!r} is not deployed here; GET /v1/models lists what is")
        if record.torn_down_at is not None:
            self.loaded.pop(record.deployment_id, None)
            raise Unavailable(
                f"deployment {record.deployment_id!r} was torn down at {record.torn_down_at}; it is no longer served"
            )
        problem = await self.ensure_loaded(record)
        if problem is not None:
            raise Unavailable(problem)
        return self.loaded[record.deployment_id]

    async def tear_down(self, record: DeploymentRecord) -> DeploymentRecord:
        """Mark it torn down (once) and unload it; a host in another process notices on its next request."""
        if record.torn_down_at is None:
            record = record.model_copy(update={"torn_down_at": _now()})
            self.save(record)
        self.loaded.pop(record.deployment_id, None)
        self._failed.pop(record.deployment_id, None)
        if not self.loaded and not self.hosting:
            await self.stop()
        return record

    async def close(self) -> None:
        await self.stop()
        self.loaded.clear()


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound now (bound and released at once, as the server
    would bind it: SO_REUSEADDR, so a port in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def host_pid(root: Path, port: int) -> int | None:
    """The pid of the sftbot process hosting ``port`` for ``root``, or None when none does."""
    path = root / f"endpoint-{port}.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            with contextlib.suppress(ValueError):
                return int(os.read(fd, 32) or b"0") or -1
            return -1
        return None  # nobody holds it: a leftover file of a host that has stopped
    finally:
        os.close(fd)
