"""Run a user's evaluator file (bring your own) in the evaluator sandbox, one batch at a time.

The evaluator is untrusted code: it may not import, raise, return garbage, hang, eat memory,
fork, read the bot's files or call the network, and it can write anything to the channel
its results come back on. Each of those must end as a clear sentence naming the example,
while the bot keeps working. How:

- containment is bubblewrap's (``bwrap.py``: namespaces, read-only binds, a dedicated host
  uid, rlimits, seccomp). ``probe.py`` checks that it can be built here; when it cannot,
  the evaluator does not run and ``fatal`` says what is missing, unless an administrator
  chose to run evaluators without isolation (``SandboxLimits.unsafe``, ``unsafe.py``).
- the evaluator file is copied alone into a fresh scratch directory: neither sibling
  modules nor the original path (which may name a user or the data dir) reach the sandbox.
- every line from the child is decoded as untrusted data and every text is capped here
  (``protocol.py``); the containment report is the parent's own (``containment.py``).
- watchdogs in the parent: per example (the child's SIGALRM cannot interrupt C code such as
  a catastrophic regex) and per batch. A dead or hung child costs only its current example:
  a fresh sandbox continues with the rest, up to ``max_restarts`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import pwd
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.evaluation.eval_types import EvalExample, EvalRun, ExampleScore, SandboxLimits
from pipeline.evaluation.sandbox import cgroup, containment
from pipeline.evaluation.sandbox.bwrap import EVALUATOR_INSIDE, Sandbox, Spec, StartError, allocate_host_uid, release_host_uid
from pipeline.evaluation.sandbox.layout import layout
from pipeline.evaluation.sandbox.probe import Host, host, sandbox_problem
from pipeline.evaluation.sandbox.protocol import Capture, LoadFailed, Message, Ready, clip, decode, scored
from pipeline.evaluation.sandbox.rlimits import budget_problem
from pipeline.evaluation.sandbox.syscall_filter import evaluator_program
from pipeline.evaluation.sandbox.unsafe import Unsandboxed

__all__ = ["SandboxLimits", "run_evaluator", "sandbox_problem", "validate_evaluator"]

_GRACE = 1.0  # seconds the child's own alarm gets before the parent kills it
_SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class Contained(Protocol):
    """A started evaluator process and the way to end it with everything it started."""

    proc: asyncio.subprocess.Process

    async def stop(self, *, grace: float) -> None: ...

    def killed_by(self, code: int | None) -> int | None: ...


@dataclass
class _Mode:
    """How this batch's evaluator processes start, where they see the evaluator, and what contains them."""

    start: Callable[[], Awaitable[Contained]]
    evaluator: str
    containment: dict[str, str]


def _death(code: int | None, signum: int | None, limits: SandboxLimits) -> str:
    if signum == signal.SIGXCPU:
        return f"exceeded its CPU limit ({limits.cpu_seconds} s)"
    if signum is not None:
        try:
            return f"was killed by {signal.Signals(signum).name}"
        except ValueError:
            return f"was killed by signal {signum}"
    return f"exited with code {code}"


class _Child:
    """One evaluator process of a batch: its pipes, read against the batch's deadline."""

    def __init__(self, box: Contained, deadline: float, limits: SandboxLimits) -> None:
        proc = box.proc
        assert proc.stdin and proc.stdout and proc.stderr
        self.box, self.proc, self.deadline, self.limits = box, proc, deadline, limits
        self.stdin, self.stdout, self.stderr = proc.stdin, proc.stdout, proc.stderr
        self.loop = asyncio.get_running_loop()

    async def feed(self, lines: list[str]) -> None:
        try:
            for line in lines:
                self.stdin.write(line.encode() + b"\n")
                await self.stdin.drain()
            self.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the child died; its exit is reported by the reader

    async def drain_stderr(self, capture: Capture) -> None:
        while chunk := await self.stderr.read(65536):
            capture.add(chunk)

    async def next_message(self, seconds: float) -> Message | str:
        """The child's next message, or what happened instead: "batch" (the batch's time is up),
        "hang" (this wait's), "garbled" or "eof"."""
        wait = min(seconds, self.deadline - self.loop.time())
        try:
            line = await asyncio.wait_for(self.stdout.readline(), max(wait, 0.001))
        except TimeoutError:
            return "batch" if self.loop.time() >= self.deadline else "hang"
        except (ValueError, asyncio.LimitOverrunError):  # a line over protocol.LINE_LIMIT
            return "garbled"
        if not line:
            return "eof"
        return decode(line) or "garbled"

    async def exit_status(self) -> str:
        try:
            code = await asyncio.wait_for(self.proc.wait(), 2)
        except TimeoutError:
            await self.box.stop(grace=0)
            code = await self.proc.wait()
        return _death(code, self.box.killed_by(code), self.limits)


class _Batch:
    def __init__(self, name: str, mode: _Mode, limits: SandboxLimits):
        self.name, self.mode, self.limits = name, mode, limits
        self.capture = Capture(limits.max_output_chars)
        self.deadline = 0.0

    def _config(self) -> dict[str, Any]:
        lim = self.limits
        return {
            "evaluator": self.mode.evaluator,
            "import_seconds": lim.import_seconds,
            "per_example_seconds": lim.per_example_seconds,
            "max_output_chars": lim.max_output_chars,
        }

    async def process(self, todo: list[EvalExample], got: list[ExampleScore]) -> str | None:
        """Score ``todo`` in one child, appending to ``got``; returns a fatal sentence or None.

        Returns without a fatal sentence after the child dies, hangs or breaks the protocol on
        an example (which is recorded as errored); the caller starts a fresh child for the rest.
        """
        child = _Child(await self.mode.start(), self.deadline, self.limits)
        lines = [json.dumps(self._config())] + [ex.model_dump_json() for ex in todo]
        tasks = [asyncio.create_task(child.feed(lines)), asyncio.create_task(child.drain_stderr(self.capture))]
        finished = False
        try:
            fatal = await self._ready(child)
            if fatal is None:
                finished, fatal = await self._score(child, todo, got)
            return fatal
        finally:
            # Every result in: let the child exit by itself (stdin is closed), so what it
            # printed is flushed and captured instead of lost to the kill.
            await child.box.stop(grace=2.0 if finished else 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
            for t in tasks:
                t.cancel()

    async def _ready(self, child: _Child) -> str | None:
        """Wait for the child to load the evaluator; a fatal sentence when it does not."""
        lim = self.limits
        ready = await child.next_message(lim.import_seconds + _GRACE)
        if isinstance(ready, LoadFailed):
            return f"The evaluator {self.name} could not be loaded: {clip(ready.error, lim.max_output_chars)}"
        if ready == "batch":
            return f"The evaluator did not start within the batch limit of {lim.batch_seconds} s"
        if ready == "hang":
            return f"The evaluator did not load within {lim.import_seconds} s"
        if ready == "eof":
            return f"The evaluator process {await child.exit_status()} before it was ready"
        if not isinstance(ready, Ready):
            return f"The evaluator {self.name} broke the sandbox protocol before it was ready (it wrote to its result channel)"
        return None

    async def _score(self, child: _Child, todo: list[EvalExample], got: list[ExampleScore]) -> tuple[bool, str | None]:
        """Score the examples in turn: (every one answered, a fatal sentence). An example the
        child dies, hangs or breaks the protocol on is recorded as errored and ends this child."""
        lim = self.limits
        for ex in todo:
            msg = await child.next_message(lim.per_example_seconds + _GRACE)
            score = scored(msg if not isinstance(msg, str) else None, ex.index, lim.max_output_chars)
            if score is not None:
                got.append(score)
                continue
            if msg == "batch":
                return (
                    False,
                    f"The evaluator did not finish the batch within {lim.batch_seconds} s (stopped at example {ex.index})",
                )
            why = await self._why(child, msg)
            got.append(ExampleScore(index=ex.index, score=None, error=f"example {ex.index}: evaluate() {why}"))
            return False, None
        return True, None

    async def _why(self, child: _Child, msg: Message | str) -> str:
        """Why an example got no score (the child hung, died, or wrote garbage)."""
        if msg == "hang":
            return f"did not finish within {self.limits.per_example_seconds} s and was killed"
        if msg == "eof":
            return f"crashed the evaluator process, which {await child.exit_status()}"
        return "corrupted the sandbox protocol (the evaluator wrote to its result channel)"


def _finish(
    examples: list[EvalExample], got: list[ExampleScore], fatal: str | None, output: str, report: dict[str, str]
) -> EvalRun:
    done = {s.index for s in got}
    note = "not scored: " + (fatal or "the batch stopped")
    scores = got + [
        ExampleScore(index=ex.index, score=None, error=f"example {ex.index}: {note}") for ex in examples if ex.index not in done
    ]
    errors = sum(1 for s in scores if s.error is not None)
    if fatal is None and scores and errors == len(scores):
        fatal = f"Every example failed; the first: {scores[0].error}"
    mean = None if fatal or not scores else sum(s.score or 0.0 for s in scores) / len(scores)
    return EvalRun(scores=scores, mean=mean, errors=errors, fatal=fatal, output=output, containment=report)


def _isolated(found: Host, limits: SandboxLimits, evaluator: Path, uid: int, cgroups: cgroup.Delegated | None) -> _Mode:
    assert found.tools is not None
    program = evaluator_program() if limits.seccomp else None
    tools = found.tools
    lay = layout(sys.executable, (tools.setpriv, tools.prlimit))
    spec = Spec(tools, lay, limits, uid, evaluator.read_bytes(), program.bpf if program else None, cgroups=cgroups)
    seccomp = program.note if program else None
    report = containment.isolated(limits, bwrap=found.version, host_uid=uid, seccomp=seccomp, cgroup=cgroups is not None)
    return _Mode(lambda: Sandbox.start(spec), EVALUATOR_INSIDE, report)


_slots: dict[tuple[asyncio.AbstractEventLoop, int], asyncio.Semaphore] = {}


def _slot(limit: int) -> asyncio.Semaphore:
    """The sandboxes this event loop (the bot's one) may run at once: the total memory budget is
    ``limit`` x ``memory_mb``. Per loop, because an asyncio semaphore belongs to one."""
    key = (asyncio.get_running_loop(), limit)
    if key not in _slots:
        _slots[key] = asyncio.Semaphore(limit)
    return _slots[key]


@functools.cache
def _delegated(total_mb: int) -> cgroup.Delegated | None:
    return cgroup.delegate(total_mb)


def _unsandboxed(problem: str, limits: SandboxLimits, scratch: Path, evaluator: Path) -> _Mode:
    prlimit, setpriv = shutil.which("prlimit", path=_SYSTEM_PATH), shutil.which("setpriv", path=_SYSTEM_PATH)
    if prlimit is None or setpriv is None:
        raise StartError("prlimit or setpriv is not installed: apt-get install util-linux")
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = f"uid {os.geteuid()}"
    report = containment.unsandboxed(limits, problem=problem, user=user)
    return _Mode(
        lambda: Unsandboxed.start(setpriv=setpriv, prlimit=prlimit, scratch=scratch, limits=limits), str(evaluator), report
    )


async def _run(path: Path, examples: list[EvalExample], limits: SandboxLimits) -> EvalRun:
    found = await asyncio.to_thread(host, limits.bwrap)
    if found.problem is not None and not limits.unsafe:
        refused = f"The evaluator was not run, because the sandbox cannot be set up here: {found.problem}"
        return _finish(examples, [], refused, "", {"sandbox": f"unavailable, evaluator refused: {found.problem}"})
    cgroups = await asyncio.to_thread(_delegated, limits.memory_mb * limits.max_sandboxes) if found.problem is None else None
    if (why := budget_problem(limits, cgroup=cgroups is not None)) is not None:
        return _finish(examples, [], f"The evaluator was not run: {why}", "", {"limits": f"refused: {why}"})
    async with _slot(limits.max_sandboxes):
        return await _contained(path, examples, limits, found, cgroups)


async def _contained(
    path: Path, examples: list[EvalExample], limits: SandboxLimits, found: Host, cgroups: cgroup.Delegated | None
) -> EvalRun:
    scratch = Path(tempfile.mkdtemp(prefix="sftbot-eval-"))
    uid: int | None = None
    try:
        copy = scratch / "evaluator.py"
        try:
            shutil.copyfile(path, copy)
            copy.chmod(0o444)
        except OSError as exc:
            return _finish(examples, [], f"The evaluator file {path} cannot be read: {exc.strerror}", "", {})
        if found.problem is None:
            uid = allocate_host_uid()
            mode = _isolated(found, limits, copy, uid, cgroups)
        else:
            mode = _unsandboxed(found.problem, limits, scratch, copy)
        batch = _Batch(path.name, mode, limits)
        batch.deadline = asyncio.get_running_loop().time() + limits.batch_seconds
        got: list[ExampleScore] = []
        fatal: str | None = None
        for _attempt in range(limits.max_restarts + 1):
            todo = examples[len(got) :]
            if not todo:
                break
            try:
                fatal = await batch.process(todo, got)
            except (StartError, OSError) as exc:  # e.g. EAGAIN: the machine is out of processes
                fatal = f"The sandbox for {path.name} could not be started: {exc}"
            if fatal:
                break
        else:
            if len(got) < len(examples):
                fatal = f"The evaluator process died or hung {limits.max_restarts + 1} times; the last: {got[-1].error}"
        return _finish(examples, got, fatal, batch.capture.text(), mode.containment)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if uid is not None:
            release_host_uid(uid)


async def run_evaluator(path: Path, examples: list[EvalExample], *, limits: SandboxLimits | None = None) -> EvalRun:
    """Score ``examples`` with the ``evaluate`` function in ``path``, contained. Never raises."""
    limits = limits or SandboxLimits()
    try:
        return await _run(Path(path), examples, limits)
    except Exception as exc:  # the promise to every caller: a broken batch is an EvalRun with `fatal`
        return _finish(examples, [], f"The evaluator sandbox failed: {type(exc).__name__}: {exc}", "", {})


async def validate_evaluator(
    path: Path, examples: list[EvalExample], *, sample: int = 3, limits: SandboxLimits | None = None
) -> EvalRun:
    """The pre-approval check: the evaluator must score the first ``sample`` examples cleanly.

    Stricter than a run: any per-example error becomes ``fatal``, because money is about to be
    spent on the assumption that this evaluator works.
    """
    # The check before approval tries three rows: half a minute is plenty, and a person waits.
    lim = (limits or SandboxLimits()).model_copy(update={"batch_seconds": min((limits or SandboxLimits()).batch_seconds, 30.0)})
    run = await run_evaluator(path, examples[:sample], limits=lim)
    if run.fatal is None and run.errors:
        first = next(s.error for s in run.scores if s.error)
        run = run.model_copy(update={"fatal": f"The evaluator failed on a sample example: {first}", "mean": None})
    return run
