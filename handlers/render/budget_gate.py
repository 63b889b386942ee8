"""The budget gate: a paid step would take the run past its cap, so it waits for a person.

Short proportional lines (it is read on phones): what the step needs, what was spent and
approved, why (this run's jobs cost N x their estimate), and three choices. The amount on
the button is the whole decision, so nobody approves an unnamed sum.
"""

from __future__ import annotations

from handlers.render.action_ids import BUDGET_RAISE, BUDGET_SKIP, CANCEL
from handlers.render.mrkdwn import Block, Message, actions, button, confirm, context, encode, section
from handlers.render.people import Ask
from pipeline.domain.gates import BudgetRequest, BudgetStep
from pipeline.domain.money import money, open_ended
from pipeline.domain.records import RunRecord
from pipeline.run.bill import Bill

_SKIP = {BudgetStep.FINAL: "Skip the final run", BudgetStep.DEPLOY: "Skip the deployment"}
_SKIPPED = {
    BudgetStep.FINAL: "the promoted candidate ships as it is (trained on the sweep's sample), evaluated and deployed",
    BudgetStep.DEPLOY: "the model is kept but not deployed; the report says how to deploy it later",
}


def _skipped(req: BudgetRequest) -> str:
    if req.step is BudgetStep.DEPLOY and req.held == "evaluating":  # it would have been scored on that deployment
        return "the model is kept but neither deployed nor scored on the held-out set"
    return _SKIPPED[req.step]


def step_cost(req: BudgetRequest) -> str:
    """What the held step costs: a job's estimate, or a deployment's rate said as open-ended."""
    if req.step is BudgetStep.DEPLOY and req.usd_per_hour is not None:
        return f"{req.step.label} {open_ended(req.usd_per_hour)}"
    return f"{req.step.label} ≈ {money(req.next_usd)}"


def approves(number: int, req: BudgetRequest) -> str:
    """What approving approves, in the words the confirm dialog and the terminal use."""
    cap = money((req.approved_usd + req.more_usd) * req.margin)
    if req.step is BudgetStep.DEPLOY and req.usd_per_hour is not None:
        return (
            f"This approves the deployment's rate, {open_ended(req.usd_per_hour)}; "
            f"run #{number} may then spend up to {cap} in all before asking again."
        )
    return f"Run #{number} may then spend up to {cap} in all."


def _facts(req: BudgetRequest) -> str:
    why = f" · this run's jobs cost {req.overrun:.1f}× their estimate" if req.overrun and req.overrun > 1.05 else ""
    return (
        f"committed {money(req.spent_usd)} · approved {money(req.approved_usd)} · cap {money(req.cap_usd)} "
        f"(approved × {req.margin:g}) · {step_cost(req)}{why}"
    )


def headline(run: RunRecord, req: BudgetRequest) -> str:
    return f"💸 *Budget gate — run #{run.number}*: {req.step.label} needs ≈ {money(req.more_usd)} more than approved"


def decision_buttons(run: RunRecord, req: BudgetRequest) -> list[Block]:
    """Approve $X more (the amount on the button) and Skip the step: the gate's two decisions."""
    value = encode(run=run.id, b=req.number)
    return [
        button(
            f"Approve {money(req.more_usd)} more",
            BUDGET_RAISE,
            value,
            style="primary",
            confirm_=confirm(
                f"Approve {money(req.more_usd)} more?",
                approves(run.number, req),
                "Approve",
            ),
        ),
        button(_SKIP[req.step], BUDGET_SKIP, value, confirm_=confirm(f"{_SKIP[req.step]}?", f"Then {_skipped(req)}.", "Skip it")),
    ]


def budget_gate(run: RunRecord, req: BudgetRequest, *, ask: Ask | None = None) -> Message:
    who = f"\n👉 *Decide:* {ask.mentions()}" if ask is not None else ""
    blocks = [
        section(
            f"{headline(run, req)}. It has not started; nothing new is created until someone decides. Running work goes on.{who}"
        ),
        context(_facts(req)),
        actions(
            *decision_buttons(run, req),
            button(
                "Cancel run",
                CANCEL,
                encode(run=run.id, v=run.plan_version),
                style="danger",
                confirm_=confirm("Cancel this run?", f"Run #{run.number} stops here.", "Cancel run", "Keep it"),
            ),
            block_id=f"budget|{run.id}|{req.number}",
        ),
    ]
    return Message(text=f"Run #{run.number}: {req.step.label} needs ≈ {money(req.more_usd)} more than approved", blocks=blocks)


def budget_stamped(run: RunRecord, req: BudgetRequest, stamp_text: str) -> Message:
    blocks = [section(headline(run, req)), context(_facts(req)), section(stamp_text)]
    return Message(text=f"Run #{run.number} budget gate: {stamp_text}", blocks=blocks)


def warning_text(run: RunRecord, book: Bill) -> str:
    """Said once in the thread when what was spent passes 80% of the cap."""
    return (
        f"Run #{run.number} has committed ≈ {money(book.committed_usd)} of its {money(book.cap_usd)} cap "
        f"({money(book.approved_usd)} approved × {book.margin:g}). Running jobs go on; the final run and the "
        "deployment wait at a budget gate if they would pass the cap."
    )
