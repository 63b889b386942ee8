"""Generate an evaluator from the training data (evaluation strategy C).

Look at the reference answers (final assistant message of each chat row), decide whether
they have a checkable shape (numbers, JSON objects, a closed label set, short strings, SQL)
and render ``evaluator.py`` + ``eval_spec.md`` from the Jinja2 templates. Free-form prose has
no honest automatic check: then nothing is written and the caller falls back to validation
loss, saying why.

Detection uses the very functions the rendered evaluator will use (the template is executed
here), so "this looks numeric" and "this number is extracted" cannot drift apart.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.evaluation.eval_types import EvaluatorKind, GeneratedEvaluator
from pipeline.evaluation.scores import strip_thinking
from templates import code_environment

SHARE = 0.9  # a kind must fit at least this share of the answers
REQUIRED_SHARE = 0.95  # a JSON key present this often is required
MAX_LABELS = 20
LABEL_MAX_WORDS = 4
EXACT_MAX_WORDS = 8
MIN_ROWS_FOR_TEXT = 10  # labels and short answers are only inferred from this many rows
ABS_TOL = REL_TOL = 1e-6
_SQL = re.compile(r"^\s*(?:```\w*\s*)?(?:select|with|insert|update|delete)\b", re.IGNORECASE)
_ENDS_IN_NUMBER = re.compile(r"(?:\\boxed\s*\{|####)|\d\s*%?\s*[.!)*]*\s*$")
_TEMPLATES: dict[str, str] = {
    "numbers": "evaluator_numbers.py.j2",
    "json": "evaluator_json.py.j2",
    "labels": "evaluator_text_match.py.j2",
    "exact": "evaluator_text_match.py.j2",
    "sql": "evaluator_sql.py.j2",
}
_TITLES = {"numbers": "final number", "json": "JSON object", "labels": "label", "exact": "short exact answer", "sql": "SQL query"}


@dataclass
class _Row:
    prompt: list[dict[str, Any]]  # every message before the reference answer
    answer: str


@dataclass
class _Plan:
    kind: EvaluatorKind
    reason: str
    context: dict[str, Any]
    details: dict[str, Any]


def _text(content: object) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return None


def _row(obj: dict[str, Any]) -> _Row | None:
    messages = obj.get("messages")
    if isinstance(messages, list):
        msgs = [m for m in messages if isinstance(m, dict)]
        for i in range(len(msgs) - 1, -1, -1):
            answer = _text(msgs[i].get("content")) if msgs[i].get("role") == "assistant" else None
            if answer is not None:
                return _Row(msgs[:i], strip_thinking(answer))
        truth = obj.get("ground_truth")  # a prompt-only row that carries its answer
        return _Row(msgs, strip_thinking(str(truth))) if truth is not None else None
    for q, a in (("question", "answer"), ("prompt", "completion")):
        if isinstance(obj.get(q), str) and obj.get(a) is not None:
            return _Row([{"role": "user", "content": obj[q]}], strip_thinking(str(obj[a])))
    return None


def _read(path: Path, max_rows: int) -> list[_Row]:
    rows: list[_Row] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # inspection reports bad lines; here they just do not vote
            row = _row(obj) if isinstance(obj, dict) else None
            if row is not None and row.answer:
                rows.append(row)
                if len(rows) >= max_rows:
                    break
    return rows


def _namespace(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "generated_evaluator"}
    exec(compile(source, "evaluator.py", "exec"), namespace)
    return namespace


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "null"


def _json_plan(objects: list[dict[str, Any]], n: int, norm: Callable[[str], str]) -> _Plan:
    seen = Counter(k for o in objects for k in o)
    required = [k for k, c in seen.items() if c >= REQUIRED_SHARE * len(objects)]
    optional = [k for k in seen if k not in required]
    types = {k: sorted({_json_type(o[k]) for o in objects if k in o}) for k in seen}
    enums: dict[str, list[str]] = {}
    for k in seen:
        values = [o[k] for o in objects if k in o]
        if types[k] != ["string"] or len(values) < 20:
            continue
        distinct = sorted({norm(v) for v in values})
        # "Closed": few values, or a few more that each recur often.
        if len(distinct) <= 10 or (len(distinct) <= MAX_LABELS and len(values) >= 10 * len(distinct)):
            enums[k] = distinct
    keys = ", ".join(required)
    reason = (
        f"Outputs are JSON objects with keys {keys}; each correct key earns 1/{len(required)}"
        if required
        else "Outputs are JSON objects with varying keys; each correct key earns an equal share"
    )
    details = {
        "required_keys": required,
        "optional_keys": optional,
        "types": types,
        "enums": enums,
        "rows_matching": len(objects),
    }
    ctx = {"required": required, "optional": optional, "types": types, "enums": enums}
    return _Plan("json", reason, ctx, details)


def _plan(rows: list[_Row], h: dict[str, Any]) -> _Plan:
    n = len(rows)
    answers = [r.answer for r in rows]
    objects = []
    for a in answers:
        try:
            value = json.loads(h["strip_fences"](a))
        except ValueError:
            continue
        if isinstance(value, dict):
            objects.append(value)
    if len(objects) >= SHARE * n:
        return _json_plan(objects, n, h["normalise_text"])
    sql = sum(1 for a in answers if _SQL.match(a))
    if sql >= SHARE * n:
        with_schema = sum(1 for r in rows if "create table" in json.dumps(r.prompt).lower())
        reason = (
            f"Outputs are SQL queries ({sql} of {n} rows); a query scores 1 when it matches the reference "
            "after normalisation or returns the same rows on a test database built from the prompt's "
            "CREATE TABLE statements"
        )
        return _Plan("sql", reason, {}, {"rows_matching": sql, "rows_with_schema": with_schema})
    numeric = [a for a in answers if _ENDS_IN_NUMBER.search(a) and h["extract_number"](a) is not None]
    if len(numeric) >= SHARE * n:
        reason = (
            f"Outputs end in a number ({len(numeric)} of {n} rows); the final number is compared with the reference within 1e-6"
        )
        return _Plan(
            "numbers",
            reason,
            {"abs_tol": ABS_TOL, "rel_tol": REL_TOL},
            {"rows_matching": len(numeric), "abs_tol": ABS_TOL, "rel_tol": REL_TOL},
        )
    words = [len(a.split()) for a in answers]
    counts = Counter(h["normalise_text"](a) for a in answers)
    short = sum(1 for w in words if w <= EXACT_MAX_WORDS)
    if (
        len(counts) <= MAX_LABELS
        and n >= max(MIN_ROWS_FOR_TEXT, 2 * len(counts))
        and all(len(label.split()) <= LABEL_MAX_WORDS for label in counts)
    ):
        labels = sorted(counts)
        reason = (
            f"Outputs are one of {len(labels)} labels ({', '.join(labels[:8])}"
            f"{', ...' if len(labels) > 8 else ''}); an answer scores 1 when it equals the reference "
            "label, ignoring case and spacing"
        )
        return _Plan("labels", reason, {"labels": labels}, {"labels": labels, "counts": dict(counts)})
    if short >= SHARE * n and n >= MIN_ROWS_FOR_TEXT:
        reason = (
            f"Outputs are short answers ({short} of {n} rows have at most {EXACT_MAX_WORDS} words) with no "
            "closed set; an answer scores 1 when it equals the reference, ignoring case and spacing"
        )
        return _Plan("exact", reason, {"labels": None}, {"rows_matching": short, "max_words": EXACT_MAX_WORDS})
    if n < MIN_ROWS_FOR_TEXT:
        return _Plan(
            "free_text",
            f"Only {n} answers, too few to infer a checkable format, so no evaluator was "
            "generated; the run is judged by validation loss",
            {},
            {},
        )
    reason = (
        f"Outputs are free-form text ({n} rows, median {statistics.median(words):g} words) with no checkable "
        "structure (not numbers, JSON, labels, short answers or SQL), so no evaluator was generated; "
        "the run is judged by validation loss"
    )
    return _Plan("free_text", reason, {}, {"median_words": statistics.median(words)})


def generate_evaluator(train_path: Path, out_dir: Path, *, max_rows: int = 2000) -> GeneratedEvaluator:
    """Inspect up to ``max_rows`` rows of ``train_path`` and write an evaluator into ``out_dir``.

    Writes ``evaluator.py`` and ``eval_spec.md`` only when the outputs are checkable; for
    free-form text returns ``supported=False`` with the reason and writes nothing.
    """
    train_path, out_dir = Path(train_path), Path(out_dir)
    rows = _read(train_path, max_rows)
    if not rows:
        return GeneratedEvaluator(
            kind="free_text",
            supported=False,
            reason=(
                f"No assistant answers were found in {train_path.name}, so no evaluator was generated; "
                "the run is judged by validation loss"
            ),
        )
    env = code_environment()
    base = {"source_name": train_path.name, "rows": len(rows)}
    helpers = _namespace(env.get_template(_TEMPLATES["numbers"]).render(base, abs_tol=ABS_TOL, rel_tol=REL_TOL))
    plan = _plan(rows, helpers)
    if plan.kind == "free_text":
        return GeneratedEvaluator(
            kind="free_text", supported=False, reason=plan.reason, details=plan.details, rows_inspected=len(rows)
        )
    context = {**base, **plan.context, "kind": plan.kind, "kind_title": _TITLES[plan.kind], "summary": plan.reason}
    source = env.get_template(_TEMPLATES[plan.kind]).render(context)
    evaluate = _namespace(source)["evaluate"]
    for row in rows[:20]:  # the rendered code must run and give the reference full marks
        outcome = evaluate([*row.prompt, {"role": "assistant", "content": row.answer}], ground_truth=row.answer)
        if outcome["score"] != 1.0:
            raise RuntimeError(f"generated {plan.kind} evaluator rejects its own reference: {outcome}")
    out_dir.mkdir(parents=True, exist_ok=True)
    evaluator_path, spec_path = out_dir / "evaluator.py", out_dir / "eval_spec.md"
    evaluator_path.write_text(source, encoding="utf-8")
    spec_path.write_text(env.get_template("eval_spec.md.j2").render(context), encoding="utf-8")
    return GeneratedEvaluator(
        kind=plan.kind,
        supported=True,
        reason=plan.reason,
        evaluator_path=str(evaluator_path),
        spec_path=str(spec_path),
        details=plan.details,
        rows_inspected=len(rows),
    )
