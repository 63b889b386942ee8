"""The evidence buttons ("Price details", "Evaluation spec", "Compare examples", "Error
details"): each opens a read-only modal built from the store, for whoever may see the run."""

from __future__ import annotations

from typing import Any

from handlers.render import details
from handlers.render.action_ids import DETAILS_ERROR, DETAILS_EXAMPLES, DETAILS_PRICE, DETAILS_SPEC
from handlers.render.review import spec_text
from pipeline.domain.records import RunRecord
from pipeline.domain.slots import CandidateState
from pipeline.run.answers import comparison
from pipeline.run.scoreboard import rank
from pipeline.store import runs
from pipeline.store.db import Database


async def _plan_view(db: Database, run: RunRecord, version: int | None, *, spec: bool) -> dict[str, Any]:
    plan = await runs.get_plan(db, run.id, version or run.plan_version)
    if plan is None:
        return details.unavailable(f"Run #{run.number} has no plan v{version or run.plan_version}.")
    if spec:
        return details.evaluation_spec(run, plan, spec_text(plan))
    return details.price_details(run, plan)


async def _examples(db: Database, run: RunRecord) -> dict[str, Any]:
    """Base vs the promoted candidate (or, before promotion, the sweep's leader)."""
    cands = {c.slot: c for c in await runs.candidates(db, run.id)}
    done = rank(c for c in cands.values() if not c.slot.is_final and c.state is CandidateState.COMPLETED)
    tuned = cands.get(run.promoted) if run.promoted else (done[0] if done else None)
    return details.compare_examples(run, await comparison(db, run, tuned) if tuned is not None else None)


async def view_for(db: Database, action_id: str, run: RunRecord, version: int | None) -> dict[str, Any]:
    """The modal an evidence button opens."""
    if action_id in (DETAILS_PRICE, DETAILS_SPEC):
        return await _plan_view(db, run, version, spec=action_id == DETAILS_SPEC)
    if action_id == DETAILS_EXAMPLES:
        return await _examples(db, run)
    if action_id == DETAILS_ERROR:
        return details.error_details(run)
    return details.unavailable("Nothing to show for this button.")


DETAIL_ACTIONS = (DETAILS_PRICE, DETAILS_SPEC, DETAILS_EXAMPLES, DETAILS_ERROR)
