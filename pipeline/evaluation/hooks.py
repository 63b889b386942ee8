"""How the shipped model is evaluated, by the plan's strategy.

Validation loss (the default) needs no inference: the final job's eval loss is the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.store.records import CandidateRecord, RunRecord

if TYPE_CHECKING:
    from pipeline.runner import Runner


async def evaluate_final(r: Runner, run: RunRecord, final: CandidateRecord) -> str:
    """Evaluate the model that ships; returns one sentence for the thread."""
    if final.val_loss is not None:
        return f"Final model validation loss {final.val_loss:.4f} (train loss {final.train_loss:.4f})" if final.train_loss is not None else f"Final model validation loss {final.val_loss:.4f}"
    return "The platform reported no validation loss for the final model."
