"""final_report.md: the run's summary and its evaluation details, rendered by a Jinja2 template."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.dataset.inspection import read_report
from pipeline.domain.records import AuditEvent, CandidateRecord
from pipeline.planning.plan_types import Plan
from pipeline.run.prune_rule import RULE
from pipeline.run.summary import RunSummary
from templates import render

BEFORE_AFTER = "before_after.json"  # the demo's base-vs-tuned comparison, shown when a run has one


def evaluation_section(ws: Path, plan: Plan | None, shipped: CandidateRecord | None, error: str | None) -> dict[str, Any]:
    """The evaluation section: strategy, evaluator, final score and the worst examples."""
    out: dict[str, Any] = {
        "describe": plan.evaluation.describe() if plan else "validation loss",
        "evaluator": None,
        "worst": [],
        "error": error,
    }
    if plan is None or plan.evaluator is None:
        return out
    out["evaluator"] = plan.evaluator
    out["final_score"] = shipped.score if shipped is not None else None
    worst_path = ws / "eval" / "final_worst.json"
    detail_path = ws / "eval" / f"{shipped.slot if shipped else 'final'}.json"
    detail = json.loads(detail_path.read_text(encoding="utf-8")) if detail_path.exists() else {}
    out["failed"] = len(detail.get("failed_answers") or {})
    out["answers"] = len(detail.get("outputs") or [])
    out["reading"] = detail.get("reading")
    if worst_path.exists() and detail:
        for w in json.loads(worst_path.read_text(encoding="utf-8")):
            i = int(w["index"])
            out["worst"].append({**w, "output": str(detail["outputs"][i])[:300], "reference": str(detail["references"][i])[:300]})
    return out


def render_report(summary: RunSummary, *, audit: list[AuditEvent]) -> str:
    """The whole report as Markdown."""
    run = summary.run
    ws = Path(run.workspace)
    inspection_path = ws / "inspection.json"
    inspection = read_report(inspection_path.read_bytes()) if inspection_path.exists() else None
    before_after_path = ws / BEFORE_AFTER
    before_after = json.loads(before_after_path.read_text(encoding="utf-8")) if before_after_path.exists() else None
    return render(
        "final_report.md.j2",
        before_after=before_after,
        elapsed=time.time() - run.created_at,
        s=summary,
        run=run,
        plan=summary.plan,
        inspection=inspection,
        audit=audit,
        evaluation=evaluation_section(ws, summary.plan, summary.shipped, run.evaluator_error),
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        prune_rule=RULE,
    )
