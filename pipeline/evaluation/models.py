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
    # What contained the evaluator on this machine, e.g. {"network": "os: network namespace"}.
    containment: dict[str, str] = Field(default_factory=dict)


class SandboxLimits(BaseModel):
    """Limits for one evaluator batch; the defaults suit a few hundred held-out rows."""

    cpu_seconds: int = 30  # per evaluator process (RLIMIT_CPU)
    memory_mb: int = 1024  # address space (RLIMIT_AS)
    per_example_seconds: float = 5.0
    batch_seconds: float = 120.0
    import_seconds: float = 10.0  # loading the evaluator file (top-level code)
    max_output_chars: int = 4000
    max_processes: int = 32  # tasks (processes + threads) the evaluator may hold at once
    max_file_mb: int = 16  # largest file it may write in its scratch directory (RLIMIT_FSIZE)
    max_open_files: int = 256
    max_restarts: int = 3  # fresh processes after a crash or hang before giving up
    # As root the evaluator normally runs under a dedicated unprivileged uid. If that is not
    # possible, running it as root (prelude guards only: it could read the bot's files and
    # /proc) is refused unless this is set.
    allow_root_fallback: bool = False


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
