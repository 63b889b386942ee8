"""What changed between two versions of a plan, in the words a reviewer checks.

A revised plan needs a new approval; the approver should not have to compare two long
messages to see what they are approving now. Pure: plans in, short phrases out.
"""

from __future__ import annotations

from pipeline.planning.plan_types import Plan, PlannedJob


def _grid(jobs: list[PlannedJob]) -> str:
    return ", ".join(f"r{j.lora_rank}/lr {j.learning_rate:g}" for j in jobs)


def _models(plan: Plan) -> str:
    return ", ".join(dict.fromkeys(j.base_model for j in plan.candidates)) or "none"


def _epochs(plan: Plan) -> str:
    values = sorted({j.epochs for j in plan.candidates})
    return "/".join(str(v) for v in values) or "-"


def changes(old: Plan, new: Plan) -> list[str]:
    """``["epochs 5 → 2", "grid r8/lr 0.00015, … → …"]``; empty when nothing a person sees changed."""
    pairs = [
        ("dataset", old.dataset, new.dataset),
        ("eval dataset", old.eval_dataset or "held-out split", new.eval_dataset or "held-out split"),
        ("base models", _models(old), _models(new)),
        ("candidates", str(len(old.candidates)), str(len(new.candidates))),
        ("grid", _grid(old.candidates), _grid(new.candidates)),
        ("epochs", _epochs(old), _epochs(new)),
        (
            "HP-tuning rows",
            f"{old.hp_samples:,}" if old.hp_samples else "all",
            f"{new.hp_samples:,}" if new.hp_samples else "all",
        ),
        ("parallel jobs", str(old.max_parallel), str(new.max_parallel)),
        ("judged by", old.evaluation.describe(), new.evaluation.describe()),
        ("final run", "on" if old.final else "skipped", "on" if new.final else "skipped"),
        ("deploy", "yes" if old.deploy else "no", "yes" if new.deploy else "no"),
        ("pruning", "on" if old.prune else "off", "on" if new.prune else "off"),
    ]
    out = [f"{name} {a} → {b}" for name, a, b in pairs if a != b]
    # The grid line already says it when the candidate count changed along with it.
    if any(o.startswith("grid ") for o in out):
        out = [o for o in out if not o.startswith("candidates ")]
    return out


def cost_delta(old: Plan, new: Plan) -> float | None:
    """New total minus old total, in cents as shown (None when either could not be estimated).

    Rounded first, so "$4.09 → $4.04" is followed by "−$0.05", not the −$0.055 behind it.
    """
    if old.cost.total_usd is None or new.cost.total_usd is None:
        return None
    return round(round(new.cost.total_usd, 2) - round(old.cost.total_usd, 2), 2)
