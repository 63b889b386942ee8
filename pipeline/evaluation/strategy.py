"""Evaluation strategies in the run: set an evaluator up at planning, score candidates and the
final model on held-out outputs.

- validation loss: nothing to do (the platform reports it);
- the user's evaluator: a file inside the evaluator folder, validated on a few rows before
  the plan is approved so a broken one is caught before any money is spent;
- a generated evaluator: written from the data's assistant outputs, shown for review with
  the plan; free-form outputs fall back to validation loss, said plainly.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pipeline.domain.fsio import json_lines
from pipeline.domain.spec import EvalKind, Evaluation, SpecError
from pipeline.evaluation.eval_types import EvalExample, EvalRun, EvaluatorInfo, SandboxLimits
from pipeline.evaluation.generate import generate_evaluator
from pipeline.evaluation.prompts import message_text
from pipeline.evaluation.sandbox.batch import validate_evaluator


class Fallback(BaseModel):
    """The chosen strategy cannot work on this data; the plan uses validation loss instead."""

    reason: str


class EvaluatorBroken(Exception):
    """The user's evaluator failed its check before approval; the message names example and error."""


def held_out_rows(path: Path, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` chat rows of a held-out file (rows without a final answer are skipped)."""
    rows: list[dict[str, Any]] = []
    for row in json_lines(path):
        if len(rows) >= limit:
            break
        msgs = row.get("messages") if isinstance(row, dict) else None
        if isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict) and msgs[-1].get("role") == "assistant":
            rows.append(row)
    return rows


def reference(row: dict[str, Any]) -> str:
    """The row's reference answer: its ``ground_truth`` when present, else the final assistant text."""
    gt = row.get("ground_truth")
    return str(gt) if gt is not None else message_text(row["messages"][-1].get("content"))


def prompt_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation up to (not including) the answer the model must produce."""
    return [{"role": m.get("role", "user"), "content": message_text(m.get("content"))} for m in row["messages"][:-1]]


def examples_for(rows: list[dict[str, Any]], outputs: list[str]) -> list[EvalExample]:
    """Held-out rows with the model's outputs as the final assistant message."""
    return [
        EvalExample(index=i, messages=[*prompt_of(row), {"role": "assistant", "content": out}], ground_truth=reference(row))
        for i, (row, out) in enumerate(zip(rows, outputs, strict=True))
    ]


def resolve_user_evaluator(ref: str, evaluator_dir: Path | None) -> Path:
    """A user's evaluator file, which must live inside the configured evaluator folder."""
    if ref.startswith("accounts/"):
        raise SpecError(
            f"evaluator {ref} lives on the platform; sftbot runs evaluators in its own sandbox and cannot fetch "
            "platform evaluator code yet: put the .py file in SFTBOT_EVALUATOR_DIR and use eval=evaluator:<file>"
        )
    if evaluator_dir is None:
        raise SpecError("no evaluator folder is configured: set SFTBOT_EVALUATOR_DIR and put the evaluator file there")
    base = evaluator_dir.resolve()
    path = (base / ref).resolve()
    if base not in path.parents:
        raise SpecError(f"evaluator {ref} is outside SFTBOT_EVALUATOR_DIR; only files in that folder can be used")
    if not path.is_file():
        raise SpecError(f"evaluator {ref} not found in SFTBOT_EVALUATOR_DIR")
    return path


async def setup_evaluator(
    evaluation: Evaluation, *, data: Path, workspace: Path, evaluator_dir: Path | None, limits: SandboxLimits | None = None
) -> EvaluatorInfo | Fallback | None:
    """Prepare the plan's evaluator (None for validation loss). Raises EvaluatorBroken or SpecError."""
    folder = workspace / "evaluator"
    if evaluation.kind is EvalKind.LOSS:
        return None
    rows = held_out_rows(data, 3)
    if evaluation.kind is EvalKind.GENERATE:
        gen = generate_evaluator(data, folder)
        if not gen.supported or not gen.evaluator_path:
            return Fallback(
                reason=f"{gen.reason} I can't check such outputs objectively, so the plan uses validation loss instead."
            )
        info = EvaluatorInfo(kind=gen.kind, summary=gen.reason, evaluator_path=gen.evaluator_path, spec_path=gen.spec_path)
    else:
        if not evaluation.ref:
            raise SpecError("which evaluator? name its file: eval=evaluator:<file in SFTBOT_EVALUATOR_DIR>")
        source = resolve_user_evaluator(evaluation.ref, evaluator_dir)
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / "evaluator.py"
        shutil.copyfile(source, dest)
        info = EvaluatorInfo(kind="user", summary=f"the evaluator file {evaluation.ref}", evaluator_path=str(dest))
    # Try it on reference answers first: an evaluator that cannot score the data's own
    # answers is broken, and this is the last moment before money is spent.
    examples = examples_for(rows, [reference(r) for r in rows])
    check: EvalRun = await validate_evaluator(Path(info.evaluator_path), examples, limits=limits)
    if check.fatal:
        raise EvaluatorBroken(check.fatal)
    return info.model_copy(update={"validated_on": len(rows)})
