"""Fireworks resources (SDK models) -> the platform-neutral records the runner uses. Pure.

The state tables follow reference/fireworks.md §3.3 and §7.3; names follow the resource
conventions (``accounts/<a>/datasets/<id>``, ``accounts/fireworks/models/<id>``, ...).
"""

from __future__ import annotations

import re

from fireworks.types import Dataset, Deployment, Model, SupervisedFineTuningJob

from pipeline.domain.catalog import BaseModelInfo, find_model
from pipeline.domain.platform import DatasetInfo, DeploymentState, DeploymentStatus, JobState, JobStatus

JOB_STATES: dict[str, JobState] = {
    "JOB_STATE_UNSPECIFIED": JobState.PENDING,
    "JOB_STATE_CREATING": JobState.PENDING,
    "JOB_STATE_PENDING": JobState.PENDING,
    "JOB_STATE_VALIDATING": JobState.PENDING,
    "JOB_STATE_CREATING_INPUT_DATASET": JobState.PENDING,
    "JOB_STATE_RE_QUEUEING": JobState.PENDING,
    "JOB_STATE_IDLE": JobState.PENDING,
    "JOB_STATE_RUNNING": JobState.RUNNING,
    "JOB_STATE_WRITING_RESULTS": JobState.RUNNING,
    # Not terminal, but a person may need to look: reported as running, with a message.
    "JOB_STATE_PAUSED": JobState.RUNNING,
    "JOB_STATE_CANCELLING": JobState.RUNNING,
    # Early stop is unsupported today, but a model was written: a success.
    "JOB_STATE_COMPLETED": JobState.COMPLETED,
    "JOB_STATE_EARLY_STOPPED": JobState.COMPLETED,
    "JOB_STATE_FAILED": JobState.FAILED,
    "JOB_STATE_EXPIRED": JobState.FAILED,
    "JOB_STATE_DELETING": JobState.FAILED,
    "JOB_STATE_DELETING_CLEANING_UP": JobState.FAILED,
    # In the API's enum (DOC create-supervised-fine-tuning-job, Gateway REST API 5.10.0) but not
    # in SDK 1.2.30's: "Job has been deleted", and ARCHIVED for a row kept after the delete
    # ("a retention tombstone: no resources/billing", fw-ai/cookbook provision.py:61-68).
    "JOB_STATE_DELETED": JobState.FAILED,
    "JOB_STATE_ARCHIVED": JobState.FAILED,
    "JOB_STATE_CANCELLED": JobState.CANCELLED,
}
_STATE_NOTES = {
    "JOB_STATE_PAUSED": "the job is paused on Fireworks (account suspension or manual intervention)",
    "JOB_STATE_CANCELLING": "the job is being cancelled",
    "JOB_STATE_EXPIRED": "the job expired on Fireworks",
    "JOB_STATE_DELETING": "the job is being deleted on Fireworks",
    "JOB_STATE_DELETING_CLEANING_UP": "the job is being deleted on Fireworks",
    "JOB_STATE_DELETED": "the job was deleted on Fireworks",
    "JOB_STATE_ARCHIVED": "the job was deleted on Fireworks (archived)",
}
DEPLOYMENT_STATES: dict[str, DeploymentState] = {
    "READY": DeploymentState.READY,
    "FAILED": DeploymentState.FAILED,
    "DELETING": DeploymentState.DELETING,
    "DELETED": DeploymentState.DELETED,
    # CREATING, UPDATING and anything new: not settled yet.
}
_DATASET_NAME = re.compile(r"accounts/([^/]+)/datasets/([^/]+)")
_MODEL_NAME = re.compile(r"accounts/([^/]+)/models/([^/]+)")


def job_status(job: SupervisedFineTuningJob, job_id: str, account: str) -> JobStatus:
    """A job as the runner sees it; ``raw_state`` keeps Fireworks' own state name."""
    raw = job.state or "JOB_STATE_UNSPECIFIED"
    state = JOB_STATES.get(raw, JobState.RUNNING)  # an unknown new state: not terminal, flagged below
    progress = job.job_progress
    said = job.status.message if job.status and job.status.message else None
    message: str | None
    if raw in _STATE_NOTES:
        message = f"{_STATE_NOTES[raw]}: {said}" if said else _STATE_NOTES[raw]
    elif raw not in JOB_STATES:
        message = f"Fireworks reports an unknown job state {raw}"
    elif state is JobState.FAILED:
        message = said or f"the job failed on Fireworks ({raw})"
    elif state is JobState.CANCELLED:
        message = said
    else:
        message = None
    percent = float(progress.percent) if progress and progress.percent is not None else 0.0
    return JobStatus(
        job_id=job_id,
        state=state,
        raw_state=raw,
        progress=100.0 if state is JobState.COMPLETED else percent,
        epoch=float(progress.epoch) if progress and progress.epoch is not None else None,
        message=message,
        cost_usd=usd(job),
        # The W&B run's address (SDK types/shared/wandb_config.py: `url`, "The URL for the wandb
        # service", readOnly in the API). The echoed config may carry the W&B key back: only the
        # url is kept.
        tracking_url=job.wandb_config.url if job.wandb_config is not None and job.wandb_config.url else None,
        model=output_model(job, job_id, account) if state is JobState.COMPLETED else None,
    )


def output_model(job: SupervisedFineTuningJob, job_id: str, account: str) -> str:
    """The result model's full name (Fireworks uses the job id when no output model was set)."""
    out = job.output_model or job_id
    return out if out.startswith("accounts/") else f"accounts/{account}/models/{out}"


def usd(job: SupervisedFineTuningJob) -> float | None:
    """``estimatedCost`` (google.type.Money) in USD; None when absent or in another currency."""
    cost = job.estimated_cost
    if cost is None or cost.currency_code not in (None, "", "USD"):
        return None
    try:
        units = int(cost.units or 0)
    except ValueError:
        return None
    return units + (cost.nanos or 0) / 1e9


def deployment_status(
    deployment: Deployment, deployment_id: str, *, account: str, endpoint: str, model: str | None = None
) -> DeploymentStatus:
    """``model``: what sftbot asked the deployment to serve (default: the server's ``baseModel``)."""
    state = DEPLOYMENT_STATES.get(deployment.state or "STATE_UNSPECIFIED", DeploymentState.CREATING)
    served = model or deployment.base_model
    return DeploymentStatus(
        deployment_id=deployment_id,
        state=state,
        model=served,
        endpoint=endpoint,
        # The explicit route: the bare model id can 404 on a fresh live-merge deployment (reference §7.4).
        model_string=f"{served}#accounts/{account}/deployments/{deployment_id}",
        message=deployment.status.message if deployment.status and deployment.status.message else None,
    )


def dataset_info(ds: Dataset, ds_id: str, account: str) -> DatasetInfo:
    try:
        examples = int(ds.example_count) if ds.example_count else None
    except ValueError:
        examples = None
    return DatasetInfo(
        id=ds_id, name=ds.name or f"accounts/{account}/datasets/{ds_id}", ready=ds.state == "READY", examples=examples
    )


def tunable(model: Model) -> bool:
    """Whether Fireworks can SFT-LoRA tune ``model``: ``supervisedLoraTunable`` (get-model, Gateway
    REST API 5.10.0: "V2 only ... True when a validated LORA_TRAINER training shape exists"), which
    SDK 1.2.30 does not declare, so it arrives as an extra field (``BaseModel`` allows extras,
    fireworks/_models.py:110). ``tunable`` / ``baseModelDetails.tunable`` are marked "Deprecated:
    V1 training stack only" and read only when the current flag is absent."""
    current = (model.model_extra or {}).get("supervisedLoraTunable")
    if current is not None:
        return bool(current)
    details = model.base_model_details
    return bool(model.tunable or (details is not None and details.tunable))


def model_info(model: Model) -> BaseModelInfo:
    """Size from ``baseModelDetails.parameterCount``; gaps filled from the bundled catalogue."""
    name = model.name or ""
    short = name.rsplit("/", 1)[-1]
    params_b: float | None = None
    details = model.base_model_details
    if details is not None and details.parameter_count:
        try:
            params_b = round(int(details.parameter_count) / 1e9, 1)
        except ValueError:
            params_b = None
    context = model.training_context_length or model.context_length
    bundled = find_model(short)
    if bundled is not None:
        params_b = params_b if params_b is not None else bundled.params_b
        context = context or bundled.max_context
    return BaseModelInfo(id=short, params_b=params_b, max_context=context, name=name or None)


def dataset_ref(ref: str, account: str) -> tuple[str, str] | None:
    """(account, dataset id) from a bare id or ``accounts/<a>/datasets/<id>``; None if neither."""
    ref = ref.strip()
    if m := _DATASET_NAME.fullmatch(ref):
        return m.group(1), m.group(2)
    if not ref or "/" in ref:
        return None
    return account, ref


def model_ref(model: str) -> tuple[str, str]:
    """(account, model id) from a short public id or ``accounts/<a>/models/<id>``."""
    m = _MODEL_NAME.fullmatch(model.strip())
    return (m.group(1), m.group(2)) if m else ("fireworks", model.strip())


def base_model_name(model: str) -> str:
    return model if model.startswith("accounts/") else f"accounts/fireworks/models/{model}"


def url_root(url: str) -> str:
    """Strip a trailing ``/`` and ``/v1``: the SDK appends ``/v1/...`` itself."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url
