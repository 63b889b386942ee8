"""Run a user's evaluator file (bring your own) in a sandboxed subprocess.

The evaluator is untrusted code: it may not import, raise, return garbage, hang, eat memory,
fork, read the bot's secrets or call the network. Each of those must end as a clear sentence
naming the example, while the bot keeps working. How:

- a fresh interpreter, ``python -I -B``: isolated mode ignores PYTHON* variables, the user
  site and the current directory. We keep ``site`` (no ``-S``) on purpose: evaluators written
  for Eval Protocol import ``eval_protocol``/``reward_kit``, and the bot's own environment is
  the only place those could come from. The evaluator file itself is copied alone into a
  fresh scratch directory, so sibling modules next to the original are not importable.
- a scrubbed environment: PATH, LANG and HOME (the scratch directory), nothing else.
- its own session (process group); at the end the parent SIGKILLs the group and, when it
  could give the child a dedicated uid (running as root), every process of that uid, which
  also catches forks that escaped the group with setsid().
- limits applied by the child itself before it loads any evaluator code
  (``sandbox_child.py``, which reports what the OS enforced vs what only its prelude
  guards). Doing it there rather than in ``preexec_fn`` keeps the fork in the bot's
  multi-threaded asyncio process trivial and lets the child report what worked.
- watchdogs in the parent: per example (the child's SIGALRM cannot interrupt C code such as
  a catastrophic regex) and per batch. A dead or hung child costs only its current example:
  a fresh one continues with the rest, up to ``max_restarts`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import random
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipeline.evaluation.models import EvalExample, EvalRun, ExampleScore, SandboxLimits

__all__ = ["SandboxLimits", "run_evaluator", "validate_evaluator"]

CHILD = Path(__file__).with_name("sandbox_child.py")
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_UIDS = range(61000, 65000)  # above regular users, below nobody (65534)
_GRACE = 1.0  # seconds the child's own alarm gets before the parent kills it
_in_use: set[int] = set()


def _uid_processes(uid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as f:
                    uid_line = next(line for line in f if line.startswith("Uid:"))
            except (OSError, StopIteration):
                continue
            if int(uid_line.split()[1]) == uid:
                pids.append(int(name))
    return pids


def _allocate_uid() -> int | None:
    """A uid no account and no process uses, so RLIMIT_NPROC and the final sweep are ours."""
    if os.geteuid() != 0:
        return None
    for _ in range(20):
        uid = random.choice(_UIDS)
        if uid in _in_use or _uid_processes(uid):
            continue
        try:
            pwd.getpwuid(uid)
            continue
        except KeyError:
            _in_use.add(uid)
            return uid
    return None


def _kill_all(pid: int, uid: int | None) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if uid is None:
        return
    for _ in range(50):  # forks may still be multiplying while we kill; repeat until none
        pids = _uid_processes(uid)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


class _Capture:
    """The evaluator's prints: the head and the tail, at most ``cap`` characters in all."""

    def __init__(self, cap: int) -> None:
        self.half, self.head, self.tail, self.dropped = cap // 2, b"", b"", 0

    def add(self, chunk: bytes) -> None:
        room = self.half - len(self.head)
        self.head, chunk = self.head + chunk[:room], chunk[max(room, 0) :]
        joined = self.tail + chunk
        self.dropped += max(0, len(joined) - self.half)
        self.tail = joined[-self.half :] if self.half else b""

    def text(self) -> str:
        mid = f"\n[... {self.dropped} bytes dropped ...]\n" if self.dropped else ""
        return (self.head + (mid.encode() if mid else b"") + self.tail).decode(errors="replace")


def _death(code: int | None, limits: SandboxLimits) -> str:
    if code == -signal.SIGXCPU:
        return f"exceeded its CPU limit ({limits.cpu_seconds} s)"
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


async def _exit_code(proc: asyncio.subprocess.Process) -> int | None:
    """The child's exit status once its output has ended (kill it if it lingers)."""
    try:
        return await asyncio.wait_for(proc.wait(), 2)
    except TimeoutError:
        _kill_all(proc.pid, None)
        return await proc.wait()


def _result(msg: dict[str, Any] | str, index: int) -> ExampleScore | None:
    """The child's result for example ``index``, or None when the line is not a valid one
    (the evaluator can reach the result channel, so nothing on it is taken on trust)."""
    if not isinstance(msg, dict) or msg.get("t") != "result" or msg.get("index") != index:
        return None
    score, error = msg.get("score"), msg.get("error")
    if error is not None:
        return ExampleScore(index=index, score=None, error=str(error))
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
        return None
    return ExampleScore(index=index, score=float(score), reason=str(msg.get("reason") or ""))


class _Batch:
    def __init__(self, name: str, scratch: Path, uid: int | None, limits: SandboxLimits):
        self.name, self.evaluator = name, scratch / "evaluator.py"
        self.scratch, self.uid, self.limits = scratch, uid, limits
        self.capture = _Capture(limits.max_output_chars)
        self.containment: dict[str, str] = {}
        self.deadline = 0.0

    def _config(self) -> dict[str, Any]:
        cfg = self.limits.model_dump()
        cfg.update(evaluator=str(self.evaluator), scratch=str(self.scratch), uid=self.uid)
        return cfg

    async def process(self, todo: list[EvalExample], got: list[ExampleScore]) -> str | None:
        """Score ``todo`` in one child, appending to ``got``; returns a fatal sentence or None.

        Returns without a fatal sentence after the child dies or hangs on an example (which
        is recorded as errored); the caller starts a fresh child for the rest.
        """
        loop = asyncio.get_running_loop()
        env = {"PATH": _SAFE_PATH, "LANG": os.environ.get("LANG") or "C.UTF-8", "HOME": str(self.scratch)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-B",
            str(CHILD),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=self.scratch,
            start_new_session=True,
            limit=1 << 20,
        )
        assert proc.stdin and proc.stdout and proc.stderr
        stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr

        async def feed() -> None:
            lines = [json.dumps(self._config())] + [ex.model_dump_json() for ex in todo]
            try:
                for line in lines:
                    stdin.write(line.encode() + b"\n")
                    await stdin.drain()
                stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the child died; its exit is reported by the reader

        async def drain_stderr() -> None:
            while chunk := await stderr.read(65536):
                self.capture.add(chunk)

        async def next_message(seconds: float) -> dict[str, Any] | str:
            wait = min(seconds, self.deadline - loop.time())
            try:
                line = await asyncio.wait_for(stdout.readline(), max(wait, 0.001))
            except TimeoutError:
                return "batch" if loop.time() >= self.deadline else "hang"
            except (ValueError, asyncio.LimitOverrunError):
                return "garbled"
            if not line:
                return "eof"
            try:
                msg = json.loads(line)
            except ValueError:
                return "garbled"
            return msg if isinstance(msg, dict) else "garbled"

        tasks = [asyncio.create_task(feed()), asyncio.create_task(drain_stderr())]
        try:
            lim = self.limits
            ready = await next_message(lim.import_seconds + _GRACE)
            if isinstance(ready, dict) and ready.get("t") == "ready":
                self.containment = dict(ready.get("containment") or {})
            elif isinstance(ready, dict) and ready.get("t") == "fatal":
                if ready.get("stage") == "sandbox":
                    return f"The sandbox for {self.name} could not be set up: {ready.get('error')}"
                return f"The evaluator {self.name} could not be loaded: {ready.get('error')}"
            elif ready == "batch":
                return f"The evaluator did not start within the batch limit of {lim.batch_seconds} s"
            elif ready == "hang":
                return f"The evaluator did not load within {lim.import_seconds} s"
            else:
                return f"The evaluator process {_death(await _exit_code(proc), lim)} before it was ready"
            for ex in todo:
                msg = await next_message(lim.per_example_seconds + _GRACE)
                scored = _result(msg, ex.index)
                if scored is not None:
                    got.append(scored)
                    continue
                if msg == "batch":
                    return f"The evaluator did not finish the batch within {lim.batch_seconds} s (stopped at example {ex.index})"
                if msg == "hang":
                    why = f"did not finish within {lim.per_example_seconds} s and was killed"
                elif msg == "eof":
                    why = f"crashed the evaluator process, which {_death(await _exit_code(proc), lim)}"
                else:
                    why = "corrupted the sandbox protocol (the evaluator wrote to its result channel)"
                got.append(ExampleScore(index=ex.index, score=None, error=f"example {ex.index}: evaluate() {why}"))
                return None
            # Every result is in: let the child exit by itself (stdin is closed), so what it
            # printed is flushed and captured instead of lost to the kill below.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 2)
            return None
        finally:
            _kill_all(proc.pid, self.uid)
            try:
                await asyncio.wait_for(proc.wait(), 5)
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
            except TimeoutError:
                pass
            for t in tasks:
                t.cancel()


def _finish(examples: list[EvalExample], got: list[ExampleScore], fatal: str | None, batch: _Batch) -> EvalRun:
    done = {s.index for s in got}
    note = "not scored: " + (fatal or "the batch stopped")
    scores = got + [
        ExampleScore(index=ex.index, score=None, error=f"example {ex.index}: {note}") for ex in examples if ex.index not in done
    ]
    errors = sum(1 for s in scores if s.error is not None)
    if fatal is None and scores and errors == len(scores):
        fatal = f"Every example failed; the first: {scores[0].error}"
    mean = None if fatal or not scores else sum(s.score or 0.0 for s in scores) / len(scores)
    containment = dict(batch.containment)
    containment["cleanup"] = "parent: per-example watchdog, batch timeout, SIGKILL of the process group" + (
        " and of every process of the sandbox uid" if batch.uid is not None else ""
    )
    return EvalRun(scores=scores, mean=mean, errors=errors, fatal=fatal, output=batch.capture.text(), containment=containment)


async def run_evaluator(path: Path, examples: list[EvalExample], *, limits: SandboxLimits | None = None) -> EvalRun:
    """Score ``examples`` with the ``evaluate`` function in ``path``, contained."""
    limits = limits or SandboxLimits()
    path = Path(path)
    scratch = Path(tempfile.mkdtemp(prefix="sftbot-eval-"))
    uid = _allocate_uid()
    batch = _Batch(path.name, scratch, uid, limits)
    got: list[ExampleScore] = []
    try:
        try:
            shutil.copyfile(path, batch.evaluator)
        except OSError as exc:
            return _finish(examples, got, f"The evaluator file {path} cannot be read: {exc.strerror}", batch)
        if uid is not None:
            for p in (scratch, batch.evaluator):
                os.chown(p, uid, uid)
        batch.deadline = asyncio.get_running_loop().time() + limits.batch_seconds
        fatal: str | None = None
        for _attempt in range(limits.max_restarts + 1):
            todo = examples[len(got) :]
            if not todo:
                break
            try:
                fatal = await batch.process(todo, got)
            except OSError as exc:  # e.g. EAGAIN: the machine is out of processes
                fatal = f"The sandbox for {path.name} could not be started: {exc}"
            if fatal:
                break
        else:
            if len(got) < len(examples):
                fatal = f"The evaluator process died or hung {limits.max_restarts + 1} times; the last: {got[-1].error}"
        return _finish(examples, got, fatal, batch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if uid is not None:
            _in_use.discard(uid)


async def validate_evaluator(
    path: Path, examples: list[EvalExample], *, sample: int = 3, limits: SandboxLimits | None = None
) -> EvalRun:
    """The pre-approval check: the evaluator must score the first ``sample`` examples cleanly.

    Stricter than a run: any per-example error becomes ``fatal``, because money is about to be
    spent on the assumption that this evaluator works.
    """
    lim = limits or SandboxLimits(batch_seconds=30.0)
    run = await run_evaluator(path, examples[:sample], limits=lim)
    if run.fatal is None and run.errors:
        first = next(s.error for s in run.scores if s.error)
        run = run.model_copy(update={"fatal": f"The evaluator failed on a sample example: {first}", "mean": None})
    return run
