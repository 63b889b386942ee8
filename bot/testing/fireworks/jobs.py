"""The fake's SFT jobs and models: create (ids, quota, validation), progress, cancel, metrics."""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from .wire import VALID_ID, VALID_RANKS, Ctx, page, rpc_error
from .world import (
    JSON,
    DatasetRecord,
    JobRecord,
    ModelRecord,
    rfc3339,
    sft_price_per_million,
)


class JobRoutes:
    def _materialize_models(self) -> None:
        """Completed jobs publish their output model (READY, a LoRA addon)."""
        now = self.clock.now()
        for job in self.jobs.values():
            if job.state(now) == "JOB_STATE_COMPLETED" and job.output_model_name not in self.models:
                self.models[job.output_model_name] = ModelRecord(
                    account=job.account,
                    id=job.output_model_id,
                    body={
                        "displayName": job.output_model_id,
                        "kind": "HF_PEFT_ADDON",
                        "state": "READY",
                        "createTime": rfc3339(time.time()),
                        "fineTuningJob": job.name,
                        "peftDetails": {
                            "baseModel": job.body.get("baseModel", ""),
                            "r": job.rank,
                            "targetModules": ["q_proj", "v_proj"],
                        },
                    },
                )

    def _ready_dataset(self, name: Any, now: float, what: str) -> DatasetRecord | web.Response:
        prefix = f"accounts/{self.account}/datasets/"
        ds = self.datasets.get(name[len(prefix) :]) if isinstance(name, str) and name.startswith(prefix) else None
        if ds is None:
            return rpc_error("INVALID_ARGUMENT", f"{what} {name} not found")
        if ds.state(now) != "READY":
            return rpc_error("FAILED_PRECONDITION", f"{what} {name} is not READY")
        return ds

    async def _job_create(self, ctx: Ctx) -> web.Response:
        body: JSON = dict(ctx.body or {})
        job_id = ctx.query.get("supervisedFineTuningJobId") or str(uuid.uuid4())  # the real API picks a random id too
        checked = self._check_job(body, job_id, ctx.now)
        if isinstance(checked, web.Response):
            return checked
        ds, base = checked
        refused = self._admission_refusal()
        if refused is not None:
            return refused
        rank = int(body.get("loraRank") or 8)
        epochs = int(body.get("epochs") or 1)
        lr = float(body.get("learningRate") or 1e-4)
        fail = self.fail_jobs.get(job_id)
        if fail is None and self.fail_lr_above is not None and lr > self.fail_lr_above:
            fail = f"training diverged: loss is NaN at step 3 (learning rate {lr:g} is too high)"
        params = base.body.get("baseModelDetails", {}).get("parameterCount")
        cost = ds.token_estimate() * epochs / 1e6 * sft_price_per_million(float(params) if params else None) * self.cost_factor
        if isinstance(body.get("wandbConfig"), dict):  # echoed with the key, as the real one does, plus a url
            project = body["wandbConfig"].get("project", "")
            body["wandbConfig"] = {**body["wandbConfig"], "url": f"https://wandb.ai/{project}/runs/{job_id}"}
        body.setdefault("epochs", epochs)
        body.setdefault("loraRank", rank)
        body.setdefault("learningRate", lr)
        job = JobRecord(
            id=job_id,
            account=self.account,
            body=body,
            created=ctx.now,
            created_wall=time.time(),
            seconds=self.job_seconds,
            epochs=epochs,
            lr=lr,
            rank=rank,
            steps_per_epoch=self.steps_per_epoch,
            estimated_cost_usd=cost,
            fail_message=fail,
        )
        self.jobs[job_id] = job
        self.committed_creates["supervisedFineTuningJobs", job_id] += 1
        return web.json_response(self._job_wire(job, ctx.now))

    def _check_job(self, body: JSON, job_id: str, now: float) -> web.Response | tuple[DatasetRecord, ModelRecord]:
        """The create's refusal for a bad request, or its dataset and base model."""
        if not VALID_ID.match(job_id):
            return rpc_error("INVALID_ARGUMENT", f"invalid job id {job_id!r}")
        if job_id in self.jobs:
            return rpc_error(
                "ALREADY_EXISTS",
                f"supervised fine-tuning job accounts/{self.account}/supervisedFineTuningJobs/{job_id} already exists",
            )
        ds = self._ready_dataset(body.get("dataset"), now, "dataset")
        if isinstance(ds, web.Response):
            return ds
        if body.get("evaluationDataset") is not None:
            ev = self._ready_dataset(body.get("evaluationDataset"), now, "evaluation dataset")
            if isinstance(ev, web.Response):
                return ev
        if (refusal := self.refused_job_creates.get(job_id)) is not None:
            # A late refusal of one job's create: 400 INVALID_ARGUMENT is not retryable (the SDK's
            # BadRequestError, _client.py:714-744), e.g. "Quota error masks an invalid model or rank"
            # (cookbook error-reference.md:50) once validation catches up.
            return rpc_error("INVALID_ARGUMENT", refusal)
        base = self.models.get(str(body.get("baseModel")))
        # The V2 flag decides (get-model 5.10.0: supervisedLoraTunable "True when a validated
        # LORA_TRAINER training shape exists"); the deprecated V1 flag only for a record without it.
        if base is None or not base.body.get("supervisedLoraTunable", base.body.get("tunable")):
            return rpc_error("INVALID_ARGUMENT", f"base model {body.get('baseModel')} not found or not tunable")
        rank = int(body.get("loraRank") or 8)
        if rank not in VALID_RANKS:
            return rpc_error("INVALID_ARGUMENT", f"loraRank must be a power of 2 between 4 and 64, got {rank}")
        out_id = str(body.get("outputModel") or job_id).rsplit("/", 1)[-1]
        if f"accounts/{self.account}/models/{out_id}" in self.models:
            return rpc_error("INVALID_ARGUMENT", f"output model accounts/{self.account}/models/{out_id} already exists")
        refused = _context_refusal(body.get("maxContextLength"), base)
        return (ds, base) if refused is None else refused

    def _admission_refusal(self) -> web.Response | None:
        """A well-formed create the account cannot run now: quota, or the platform's capacity."""
        if self.job_quota is not None and self.active_jobs() >= self.job_quota:
            # DOC account-quotas: "rejected with HTTP 429 quota_exceeded". The ErrorInfo detail
            # follows the training SDK's parser (training/sdk/errors.py:37-45); its `reason`
            # string is INVENTED: the real one is undocumented.
            return web.json_response(
                {
                    "code": 8,
                    "message": f"quota_exceeded: training GPU quota exhausted ({self.active_jobs()} jobs active, quota {self.job_quota}); "
                    "raise your tier or wait for active jobs",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "QUOTA_EXCEEDED",
                            "domain": "training.fireworks.ai",
                            "metadata": {"quota_required": "1", "quota_available": "0"},
                        }
                    ],
                },
                status=429,
            )
        if self.job_refusal is not None:
            # A 429 RESOURCE_EXHAUSTED whose ErrorInfo `reason` (training/sdk/errors.py:37-45) may
            # contradict its message: the cookbook says the reason decides (error-reference.md:63-67).
            reason, message = self.job_refusal
            self.job_refusal = None
            info = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "training.fireworks.ai"}]
            return web.json_response({"code": 8, "message": message, "details": info if reason else []}, status=429)
        if self.job_capacity_refusals > 0:
            # A capacity shortage is platform-side, not quota (CB error-reference): wording INVENTED.
            self.job_capacity_refusals -= 1
            return rpc_error("RESOURCE_EXHAUSTED", "no available capacity for NVIDIA_H100_80GB right now; try again later")
        return None

    def _job_wire(self, job: JobRecord, now: float) -> JSON:
        url = self._signer.sign(self.base_url, "GET", f"/signed/metrics/{job.account}/{job.id}/metrics.jsonl")
        out = job.wire(now, url)
        if job.id in self.late_cancels and out["state"] not in ("JOB_STATE_COMPLETED", "JOB_STATE_FAILED"):
            out["state"] = "JOB_STATE_CANCELLING"  # accepted, but the job runs on until it ends by itself
        if job.id in self.forced_job_states:
            out["state"] = self.forced_job_states[job.id]
            out["status"] = {"code": "OK", "message": f"forced {out['state']}"}
        return out

    async def _job_get(self, ctx: Ctx) -> web.Response:
        job = self.jobs.get(ctx.groups[1])
        if job is None:
            return rpc_error("NOT_FOUND", f"supervised fine-tuning job {ctx.groups[1]} not found")
        return web.json_response(self._job_wire(job, ctx.now))

    async def _job_list(self, ctx: Ctx) -> web.Response:
        items = [self._job_wire(j, ctx.now) for j in sorted(self.jobs.values(), key=lambda j: j.id)]
        return page(items, "supervisedFineTuningJobs", ctx.query, self.max_page_size)

    async def _job_cancel(self, ctx: Ctx) -> web.Response:
        job = self.jobs.get(ctx.groups[1])
        if job is None:
            return rpc_error("NOT_FOUND", f"supervised fine-tuning job {ctx.groups[1]} not found")
        state = job.state(ctx.now)
        if state in ("JOB_STATE_COMPLETED", "JOB_STATE_FAILED"):
            return rpc_error("FAILED_PRECONDITION", f"job {job.name} is already {state}")
        if job.id in self.cancel_arrives_late:
            self.late_cancels[job.id] = ctx.now  # the job is past the point where a cancel stops it
        elif state != "JOB_STATE_CANCELLED":
            job.cancelled_at = ctx.now
        self.cancels.append(job.id)
        return web.json_response({})

    # -- models -----------------------------------------------------------------------------

    async def _model_list(self, ctx: Ctx) -> web.Response:
        # AIP-160 ``filter`` is accepted but ignored: whether the real server honours it is unverified.
        items = [m.wire() for m in sorted(self.models.values(), key=lambda m: m.name) if m.account == ctx.groups[0]]
        return page(items, "models", ctx.query, self.max_page_size)

    async def _model_get(self, ctx: Ctx) -> web.Response:
        m = self.models.get(f"accounts/{ctx.groups[0]}/models/{ctx.groups[1]}")
        if m is None:
            return rpc_error("NOT_FOUND", f"model accounts/{ctx.groups[0]}/models/{ctx.groups[1]} not found")
        return web.json_response(m.wire())

    async def _signed_metrics_get(self, ctx: Ctx) -> web.Response:
        if err := self._check_signed(ctx):
            return err
        job = self.jobs.get(ctx.groups[1])
        if job is None:
            return web.Response(status=404, text="NoSuchKey")
        lines = job.metrics_lines(ctx.now, self.loss_fn)
        lines[1:1] = self.metrics_extra_lines
        for old, new in self.metrics_renamed.items():  # metrics.jsonl has no published schema (reference §3.4)
            lines = [line.replace(f'"{old}"', f'"{new}"') for line in lines]
        return web.Response(text="".join(line + "\n" for line in lines), content_type="application/jsonl")


def _context_refusal(context: Any, base: ModelRecord) -> web.Response | None:
    """A ``maxContextLength`` the base model cannot take (None: fine, or not given)."""
    if context is None:
        return None
    limit = int(base.body.get("contextLength") or 0)
    if int(context) % 16:  # "must be divisible by 16" (CB error-reference, reference/fireworks.md §4)
        return rpc_error("INVALID_ARGUMENT", f"max_context_length {context} must be divisible by 16")
    if limit and int(context) > limit:
        return rpc_error("INVALID_ARGUMENT", f"max_context_length {context} exceeds the model's {limit}")
    return None
