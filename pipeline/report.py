"""final_report.md: assembled from the store as plain data, rendered by a Jinja2 template."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from pipeline.cost import money
from pipeline.curves import plot_losses
from pipeline.dataset.report import InspectionReport
from pipeline.jobs import load_points
from pipeline.scoreboard import rank
from pipeline.store import runs as q
from pipeline.store.records import RunRecord

if TYPE_CHECKING:
    from pipeline.runner import Runner


@lru_cache(maxsize=1)
def templates() -> Environment:
    """The package's templates (shipped in the wheel, not read from the source tree).

    Cached: compiling the report template costs ~0.5 s, far more than rendering it.
    """
    env = Environment(loader=PackageLoader("templates", ""), undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters["money"] = money
    env.filters["when"] = lambda t: datetime.fromtimestamp(float(t), tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if t else ""
    env.filters["loss"] = lambda v: "n/a" if v is None else f"{float(v):.4f}"
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{float(v):+.0f}%"
    return env


def delta_pct(estimated: float | None, actual: float | None) -> float | None:
    if estimated is None or actual is None or estimated == 0:
        return None
    return (actual - estimated) / estimated * 100


async def report_data(r: Runner, run: RunRecord) -> dict[str, Any]:
    """Everything the report shows, as plain values."""
    plan = await q.get_plan(r.db, run.id, run.plan_version)
    ws = Path(run.workspace)
    inspection_path = ws / "inspection.json"
    inspection = (
        InspectionReport.model_validate_json(inspection_path.read_text(encoding="utf-8")) if inspection_path.exists() else None
    )
    cands = await q.candidates(r.db, run.id)
    sweep = [c for c in cands if c.idx > 0]
    final = next((c for c in cands if c.idx == 0), None)
    winner = next((c for c in cands if c.idx == run.winner), None)
    gates = await r.db.gate_decisions(run.id)
    promoted = next((g for g in gates if g.gate == "promotion"), None)
    resources = await r.db.resources(run.id)
    deployment = next((res for res in resources if res.kind == "deployment"), None)
    snippet = None
    if deployment is not None and deployment.details.get("model_string"):
        from pipeline.platforms.base import DeploymentStatus

        snippet = r.platform.snippet(DeploymentStatus.model_validate(deployment.details)).code
    evaluation = _evaluation(ws, plan, final or winner, await r.db.get_ref(run.id, "evaluator_error"))
    actual_training = (
        sum(c.cost_usd for c in cands if c.cost_usd is not None) if any(c.cost_usd is not None for c in cands) else None
    )
    est = plan.cost if plan else None
    return {
        "run": run,
        "plan": plan,
        "inspection": inspection,
        "candidates": rank(sweep),
        "final": final,
        "winner": winner,
        "promoted": promoted,
        "gates": gates,
        "audit": await r.db.audit_trail(run.id),
        "resources": resources,
        "deployment": deployment,
        "snippet": snippet,
        "platform": r.platform.name,
        "evaluation": evaluation,
        "cost": {
            "training_est": est.training_usd if est else None,
            "inference_est": est.inference_usd if est else None,
            "total_est": est.total_usd if est else None,
            "training_actual": actual_training,
            "training_delta": delta_pct(est.training_usd if est else None, actual_training),
            "compute_minutes": est.compute_minutes if est else None,
        },
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _evaluation(ws: Path, plan: Any, shipped: Any, error: str | None) -> dict[str, Any]:
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
    name = "final" if shipped is not None and shipped.idx == 0 else f"c{shipped.idx if shipped else 0}"
    detail_path = ws / "eval" / f"{name}.json"
    if worst_path.exists() and detail_path.exists():
        detail = json.loads(detail_path.read_text(encoding="utf-8"))
        for w in json.loads(worst_path.read_text(encoding="utf-8")):
            i = int(w["index"])
            out["worst"].append(
                {
                    **w,
                    "output": str(detail["outputs"][i])[:300],
                    "reference": str(detail["references"][i])[:300],
                }
            )
    return out


async def write_report(r: Runner, run: RunRecord) -> tuple[dict[str, str], float | None]:
    """Render final_report.md and loss_curves.png into the workspace; returns paths and actual cost."""
    data = await report_data(r, run)
    ws = Path(run.workspace)
    png = ws / "loss_curves.png"
    if data["final"] is not None or not png.exists():  # without a final run the gate's picture is complete
        series = {c.label: load_points(ws, c.job_id) for c in [*data["candidates"], *([data["final"]] if data["final"] else [])]}
        await asyncio.to_thread(plot_losses, series, png, title=f"Run #{run.number}")
    text = templates().get_template("final_report.md.j2").render(**data)
    path = ws / "final_report.md"
    path.write_text(text, encoding="utf-8")
    return {"final_report.md": str(path), "loss_curves.png": str(png)}, data["cost"]["training_actual"]
