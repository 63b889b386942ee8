"""Platform resource ids, derived from the run so a restart finds what it created.

Ids follow the AIP-122 convention Fireworks uses (lowercase letters, digits, '-', at most
63 characters); the `sftbot-` prefix marks what this bot owns and may cancel or tear down.
"""

from __future__ import annotations

from pipeline.run.slots import Slot

PREFIX = "sftbot-"


def job_id(run_id: str, slot: Slot) -> str:
    """`sftbot-<run>-c<n>` for sweep candidates, `sftbot-<run>-final` for the final run."""
    return f"{PREFIX}{run_id}-{slot}"


def dataset_id(run_id: str, role: str) -> str:
    """`sftbot-<run>-train|hp|test|eval`."""
    return f"{PREFIX}{run_id}-{role}"


def deployment_id(run_id: str) -> str:
    return f"{PREFIX}{run_id}-dep"


def eval_deployment_id(run_id: str, slot: Slot) -> str:
    """`sftbot-<run>-eval-c<n>` / `sftbot-<run>-eval-final`: short-lived, for evaluator outputs."""
    return f"{PREFIX}{run_id}-eval-{slot}"


def owned(resource_id: str) -> bool:
    """True for ids this bot derived; everything else is never modified or deleted."""
    return resource_id.rsplit("/", 1)[-1].startswith(PREFIX)
