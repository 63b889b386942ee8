"""Typed values for evaluator runs (sandboxed user evaluators and generated ones)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class EvalExample(BaseModel):
    """One held-out row to score: the conversation including the model's final answer."""

    index: int
    messages: list[dict[str, Any]]
    # The engine always passes the reference answer of the held-out row here.
    ground_truth: str | None = None


class ExampleScore(BaseModel):
    """The score of one example, or why there is none (``error`` names the example)."""

    index: int
    score: float | None
    reason: str = ""
    error: str | None = None


class EvalRun(BaseModel):
    """The outcome of running an evaluator over a batch.

    ``mean`` counts an errored example as 0: when ranking candidates, a model whose outputs
    crash the evaluator must not beat one that was scored everywhere. It is None when
    nothing could be scored or ``fatal`` is set. ``fatal`` is one sentence saying why the
    evaluator could not run at all; per-example problems are in ``scores[i].error``.
    """

    scores: list[ExampleScore]
    mean: float | None
    errors: int
    fatal: str | None = None
    # The evaluator's own prints (stdout and stderr), truncated; useful when it fails.
    output: str = ""
    # What contained the evaluator, as the parent set it up (never what the evaluator claims),
    # e.g. {"network": "os: own network namespace with only a loopback; ..."}.
    containment: dict[str, str] = Field(default_factory=dict)


class SandboxLimits(BaseModel):
    """Limits for one evaluator batch; the defaults suit a few hundred held-out rows."""

    cpu_seconds: int = 30  # per evaluator process (RLIMIT_CPU)
    # Memory of one sandbox, all its processes together: a cgroup's memory.max where the host
    # delegates one, else an equal share of address space (RLIMIT_AS) per process it may hold.
    memory_mb: int = 1024
    per_example_seconds: float = 5.0
    batch_seconds: float = 120.0
    import_seconds: float = 10.0  # loading the evaluator file (top-level code)
    max_output_chars: int = 4000  # each reason and error, and the captured prints
    max_processes: int = 4  # tasks (processes + threads) the evaluator may hold at once (RLIMIT_NPROC, pids.max)
    max_sandboxes: int = 2  # sandboxes (and unsandboxed evaluators) running at once in this process; more wait
    max_file_mb: int = 16  # largest file it may write (RLIMIT_FSIZE)
    max_open_files: int = 256
    tmpfs_mb: int = 64  # its only writable place, /tmp (also HOME and the working directory)
    max_restarts: int = 3  # fresh processes after a crash or hang before giving up
    # The bubblewrap executable: a name looked up on PATH, or a path.
    bwrap: str = "bwrap"
    # The syscall filter; off only to show that the namespaces hold on their own.
    seccomp: bool = True
    # When the sandbox cannot be set up here, evaluators are refused. This admin switch
    # (SFTBOT_UNSAFE_EVALUATORS=true) runs them anyway, WITHOUT isolation: as the bot's
    # user, with its network and files, under rlimits and timeouts only. The containment
    # report of every such run says so.
    unsafe: bool = False


EvaluatorKind = Literal["numbers", "json", "labels", "exact", "sql", "free_text"]


class GeneratedEvaluator(BaseModel):
    """What ``generate_evaluator`` decided and wrote (nothing is written when unsupported)."""

    kind: EvaluatorKind
    supported: bool
    reason: str  # one sentence for the user about what was detected
    evaluator_path: str | None = None
    spec_path: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    rows_inspected: int = 0


class EvaluatorInfo(BaseModel):
    """The evaluator a plan will use, shown for review before approval."""

    kind: str  # "user" or the generated kind ("numbers", "json", ...)
    summary: str  # one sentence: what it checks
    evaluator_path: str
    spec_path: str | None = None
    validated_on: int = 0  # rows it was tried on (reference answers) before approval
    hosted: str | None = None  # a platform-hosted evaluator (accounts/<a>/evaluators/<id>): scored by evaluation jobs
    owner: str | None = None  # who supplied an evaluator file (a user id): the plan says whose it is
