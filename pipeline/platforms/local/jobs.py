"""Local training jobs: their on-disk records and their lifecycle (queue, process, resume).

Files are the truth, so a restarted bot knows everything; memory only records what this
instance itself saw. Per job, under ``<root>/jobs/<job_id>/``:
    request.json   LocalJobSpec (written once, before anything starts)
    launch.json    LaunchRecord, the platform's side: pending/started/cancelled/failed, pid, attempts
    status.json    TrainerStatus, written atomically by the trainer after every step
    metrics.jsonl  per-step and per-epoch losses; train.log the trainer's output; adapter/ the result
    trainer.lock   flock held by the trainer for its whole life (taken at launch and inherited),
                   so "is it alive" survives pid reuse and zombies and needs no psutil

Each job is one trainer process in its own session: cancel kills its process group, a crash
cannot take the bot down, and a bot restart does not stop it (the new instance adopts it).
A job found dead without a final status when an instance starts was interrupted by a restart
(machine or container): it is re-run from scratch once. A death seen while running is a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

import pipeline
from pipeline.domain.fsio import write_atomic
from pipeline.domain.platform import JobRequest, JobState, JobStatus, NotFound

MAX_ATTEMPTS = 2  # a job interrupted by a restart is re-run from scratch once
_WATCH_SECONDS = 1.0


class LocalJobSpec(BaseModel):
    """``request.json``: the runner's request plus what the platform resolved for it."""

    request: JobRequest
    base_model: str  # canonical base reference (id or absolute path), key of throughput.json
    dataset_path: str
    eval_path: str | None
    root: str
    device: str  # "cpu", "cuda", "cuda:1", ...
    seed: int = 42
    batch_size: int = 16
    max_seq_len: int = 1024
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    threads: int | None = None  # torch intra-op threads; None = torch's default


class TrainerStatus(BaseModel):
    """``status.json``: the trainer's own view, rewritten after every step."""

    state: JobState
    progress: float = 0.0
    epoch: float | None = None
    step: int = 0
    total_steps: int = 0
    train_loss: float | None = None
    val_loss: float | None = None
    message: str | None = None
    attempt: int = 1
    pid: int | None = None
    precision: str | None = None
    tokens_per_second: float | None = None
    updated_at: str = Field(default_factory=lambda: now_iso())


class LaunchRecord(BaseModel):
    """``launch.json``: queueing, the process, attempts and why a job was restarted or failed."""

    state: Literal["pending", "started", "cancelled", "failed"] = "pending"
    pid: int | None = None
    attempts: int = 0
    gpu: int | None = None  # the GPU slot the job was given (CUDA_VISIBLE_DEVICES)
    message: str | None = None  # shown as JobStatus.message
    created_at: str = Field(default_factory=lambda: now_iso())
    started_at: str | None = None


class JobArtifacts(BaseModel):
    """Where a job's files are (found by job id, also after a restart)."""

    job_dir: Path
    adapter: Path | None  # None until the job completed
    metrics: Path
    log: Path
    base_model: str


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock shared by threads and processes (flock; released if the holder dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class LocalJobs:
    """Starts, watches, queues, cancels and resumes trainer processes under ``<root>/jobs``."""

    def __init__(self, root: Path, *, max_parallel: int, gpus: int) -> None:
        self.dir = root / "jobs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_parallel, self.gpus = max_parallel, gpus
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._watched: set[str] = set()  # started or seen alive by this instance: a death now is a crash
        self._tracked: set[str] = set()  # not yet terminal
        self._resumed = False
        self._watcher: asyncio.Task[None] | None = None

    def exists(self, job_id: str) -> bool:
        return (self.dir / job_id / "request.json").exists()

    def spec(self, job_id: str) -> LocalJobSpec:
        return LocalJobSpec.model_validate_json((self.dir / job_id / "request.json").read_text(encoding="utf-8"))

    def specs(self) -> Iterator[LocalJobSpec]:
        for path in sorted(self.dir.glob("*/request.json")):
            yield LocalJobSpec.model_validate_json(path.read_text(encoding="utf-8"))

    def artifacts(self, job_id: str) -> JobArtifacts:
        if not self.exists(job_id):
            raise NotFound(f"local job {job_id!r} does not exist")
        job_dir, adapter = self.dir / job_id, self.dir / job_id / "adapter"
        return JobArtifacts(
            job_dir=job_dir,
            adapter=adapter if (adapter / "adapter_config.json").exists() else None,
            metrics=job_dir / "metrics.jsonl",
            log=job_dir / "train.log",
            base_model=self.spec(job_id).base_model,
        )

    def _launch(self, job_id: str) -> LaunchRecord:
        return LaunchRecord.model_validate_json((self.dir / job_id / "launch.json").read_text(encoding="utf-8"))

    def _save(self, job_id: str, record: LaunchRecord) -> None:
        write_atomic(self.dir / job_id / "launch.json", record.model_dump_json(indent=1))

    def _trainer(self, job_id: str) -> TrainerStatus | None:
        path = self.dir / job_id / "status.json"
        return TrainerStatus.model_validate_json(path.read_text(encoding="utf-8")) if path.exists() else None

    def create(self, spec: LocalJobSpec) -> JobStatus:
        """Record the job, then start it or queue it; an existing job of that id is returned as is."""
        self.resume()
        job_id = spec.request.job_id
        if not self.exists(job_id):
            tmp = Path(tempfile.mkdtemp(dir=self.dir, prefix=f".{job_id}."))
            write_atomic(tmp / "request.json", spec.model_dump_json(indent=1))
            write_atomic(tmp / "launch.json", LaunchRecord().model_dump_json(indent=1))
            try:
                os.rename(tmp, self.dir / job_id)  # atomic: a concurrent create of the same id loses here
                self._tracked.add(job_id)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        return self.status(job_id)

    def status(self, job_id: str) -> JobStatus:
        self.resume()
        if not self.exists(job_id):
            raise NotFound(f"local job {job_id!r} does not exist")
        self.reconcile()
        return self._observe(job_id)

    async def cancel(self, job_id: str) -> JobStatus:
        status = self.status(job_id)
        if status.state.terminal:
            return status
        record = self._launch(job_id)
        self._save(job_id, record.model_copy(update={"state": "cancelled", "message": "cancelled on request"}))
        if record.state == "started" and record.pid is not None:
            await self._kill(job_id, record.pid)
        return self.status(job_id)

    async def _kill(self, job_id: str, pid: int) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # SIGKILL only if still alive after 5 s
            if not self._alive(job_id):
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)  # its own session: the group is the trainer and any children
            for _ in range(100):
                if not self._alive(job_id):
                    break
                await asyncio.sleep(0.05)

    async def stop(self, job_ids: list[str]) -> list[str]:
        """Stop these jobs' trainers with the command running them (Ctrl-C, SIGTERM): each is queued
        again, its attempt not counted, for the run's resume to start anew. The ids stopped."""
        await self.close()  # nothing may start a queued job meanwhile
        stopped = []
        for job_id in job_ids:
            record = self._launch(job_id) if self.exists(job_id) else None
            trainer = self._trainer(job_id) if record is not None else None
            if record is None or record.state != "started" or (trainer is not None and trainer.state.terminal):
                continue
            message = "stopped with sftbot (Ctrl-C or SIGTERM); it starts again from the beginning on resume"
            update = {"state": "pending", "attempts": max(0, record.attempts - 1), "message": message}
            self._save(job_id, record.model_copy(update=update))
            if record.pid is not None:
                await self._kill(job_id, record.pid)
            self._watched.discard(job_id)
            self._reset(job_id)
            stopped.append(job_id)
        return stopped

    def kill_now(self, job_ids: list[str]) -> None:
        """SIGKILL these jobs' trainers at once (a second Ctrl-C: no time to wait)."""
        for job_id in job_ids:
            if self.exists(job_id) and (pid := self._launch(job_id).pid) is not None and self._alive(job_id):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)

    def resume(self) -> None:
        """First use of a root: pick up every unfinished job (adopt live trainers, re-run interrupted ones)."""
        if self._resumed:
            return
        self._resumed = True
        for job_dir in sorted(self.dir.iterdir()):
            if (job_dir / "launch.json").exists() and self.exists(job_dir.name):
                if not self._observe(job_dir.name).state.terminal:
                    self._tracked.add(job_dir.name)
        self.reconcile()

    def _observe(self, job_id: str) -> JobStatus:
        record, spec, trainer = self._launch(job_id), self.spec(job_id), self._trainer(job_id)
        if trainer is not None and trainer.state.terminal:
            message = trainer.message if trainer.state is JobState.FAILED else record.message
            return job_status(job_id, spec, trainer.state, trainer, message)
        if record.state in ("cancelled", "failed"):
            state = JobState.CANCELLED if record.state == "cancelled" else JobState.FAILED
            return job_status(job_id, spec, state, trainer, record.message)
        if record.state == "pending":
            return job_status(job_id, spec, JobState.PENDING, None, record.message)
        if self._alive(job_id):
            self._watched.add(job_id)
            return job_status(job_id, spec, JobState.RUNNING, trainer, record.message)
        log = self.dir / job_id / "train.log"
        if job_id in self._watched:  # it died under our eyes: a crash, not a restart
            proc = self._procs.get(job_id)
            code = proc.returncode if proc is not None else None
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited (code {code})"
            message = f"the trainer process {how} without a final status; last log line: {_last_line(log)!r}; log: {log}"
            self._save(job_id, record.model_copy(update={"state": "failed", "message": message}))
            return job_status(job_id, spec, JobState.FAILED, trainer, message)
        if record.attempts >= MAX_ATTEMPTS:
            message = f"interrupted by a restart again on attempt {record.attempts}; not retried (log: {log})"
            self._save(job_id, record.model_copy(update={"state": "failed", "message": message}))
            return job_status(job_id, spec, JobState.FAILED, trainer, message)
        # Found dead on start-up without a final status: a restart interrupted it. Re-run from scratch.
        self._reset(job_id)
        message = (
            f"attempt {record.attempts} was interrupted by a restart; restarted from scratch "
            f"(attempt {record.attempts + 1} of {MAX_ATTEMPTS})"
        )
        self._save(job_id, record.model_copy(update={"state": "pending", "pid": None, "message": message}))
        return job_status(job_id, spec, JobState.PENDING, None, message)

    def _reset(self, job_id: str) -> None:  # what an unfinished attempt left: the next starts anew
        for stale in ("status.json", "metrics.jsonl"):
            (self.dir / job_id / stale).unlink(missing_ok=True)
        for stale in ("adapter", ".adapter.tmp"):
            shutil.rmtree(self.dir / job_id / stale, ignore_errors=True)

    def _alive(self, job_id: str) -> bool:
        proc = self._procs.get(job_id)
        if proc is not None:
            return proc.poll() is None  # also reaps it
        try:
            fd = os.open(self.dir / job_id / "trainer.lock", os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # the trainer holds it
        finally:
            os.close(fd)  # also drops our probe lock
        return False

    def reconcile(self) -> None:
        """Refresh every unfinished job, then start queued ones (oldest first) while slots are free."""
        pending: list[tuple[str, str]] = []
        running = 0
        for job_id in sorted(self._tracked):
            status = self._observe(job_id)
            if status.state.terminal:
                self._tracked.discard(job_id)
                self._procs.pop(job_id, None)
            elif status.state is JobState.PENDING:
                pending.append((self._launch(job_id).created_at, job_id))
            else:
                running += 1
        for _, job_id in sorted(pending)[: max(0, self.max_parallel - running)]:
            self._spawn(job_id)
        if self._tracked and (self._watcher is None or self._watcher.done()):
            with contextlib.suppress(RuntimeError):  # no running loop: callers' polling moves the queue
                self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        """Keeps the queue moving when nobody polls (a job ends -> the next one starts)."""
        while self._tracked:
            await asyncio.sleep(_WATCH_SECONDS)
            self.reconcile()

    def _spawn(self, job_id: str) -> None:
        job_dir = self.dir / job_id
        busy = {self._launch(j).gpu for j in self._tracked if j != job_id}
        gpu = next((g for g in range(self.gpus) if g not in busy), None)
        env = child_env()
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        record = self._launch(job_id)
        record = record.model_copy(
            update={"state": "started", "attempts": record.attempts + 1, "gpu": gpu, "started_at": now_iso()}
        )
        self._save(job_id, record)  # before the exec: the trainer reads its attempt number from it
        # Take the liveness lock here and hand it to the child, so it is held from the first instant.
        fd = os.open(job_dir / "trainer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with open(job_dir / "train.log", "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "pipeline.platforms.local.train", str(job_dir)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(fd,),
                    env=env,
                )
        except OSError as exc:
            self._save(job_id, record.model_copy(update={"state": "failed", "message": f"could not start the trainer: {exc}"}))
            return
        finally:
            os.close(fd)
        self._procs[job_id] = proc
        self._watched.add(job_id)
        self._save(job_id, record.model_copy(update={"pid": proc.pid}))

    async def close(self) -> None:
        """Stop watching; trainers keep running (a new instance on this root adopts them)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher


def child_env() -> dict[str, str]:
    """The environment of a trainer or probe process: offline, unbuffered, this package importable."""
    package_parent = str(Path(pipeline.__file__).parent.parent)
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
        "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])),
    }


def job_status(job_id: str, spec: LocalJobSpec, state: JobState, trainer: TrainerStatus | None, message: str | None) -> JobStatus:
    t = trainer
    return JobStatus(
        job_id=job_id,
        state=state,
        raw_state=t.state.value if t else state.value,
        progress=100.0 if state is JobState.COMPLETED else (t.progress if t else 0.0),
        epoch=t.epoch if t else None,
        train_loss=t.train_loss if t else None,
        val_loss=t.val_loss if t else None,
        message=message,
        cost_usd=0.0,
        model=spec.request.output_model if state is JobState.COMPLETED else None,
    )


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return ""
    return lines[-1][-300:] if lines else ""
