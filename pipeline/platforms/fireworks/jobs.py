"""Fireworks SFT jobs: create (with the caller's id), read, cancel, and the metrics file.

Only jobs whose id starts with ``sftbot-`` are ever cancelled.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from fireworks import AsyncFireworks, Omit, omit
from fireworks.types import SupervisedFineTuningJob
from fireworks.types.shared_params.wandb_config import WandbConfig
from pydantic import BaseModel

from pipeline.domain.fsio import write_atomic
from pipeline.domain.ids import PREFIX, owned
from pipeline.domain.platform import JobRequest, JobStatus, LossPoint, NotFound, PlatformError, Throughput
from pipeline.platforms.fireworks import wire
from pipeline.platforms.fireworks.calls import Caller, FireworksError, StorageError
from pipeline.platforms.fireworks.datasets import FireworksDatasets
from pipeline.platforms.fireworks.metrics import parse_metrics


class WandbSettings(BaseModel):
    """Weights & Biases logging for the SFT jobs (``wandbConfig``), so people can watch curves live."""

    api_key: str
    project: str
    entity: str | None = None


class FireworksJobs:
    """The ``training`` role on Fireworks."""

    def __init__(
        self,
        control: AsyncFireworks,
        storage: httpx.AsyncClient,
        calls: Caller,
        datasets: FireworksDatasets,
        *,
        account: str,
        wandb: WandbSettings | None,
    ) -> None:
        self._control, self._storage, self._calls, self._datasets = control, storage, calls, datasets
        self._account = account
        self._wandb = wandb

    async def create(self, request: JobRequest) -> JobStatus:
        job_id = request.job_id
        eval_name = self._datasets.name(request.eval_dataset) if request.eval_dataset else None
        job = await self._calls.run(
            f"create job {job_id}",
            lambda: self._control.supervised_fine_tuning_jobs.create(
                supervised_fine_tuning_job_id=job_id,
                dataset=self._datasets.name(request.dataset),
                base_model=wire.base_model_name(request.base_model),
                # A given eval set replaces the default auto carve-out (as Fireworks' agent does).
                evaluation_dataset=eval_name if eval_name else omit,
                eval_auto_carveout=False if eval_name else omit,
                epochs=request.epochs,
                lora_rank=request.lora_rank,
                learning_rate=request.learning_rate,
                output_model=request.output_model,
                display_name=request.display_name or omit,
                # Only when the data needs more than the job's default (a multiple of 16: "must be
                # divisible by 16", reference/fireworks.md §4); otherwise long examples are cut.
                max_context_length=request.max_context_length or omit,
                wandb_config=self._wandb_config(job_id),
            ),
            on_conflict=lambda: self._control.supervised_fine_tuning_jobs.get(job_id),
            # A quota or capacity refusal goes straight back to the sweep, which queues the job
            # and starts it when one of its own finishes; waiting here would stall its polling.
            busy_retries=0,
        )
        return wire.job_status(job, job_id, self._account)

    def _wandb_config(self, job_id: str) -> WandbConfig | Omit:
        if self._wandb is None:
            return omit
        config: WandbConfig = {"enabled": True, "api_key": self._wandb.api_key, "project": self._wandb.project, "run_id": job_id}
        if self._wandb.entity:
            config["entity"] = self._wandb.entity
        return config

    async def get(self, job_id: str) -> JobStatus:
        return wire.job_status(await self._get_job(job_id), job_id, self._account)

    async def _get_job(self, job_id: str) -> SupervisedFineTuningJob:
        return await self._calls.run(
            f"read job {job_id}",
            lambda: self._control.supervised_fine_tuning_jobs.get(job_id),
            missing=f"job accounts/{self._account}/supervisedFineTuningJobs/{job_id}",
        )

    async def cancel(self, job_id: str) -> JobStatus:
        if not owned(job_id):
            raise PlatformError(
                f"refusing to cancel job {job_id}: sftbot only cancels jobs it created (ids starting with {PREFIX})."
            )
        try:
            await self._calls.run(
                f"cancel job {job_id}",
                lambda: self._control.supervised_fine_tuning_jobs.cancel(job_id, body={}),
                missing=f"job accounts/{self._account}/supervisedFineTuningJobs/{job_id}",
            )
        except NotFound:
            raise
        except PlatformError:
            status = await self.get(job_id)
            if status.state.terminal:
                return status  # it finished or failed before the cancel arrived
            raise
        return await self.get(job_id)

    async def throughput(self, model: str, *, sample: Path) -> Throughput | None:
        return None  # billed per token: the estimate is in dollars; queue and GPU speed are not known here

    async def base_loss(self, model: str, eval_path: Path) -> float | None:
        return None  # an SFT job reports loss only for what it trains; an untrained base has no job

    async def metrics(self, job_id: str, dest: Path) -> list[LossPoint]:
        job = await self._get_job(job_id)
        if not job.metrics_file_signed_url:
            return []  # training has not written metrics yet
        try:
            raw = await self._fetch(job.metrics_file_signed_url, what=f"download the metrics of job {job_id}")
        except FireworksError as exc:
            if exc.status not in (400, 401, 403):
                raise
            # A signed URL expires after a while; the job hands out a fresh one.
            fresh = await self._get_job(job_id)
            raw = await self._fetch(fresh.metrics_file_signed_url or "", what=f"download the metrics of job {job_id}")
        write_atomic(dest, raw)
        return parse_metrics(raw.decode("utf-8", "replace").splitlines())

    async def _fetch(self, url: str, *, what: str) -> bytes:
        async def get() -> bytes:
            response = await self._storage.get(url)
            if response.status_code >= 300:
                raise StorageError(response.status_code, response.text)
            return response.content

        return await self._calls.run(what, get)
