"""Fireworks-hosted evaluators and evaluation jobs (the user's ``accounts/<a>/evaluators/<id>``).

An evaluator is read with ``evaluators.get`` and must be ACTIVE ("BUILDING - Environment is
being prepared; ACTIVE - Evaluator is ready to use; BUILD_FAILED - Check build logs", SDK
resources/evaluators.py:332). An evaluation job scores an input dataset into an output
dataset it creates; its id goes in the body (SDK resources/evaluation_jobs.py:83), and there
is no cancel. The job's per-row output format is not documented: the engine parses it
defensively (pipeline/evaluation/hosted_rows.py).
"""

from __future__ import annotations

import re

from fireworks import AsyncFireworks
from fireworks.types import EvaluationJobCreateResponse, EvaluationJobGetResponse

from pipeline.domain.platform import EvaluationJobStatus, HostedEvaluator, JobState, NotFound, PlatformError
from pipeline.platforms.fireworks import wire
from pipeline.platforms.fireworks.calls import Caller
from pipeline.platforms.fireworks.datasets import FireworksDatasets

_EVALUATOR = re.compile(r"accounts/([^/\s]+)/evaluators/([^/\s]+)")


def evaluator_ref(ref: str) -> tuple[str, str]:
    """(account, evaluator id) from ``accounts/<a>/evaluators/<id>``."""
    m = _EVALUATOR.fullmatch(ref.strip())
    if m is None:
        raise PlatformError(f"{ref!r} is not an evaluator name: write accounts/<account>/evaluators/<id>.")
    return m.group(1), m.group(2)


class FireworksEvaluations:
    """The ``evaluators`` role on Fireworks."""

    def __init__(self, control: AsyncFireworks, calls: Caller, datasets: FireworksDatasets, *, account: str) -> None:
        self._control, self._calls, self._datasets = control, calls, datasets
        self._account = account

    async def check(self, ref: str) -> HostedEvaluator:
        account, ev_id = evaluator_ref(ref)
        name = f"accounts/{account}/evaluators/{ev_id}"
        try:
            found = await self._calls.run(
                f"read evaluator {name}",
                lambda: self._control.evaluators.get(ev_id, account_id=account),
                missing=f"evaluator {name}",
            )
        except NotFound:
            raise NotFound(
                f"evaluator {name} does not exist on Fireworks (or this API key cannot see it): check the name, "
                "or upload it first (`ep upload`)."
            ) from None
        state = found.state or "STATE_UNSPECIFIED"
        if state != "ACTIVE":
            why = found.status.message if found.status and found.status.message else "no message"
            hint = "wait until it is ACTIVE" if state == "BUILDING" else "fix it and upload it again"
            raise PlatformError(f"evaluator {name} is {state}, not ACTIVE ({why}): {hint}, then plan again.")
        return HostedEvaluator(
            name=found.name or name,
            display_name=found.display_name or ev_id,
            description=found.description or "",
            state=state,
            criteria=[c.name for c in found.criteria or [] if c.name],
        )

    async def create_job(self, job_id: str, *, evaluator: str, input_dataset: str, output_dataset: str) -> EvaluationJobStatus:
        input_name, output_name = self._datasets.name(input_dataset), self._datasets.name(output_dataset)

        async def create() -> EvaluationJobCreateResponse | EvaluationJobGetResponse:
            return await self._control.evaluation_jobs.create(
                evaluation_job_id=job_id,
                evaluation_job={"evaluator": evaluator, "input_dataset": input_name, "output_dataset": output_name},
            )

        async def read_back() -> EvaluationJobCreateResponse | EvaluationJobGetResponse:
            return await self._control.evaluation_jobs.get(job_id)

        job = await self._calls.run(f"create evaluation job {job_id}", create, on_conflict=read_back)
        return self._status(job, job_id, output_name)

    async def get_job(self, job_id: str) -> EvaluationJobStatus:
        job = await self._calls.run(
            f"read evaluation job {job_id}",
            lambda: self._control.evaluation_jobs.get(job_id),
            missing=f"evaluation job accounts/{self._account}/evaluationJobs/{job_id}",
        )
        return self._status(job, job_id, job.output_dataset or "")

    def _status(
        self, job: EvaluationJobCreateResponse | EvaluationJobGetResponse, job_id: str, output: str
    ) -> EvaluationJobStatus:
        raw = job.state or "JOB_STATE_UNSPECIFIED"
        state = wire.JOB_STATES.get(raw, JobState.RUNNING)
        said = job.status.message if job.status and job.status.message else None
        return EvaluationJobStatus(
            job_id=job_id,
            state=state,
            raw_state=raw,
            output_dataset=job.output_dataset or output,
            message=said if state is not JobState.COMPLETED else None,
            metrics=dict(job.metrics or {}),
        )
