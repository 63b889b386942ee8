"""Platform resource ids, derived from the run so a restart finds what it created.

Ids follow the AIP-122 convention Fireworks uses (lowercase letters, digits, '-', at most
63 characters); the `sftbot-` prefix marks what this bot owns and may cancel or tear down.
"""

from __future__ import annotations

from pipeline.domain.slots import Slot

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


def shared_eval_deployment_id(run_id: str, base_number: int) -> str:
    """`sftbot-<run>-eval-b<n>`: one multi-LoRA deployment of the plan's n-th base model, for outputs."""
    return f"{PREFIX}{run_id}-eval-b{base_number}"


def base_eval_deployment_id(run_id: str, base_number: int) -> str:
    """`sftbot-<run>-eval-base<n>`: short-lived, for the n-th base model's own answers (no addon shape)."""
    return f"{PREFIX}{run_id}-eval-base{base_number}"


def adapter_id(run_id: str, slot: Slot) -> str:
    """`sftbot-<run>-load-c<n>`: the load of a candidate onto the shared deployment. Fireworks
    names loads itself; this id is the bot's record of it, kept before the load call."""
    return f"{PREFIX}{run_id}-load-{slot}"


def evaluation_ids(run_id: str, slot: Slot) -> tuple[str, str, str]:
    """(input dataset, evaluation job, output dataset) of a hosted evaluator's scoring of a slot."""
    return f"{PREFIX}{run_id}-evalin-{slot}", f"{PREFIX}{run_id}-evaljob-{slot}", f"{PREFIX}{run_id}-evalout-{slot}"


def owned(resource_id: str) -> bool:
    """True for ids this bot derived; everything else is never modified or deleted."""
    return resource_id.rsplit("/", 1)[-1].startswith(PREFIX)
