"""Who shaped a run: the authors of a plan version (four eyes) and whether a decision brings
evaluator code of its own (with SFTBOT_UNSAFE_EVALUATORS only admins may). The rules are
``pipeline.domain.authz``'s; this reads the facts they need from the run and its decisions."""

from __future__ import annotations

from pipeline.domain.authz import plan_authors
from pipeline.domain.gates import apply_answer
from pipeline.domain.records import GateDecision, RunRecord
from pipeline.domain.spec import EvalKind, RunSpec, SpecError
from pipeline.store.db import Database


async def authors_of(db: Database, run: RunRecord, version: int) -> frozenset[str]:
    """Everyone who shaped plan ``version`` of ``run`` (four eyes: none of them approves it)."""
    return plan_authors(run.requester, await db.gate_decisions(run.id), version)


def evaluator_file(spec: RunSpec) -> str | None:
    """The evaluator file (code the bot runs) a spec names, if any."""
    ev = spec.evaluation
    return ev.ref if ev is not None and ev.kind is EvalKind.EVALUATOR and not ev.hosted else None


def supplies_evaluator(run: RunRecord, *, revised: RunSpec | None, answer: str | None) -> bool:
    """A revision to ``revised``, or ``answer`` to the run's open question, names an evaluator
    file the run did not name before: code the bot will run."""
    after = revised
    if after is None and answer is not None and run.question is not None:
        try:
            after = apply_answer(run.spec, run.question.kind, answer)
        except SpecError:
            return False  # refused later as invalid, whoever answers
    new = evaluator_file(after) if after is not None else None
    return new is not None and new != evaluator_file(run.spec)


def supplier(run: RunRecord, decisions: list[GateDecision]) -> str:
    """Who named the run's evaluator file: the last answer or revision that named it, else the requester."""
    ref = evaluator_file(run.spec)
    for g in reversed(decisions):
        named = str(g.details.get("answer", "")) == f"evaluator:{ref}" or (
            g.decision == "revise" and ((g.details.get("spec") or {}).get("evaluation") or {}).get("ref") == ref
        )
        if ref is not None and named:
            return g.actor
    return run.requester
