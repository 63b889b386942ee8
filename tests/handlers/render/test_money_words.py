"""A deployment's price is a rate: the budget gate for it approves the rate and its first
period, in those words, on its button's confirm and in its facts."""

from __future__ import annotations

from typing import Any

from handlers.render.budget_gate import budget_gate
from pipeline.domain.gates import BudgetRequest, BudgetStep
from tests.handlers.render.samples import run


def _confirm_text(blocks: list[Any]) -> str:
    for b in blocks:
        for el in b.get("elements", []):
            if "confirm" in el and el["text"]["text"].startswith("Approve"):
                return str(el["confirm"]["text"]["text"])
    raise AssertionError("no Approve button with a confirm")


def test_a_deployment_budget_gate_approves_the_rate_and_its_first_hour() -> None:
    req = BudgetRequest(
        step=BudgetStep.DEPLOY,
        held="deploying",
        spent_usd=9.5,
        next_usd=8.0,
        approved_usd=10.0,
        cap_usd=12.0,
        margin=1.2,
        more_usd=7.5,
        usd_per_hour=8.0,
    )
    msg = budget_gate(run(), req)
    words = "$8/h until deleted or scaled to zero (first hour in this estimate; the idle guard asks after 24 h)"
    assert f"the deployment {words}" in str(msg.blocks)
    confirm = _confirm_text(msg.blocks)
    assert confirm.startswith(f"This approves the deployment's rate, {words}") and "$21.00 in all" in confirm
    final = budget_gate(run(), req.model_copy(update={"step": BudgetStep.FINAL, "usd_per_hour": None}))
    assert "the final run ≈ $8.00" in str(final.blocks) and "until deleted" not in str(final.blocks)
