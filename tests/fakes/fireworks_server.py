"""A stateful fake of the Fireworks API, served over real HTTP on 127.0.0.1 for tests.

The official ``fireworks-ai`` SDK talks to it unchanged through ``base_url`` (control plane
at ``/v1/accounts/{account}/...``, inference at ``/v1/chat/completions``), and plain HTTP
clients fetch the signed URLs it hands out. It follows the SDK's wire format: camelCase
fields, ``JOB_STATE_*`` states, ``409 ALREADY_EXISTS`` for a duplicate id, google.rpc-style
error bodies, signed upload/download/metrics URLs that refuse an ``Authorization`` header.

Usage::

    async with FakeFireworks(job_seconds=0.5) as fake:
        client = AsyncFireworks(api_key=fake.api_key, account_id=fake.account, base_url=fake.base_url)
        ...
        fake.faults = Faults(error_rate=0.3, drop_rate=0.05)   # switchable at runtime
        fake.fail_lr_above = 1e-3                              # or fake.fail_jobs["job-id"] = "OOM"
        fake.clock.advance(10)                                 # jump every clock forward
        assert fake.max_active_jobs <= 6
        assert fake.calls("POST", r"/supervisedFineTuningJobs$")

or use the ``fake_fireworks`` pytest fixture defined at the bottom.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from aiohttp import web

from .fireworks_world import (
    JSON,
    TERMINAL_JOB_STATES,
    Clock,
    DatasetRecord,
    DeploymentRecord,
    JobRecord,
    LossFn,
    ModelRecord,
    Signer,
    default_catalog,
    default_loss_floors,
    max_overlap,
    rfc3339,
    sft_price_per_million,
)

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_GRPC = {  # google.rpc code name -> (HTTP status, numeric code), as grpc-gateway maps them
    "INVALID_ARGUMENT": (400, 3),
    "FAILED_PRECONDITION": (400, 9),
    "UNAUTHENTICATED": (401, 16),
    "PERMISSION_DENIED": (403, 7),
    "NOT_FOUND": (404, 5),
    "ALREADY_EXISTS": (409, 6),
    "RESOURCE_EXHAUSTED": (429, 8),
    "INTERNAL": (500, 13),
    "UNAVAILABLE": (503, 14),
}
_VALID_RANKS = {4, 8, 16, 32, 64}
Responder = Callable[[str, list[JSON]], str]


@dataclass
class Faults:
    """Fault injection, drawn per request from the server's seeded RNG. Assign a new one any time.

    Draws are keyed by the request (method, path, query, body, occurrence), not by arrival
    order, so a given seed injects the same faults on every run even with concurrent clients.
    """

    error_rate: float = 0.0  # share of requests answered with one of ``statuses``
    statuses: tuple[int, ...] = (500, 429)
    drop_rate: float = 0.0  # share of requests whose connection is dropped without a response
    slow_rate: float = 0.0  # share of requests delayed by ``slow_seconds`` first
    slow_seconds: float = 0.0
    after_commit: float = 0.5  # share of errors/drops that hit after the request took effect
    retry_after_ms: int | None = 20  # sent with injected errors (plus ``retry-after: 1`` on 429)
    scope: str = "/v1/"  # path prefix the faults apply to (signed URLs are outside by default)
    limit: int | None = None  # stop after injecting this many errors/drops
    injected: int = 0


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    json: Any
    time: float  # fake clock
    status: int | None = None  # what the handler answered (None when it never ran)
    fault: str | None = None  # "error", "drop" or "slow" when one was injected
    after_commit: bool = False
    authorized: bool = False


@dataclass
class _Ctx:
    request: web.Request
    groups: tuple[str, ...]
    query: dict[str, str]
    body: Any
    now: float


def _error(code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    status, num = _GRPC[code]
    return web.json_response({"code": num, "message": message, "details": []}, status=status, headers=headers)


def _page(items: list[JSON], key: str, query: dict[str, str], max_page: int) -> web.Response:
    size = min(int(query.get("pageSize") or 50), max_page)
    start = int(query.get("pageToken") or 0)
    out: JSON = {key: items[start : start + size], "totalSize": len(items)}
    if start + size < len(items):
        out["nextPageToken"] = str(start + size)
    return web.json_response(out)


class FakeFireworks:
    """The fake server; see the module docstring. Every knob is a plain attribute."""

    def __init__(
        self,
        *,
        api_key: str = "fw-test-key-0123456789",
        account: str = "test-acct",
        job_seconds: float = 1.0,
        deployment_seconds: float = 0.2,
        deployment_delete_seconds: float = 0.0,
        dataset_ready_seconds: float = 0.0,
        steps_per_epoch: int = 10,
        seed: int = 1234,
        job_quota: int | None = None,
        max_page_size: int = 200,
        max_direct_upload_bytes: int = 150 * 1024 * 1024,
        signed_url_ttl: float = 3600.0,
    ) -> None:
        self.api_key = api_key
        self.account = account
        self.job_seconds = job_seconds
        self.deployment_seconds = deployment_seconds
        self.deployment_delete_seconds = deployment_delete_seconds
        self.dataset_ready_seconds = dataset_ready_seconds
        self.steps_per_epoch = steps_per_epoch
        self.job_quota = job_quota  # active jobs allowed; beyond it create answers 429 quota_exceeded
        self.max_page_size = max_page_size
        self.max_direct_upload_bytes = max_direct_upload_bytes
        self.clock = Clock()
        self.seed = seed
        self._occurrences: Counter[str] = Counter()
        self.faults = Faults()
        self.fail_jobs: dict[str, str] = {}  # job id -> failure message
        self.fail_lr_above: float | None = None  # jobs with a higher learning rate fail ("diverged")
        self.fail_deployments: dict[str, str] = {}
        self.forced_job_states: dict[str, str] = {}  # job id -> raw state to report (e.g. JOB_STATE_PAUSED)
        self.cold_start_errors = 0  # chat errors each new deployment answers before it serves
        self.cold_start_status = 503
        self.metrics_extra_lines: list[str] = []  # e.g. garbage, inserted into every metrics file
        self.loss_fn: LossFn = default_loss_floors
        self.chat_responder: Responder = _echo
        self.echo_bad_key_in_401 = False  # a careless server echoing the presented key
        self.requests: list[RecordedRequest] = []
        self.committed_creates: Counter[tuple[str, str]] = Counter()  # (collection, id) -> creates
        self.datasets: dict[str, DatasetRecord] = {}
        self.jobs: dict[str, JobRecord] = {}
        self.models: dict[str, ModelRecord] = {m.name: m for m in default_catalog()}
        self.deployments: dict[str, DeploymentRecord] = {}
        self._signer = Signer(uuid.uuid4().bytes, signed_url_ttl)
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._routes: list[tuple[str, re.Pattern[str], Callable[[_Ctx], Awaitable[web.StreamResponse]]]] = []
        acct = r"/v1/accounts/([^/]+)"
        rid = r"([^/:]+)"
        for method, pattern, handler in [
            ("POST", rf"{acct}/datasets", self._dataset_create),
            ("GET", rf"{acct}/datasets", self._dataset_list),
            ("GET", rf"{acct}/datasets/{rid}", self._dataset_get),
            ("POST", rf"{acct}/datasets/{rid}:getUploadEndpoint", self._dataset_upload_endpoint),
            ("POST", rf"{acct}/datasets/{rid}:upload", self._dataset_upload),
            ("POST", rf"{acct}/datasets/{rid}:validateUpload", self._dataset_validate),
            ("GET", rf"{acct}/datasets/{rid}:getDownloadEndpoint", self._dataset_download_endpoint),
            ("POST", rf"{acct}/supervisedFineTuningJobs", self._job_create),
            ("GET", rf"{acct}/supervisedFineTuningJobs", self._job_list),
            ("GET", rf"{acct}/supervisedFineTuningJobs/{rid}", self._job_get),
            ("POST", rf"{acct}/supervisedFineTuningJobs/{rid}:cancel", self._job_cancel),
            ("GET", rf"{acct}/models", self._model_list),
            ("GET", rf"{acct}/models/{rid}", self._model_get),
            ("POST", rf"{acct}/deployments", self._deployment_create),
            ("GET", rf"{acct}/deployments", self._deployment_list),
            ("GET", rf"{acct}/deployments/{rid}", self._deployment_get),
            ("DELETE", rf"{acct}/deployments/{rid}", self._deployment_delete),
            ("POST", r"(?:/inference)?/v1/chat/completions", self._chat),
            ("PUT", r"/signed/upload/([^/]+)/([^/]+)/([^/]+)", self._signed_put),
            ("GET", r"/signed/datasets/([^/]+)/([^/]+)/([^/]+)", self._signed_dataset_get),
            ("GET", r"/signed/metrics/([^/]+)/([^/]+)/metrics\.jsonl", self._signed_metrics_get),
        ]:
            self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> FakeFireworks:
        app = web.Application(client_max_size=self.max_direct_upload_bytes + 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeFireworks:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def inference_url(self) -> str:
        """Where the SDK's ``chat.completions`` lands when ``base_url`` is this server."""
        return self.base_url

    # -- seeding and observation -------------------------------------------------------------------

    def add_dataset(
        self, dataset_id: str, files: dict[str, bytes], *, ready: bool = True, example_count: int | None = None
    ) -> DatasetRecord:
        """Seed a dataset a user uploaded elsewhere (READY unless ``ready=False``)."""
        rec = DatasetRecord(id=dataset_id, account=self.account, created_wall=time.time(), files=dict(files))
        rec.example_count = str(example_count if example_count is not None else sum(b.count(b"\n") for b in files.values()))
        rec.ready_at = self.clock.now() if ready else None
        self.datasets[dataset_id] = rec
        return rec

    def calls(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, filtered by method and a regex searched in the path."""
        return [r for r in self.requests if (method is None or r.method == method) and (path is None or re.search(path, r.path))]

    def create_counts(self, collection: str) -> Counter[str]:
        """Committed creates per id for ``datasets``, ``supervisedFineTuningJobs`` or ``deployments``."""
        return Counter({rid: n for (coll, rid), n in self.committed_creates.items() if coll == collection})

    def job_state(self, job_id: str) -> str:
        return self.jobs[job_id].state(self.clock.now())

    def active_jobs(self) -> int:
        now = self.clock.now()
        return sum(1 for j in self.jobs.values() if j.state(now) not in TERMINAL_JOB_STATES)

    @property
    def max_active_jobs(self) -> int:
        """Most jobs simultaneously active (CREATING/PENDING/RUNNING/WRITING_RESULTS) so far."""
        return max_overlap([(j.created, j.end_time()) for j in self.jobs.values()])

    # -- dispatch: recording, faults, auth -------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        now = self.clock.now()
        body: Any = None
        if request.method in ("POST", "PUT", "PATCH") and request.content_type == "application/json":
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return _error("INVALID_ARGUMENT", "request body is not valid JSON")
        rec = RecordedRequest(request.method, request.path, dict(request.query), body, now)
        self.requests.append(rec)
        f = self.faults
        r_drop, r_err, r_slow, r_commit, r_pick = self._draw(rec)
        fault: str | None = None
        if request.path.startswith(f.scope):
            if f.limit is None or f.injected < f.limit:
                if r_drop < f.drop_rate:
                    fault = "drop"
                elif r_err < f.error_rate:
                    fault = "error"
                if fault is not None:
                    f.injected += 1
            if r_slow < f.slow_rate:
                rec.fault = "slow"
                await asyncio.sleep(f.slow_seconds)
        after = fault is not None and r_commit < f.after_commit
        if fault is not None and not after:
            return self._inject(request, rec, fault, r_pick)
        response = await self._handle(request, rec, body)
        rec.status = response.status
        if fault is not None:
            rec.after_commit = True
            return self._inject(request, rec, fault, r_pick)
        return response

    def _draw(self, rec: RecordedRequest) -> list[float]:
        """Five numbers from an RNG seeded by (seed, request, how often it was seen).

        Keyed by the request rather than by arrival order, so concurrent clients get the same
        faults on every run and a retry of the same request gets a fresh draw.
        """
        key = f"{rec.method} {rec.path}?{sorted(rec.query.items())}#{json.dumps(rec.json, sort_keys=True)}"
        nth = self._occurrences[key]
        self._occurrences[key] += 1
        rng = random.Random(f"{self.seed}|{key}|{nth}")
        return [rng.random() for _ in range(5)]

    def _inject(self, request: web.Request, rec: RecordedRequest, fault: str, pick: float) -> web.StreamResponse:
        rec.fault = fault
        if fault == "drop":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        status = self.faults.statuses[int(pick * len(self.faults.statuses)) % len(self.faults.statuses)]
        headers: dict[str, str] = {}
        if self.faults.retry_after_ms is not None:
            headers["retry-after-ms"] = str(self.faults.retry_after_ms)
        if status == 429:
            headers["retry-after"] = "1"
            return _error("RESOURCE_EXHAUSTED", "rate limit exceeded (injected); retry later", headers)
        if status == 503:
            return _error("UNAVAILABLE", "service unavailable (injected)", headers)
        return web.json_response(
            {"code": 13, "message": "internal error (injected)", "details": []}, status=status, headers=headers
        )

    async def _handle(self, request: web.Request, rec: RecordedRequest, body: Any) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/signed/"):
            presented = request.headers.get("Authorization", "")
            if presented != f"Bearer {self.api_key}":
                msg = "unauthenticated: invalid API key"
                if self.echo_bad_key_in_401:
                    msg += f" {presented.removeprefix('Bearer ')!r}"
                return _error("UNAUTHENTICATED", msg)
            rec.authorized = True
        self._materialize_models()
        for method, pattern, handler in self._routes:
            m = pattern.match(path)
            if m and method == request.method:
                if path.startswith("/v1/accounts/") and (err := self._check_account(m.group(1), method)):
                    return err
                return await handler(_Ctx(request, m.groups(), dict(request.query), body, self.clock.now()))
        return _error("NOT_FOUND", f"no route for {request.method} {path}")

    def _check_account(self, account: str, method: str) -> web.Response | None:
        if account == self.account or (account == "fireworks" and method == "GET"):
            return None
        return _error("PERMISSION_DENIED", f"permission denied on account {account}")

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

    # -- datasets ---------------------------------------------------------------------------

    def _dataset(self, ctx: _Ctx) -> DatasetRecord | web.Response:
        ds = self.datasets.get(ctx.groups[1])
        if ds is None:
            return _error("NOT_FOUND", f"dataset accounts/{ctx.groups[0]}/datasets/{ctx.groups[1]} not found")
        return ds

    async def _dataset_create(self, ctx: _Ctx) -> web.Response:
        body = ctx.body or {}
        ds_id = str(body.get("datasetId") or "")
        if not _ID.match(ds_id):
            return _error("INVALID_ARGUMENT", f"invalid dataset id {ds_id!r}")
        if ds_id in self.datasets:
            return _error("ALREADY_EXISTS", f"dataset accounts/{self.account}/datasets/{ds_id} already exists")
        spec = body.get("dataset") or {}
        rec = DatasetRecord(id=ds_id, account=self.account, created_wall=time.time())
        rec.example_count = spec.get("exampleCount")
        rec.format = spec.get("format") or "FORMAT_UNSPECIFIED"
        rec.display_name = spec.get("displayName") or ""
        self.datasets[ds_id] = rec
        self.committed_creates["datasets", ds_id] += 1
        return web.json_response(rec.wire(ctx.now))

    async def _dataset_list(self, ctx: _Ctx) -> web.Response:
        items = [d.wire(ctx.now) for d in sorted(self.datasets.values(), key=lambda d: d.id)]
        return _page(items, "datasets", ctx.query, self.max_page_size)

    async def _dataset_get(self, ctx: _Ctx) -> web.Response:
        ds = self._dataset(ctx)
        return ds if isinstance(ds, web.Response) else web.json_response(ds.wire(ctx.now))

    async def _dataset_upload_endpoint(self, ctx: _Ctx) -> web.Response:
        ds = self._dataset(ctx)
        if isinstance(ds, web.Response):
            return ds
        sizes = (ctx.body or {}).get("filenameToSize") or {}
        if not sizes or any(int(v) <= 0 for v in sizes.values()):
            return _error("INVALID_ARGUMENT", "filenameToSize must list non-empty files")
        ds.registered = {k: int(v) for k, v in sizes.items()}  # replaces the file set, like the real one
        urls = {n: self._signer.sign(self.base_url, "PUT", f"/signed/upload/{ds.account}/{ds.id}/{n}") for n in ds.registered}
        return web.json_response({"filenameToSignedUrls": urls})

    async def _dataset_upload(self, ctx: _Ctx) -> web.Response:
        ds = self._dataset(ctx)
        if isinstance(ds, web.Response):
            return ds
        if not ctx.request.content_type.startswith("multipart/"):
            return _error("INVALID_ARGUMENT", "expected a multipart/form-data body with a 'file' part")
        reader = await ctx.request.multipart()
        filename, data = "", b""
        while (part := await reader.next()) is not None:
            if getattr(part, "name", None) == "file":
                filename = getattr(part, "filename", None) or "data.jsonl"
                data = bytes(await part.read(decode=False))  # type: ignore[union-attr]
        if not data:
            return _error("INVALID_ARGUMENT", "the uploaded file is empty")
        if len(data) > self.max_direct_upload_bytes:
            return _error("INVALID_ARGUMENT", "file too large for :upload; use getUploadEndpoint")
        ds.files = {filename: data}
        ds.registered = {filename: len(data)}
        return web.json_response(
            {"id": ds.id, "bytes": len(data), "filename": filename, "object": "file", "createdAt": int(time.time())}
        )

    async def _dataset_validate(self, ctx: _Ctx) -> web.Response:
        ds = self._dataset(ctx)
        if isinstance(ds, web.Response):
            return ds
        if ds.state(ctx.now) == "READY" or ds.ready_at is not None:
            return web.json_response({})
        missing = [n for n in ds.registered if n not in ds.files]
        if not ds.registered or missing:
            return _error(
                "FAILED_PRECONDITION", f"dataset {ds.name} has no uploaded file {missing[0] if missing else ''}".strip()
            )
        for name, data in ds.files.items():
            for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                try:
                    row = json.loads(line) if line.strip() else {}
                except ValueError:
                    row = None
                if line.strip() and (not isinstance(row, dict) or "messages" not in row):
                    return _error("INVALID_ARGUMENT", f"DATASET_INVALID: {name} line {lineno} is not a chat example")
        if ds.example_count is None:
            ds.example_count = str(sum(d.count(b"\n") for d in ds.files.values()))
        ds.ready_at = ctx.now + self.dataset_ready_seconds
        return web.json_response({})

    async def _dataset_download_endpoint(self, ctx: _Ctx) -> web.Response:
        ds = self._dataset(ctx)
        if isinstance(ds, web.Response):
            return ds
        if ds.state(ctx.now) != "READY":
            return _error("FAILED_PRECONDITION", f"dataset {ds.name} is not READY")
        urls = {n: self._signer.sign(self.base_url, "GET", f"/signed/datasets/{ds.account}/{ds.id}/{n}") for n in ds.files}
        return web.json_response({"filenameToSignedUrls": urls})

    # -- supervised fine-tuning jobs --------------------------------------------------------------

    def _ready_dataset(self, name: Any, now: float, what: str) -> DatasetRecord | web.Response:
        prefix = f"accounts/{self.account}/datasets/"
        ds = self.datasets.get(name[len(prefix) :]) if isinstance(name, str) and name.startswith(prefix) else None
        if ds is None:
            return _error("INVALID_ARGUMENT", f"{what} {name} not found")
        if ds.state(now) != "READY":
            return _error("FAILED_PRECONDITION", f"{what} {name} is not READY")
        return ds

    async def _job_create(self, ctx: _Ctx) -> web.Response:
        body: JSON = dict(ctx.body or {})
        job_id = ctx.query.get("supervisedFineTuningJobId") or str(uuid.uuid4())  # the real API picks a random id too
        if not _ID.match(job_id):
            return _error("INVALID_ARGUMENT", f"invalid job id {job_id!r}")
        if job_id in self.jobs:
            return _error(
                "ALREADY_EXISTS",
                f"supervised fine-tuning job accounts/{self.account}/supervisedFineTuningJobs/{job_id} already exists",
            )
        ds = self._ready_dataset(body.get("dataset"), ctx.now, "dataset")
        if isinstance(ds, web.Response):
            return ds
        if body.get("evaluationDataset") is not None:
            ev = self._ready_dataset(body.get("evaluationDataset"), ctx.now, "evaluation dataset")
            if isinstance(ev, web.Response):
                return ev
        base = self.models.get(str(body.get("baseModel")))
        if base is None or not base.body.get("tunable"):
            return _error("INVALID_ARGUMENT", f"base model {body.get('baseModel')} not found or not tunable")
        rank = int(body.get("loraRank") or 8)
        if rank not in _VALID_RANKS:
            return _error("INVALID_ARGUMENT", f"loraRank must be a power of 2 between 4 and 64, got {rank}")
        epochs = int(body.get("epochs") or 1)
        lr = float(body.get("learningRate") or 1e-4)
        out_id = str(body.get("outputModel") or job_id).rsplit("/", 1)[-1]
        if f"accounts/{self.account}/models/{out_id}" in self.models:
            return _error("INVALID_ARGUMENT", f"output model accounts/{self.account}/models/{out_id} already exists")
        if self.job_quota is not None and self.active_jobs() >= self.job_quota:
            return _error(
                "RESOURCE_EXHAUSTED", "quota_exceeded: training GPU quota exhausted; raise your tier or wait for active jobs"
            )
        fail = self.fail_jobs.get(job_id)
        if fail is None and self.fail_lr_above is not None and lr > self.fail_lr_above:
            fail = f"training diverged: loss is NaN at step 3 (learning rate {lr:g} is too high)"
        params = base.body.get("baseModelDetails", {}).get("parameterCount")
        cost = ds.token_estimate() * epochs / 1e6 * sft_price_per_million(float(params) if params else None)
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

    def _job_wire(self, job: JobRecord, now: float) -> JSON:
        url = self._signer.sign(self.base_url, "GET", f"/signed/metrics/{job.account}/{job.id}/metrics.jsonl")
        out = job.wire(now, url)
        if job.id in self.forced_job_states:
            out["state"] = self.forced_job_states[job.id]
            out["status"] = {"code": "OK", "message": f"forced {out['state']}"}
        return out

    async def _job_get(self, ctx: _Ctx) -> web.Response:
        job = self.jobs.get(ctx.groups[1])
        if job is None:
            return _error("NOT_FOUND", f"supervised fine-tuning job {ctx.groups[1]} not found")
        return web.json_response(self._job_wire(job, ctx.now))

    async def _job_list(self, ctx: _Ctx) -> web.Response:
        items = [self._job_wire(j, ctx.now) for j in sorted(self.jobs.values(), key=lambda j: j.id)]
        return _page(items, "supervisedFineTuningJobs", ctx.query, self.max_page_size)

    async def _job_cancel(self, ctx: _Ctx) -> web.Response:
        job = self.jobs.get(ctx.groups[1])
        if job is None:
            return _error("NOT_FOUND", f"supervised fine-tuning job {ctx.groups[1]} not found")
        state = job.state(ctx.now)
        if state in ("JOB_STATE_COMPLETED", "JOB_STATE_FAILED"):
            return _error("FAILED_PRECONDITION", f"job {job.name} is already {state}")
        if state != "JOB_STATE_CANCELLED":
            job.cancelled_at = ctx.now
        return web.json_response({})

    # -- models -----------------------------------------------------------------------------

    async def _model_list(self, ctx: _Ctx) -> web.Response:
        # AIP-160 ``filter`` is accepted but ignored: whether the real server honours it is unverified.
        items = [m.wire() for m in sorted(self.models.values(), key=lambda m: m.name) if m.account == ctx.groups[0]]
        return _page(items, "models", ctx.query, self.max_page_size)

    async def _model_get(self, ctx: _Ctx) -> web.Response:
        m = self.models.get(f"accounts/{ctx.groups[0]}/models/{ctx.groups[1]}")
        if m is None:
            return _error("NOT_FOUND", f"model accounts/{ctx.groups[0]}/models/{ctx.groups[1]} not found")
        return web.json_response(m.wire())

    # -- deployments ---------------------------------------------------------------------------

    async def _deployment_create(self, ctx: _Ctx) -> web.Response:
        body: JSON = dict(ctx.body or {})
        dep_id = ctx.query.get("deploymentId") or uuid.uuid4().hex[:12]
        if not _ID.match(dep_id):
            return _error("INVALID_ARGUMENT", f"invalid deployment id {dep_id!r}")
        if dep_id in self.deployments:
            return _error("ALREADY_EXISTS", f"deployment accounts/{self.account}/deployments/{dep_id} already exists")
        base = self.models.get(str(body.get("baseModel")))
        if base is None or base.body.get("state") != "READY":
            return _error("NOT_FOUND", f"model {body.get('baseModel')} not found")
        if not body.get("deploymentShape") and not body.get("acceleratorType"):
            return _error("INVALID_ARGUMENT", "accelerator_type must be specified")
        if body.get("deploymentShape") == "default":
            body["deploymentShape"] = "accounts/fireworks/deploymentShapes/fake-default/versions/1"
        rec = DeploymentRecord(
            id=dep_id,
            account=self.account,
            base_model=base.name,
            body=body,
            created=ctx.now,
            created_wall=time.time(),
            ready_at=ctx.now + self.deployment_seconds,
            fail_message=self.fail_deployments.get(dep_id),
            cold_errors_left=self.cold_start_errors,
            delete_seconds=self.deployment_delete_seconds,
        )
        if ctx.query.get("validateOnly") == "true":
            return web.json_response(rec.wire(ctx.now))
        self.deployments[dep_id] = rec
        self.committed_creates["deployments", dep_id] += 1
        return web.json_response(rec.wire(ctx.now))

    async def _deployment_get(self, ctx: _Ctx) -> web.Response:
        dep = self.deployments.get(ctx.groups[1])
        if dep is None:
            return _error("NOT_FOUND", f"deployment accounts/{ctx.groups[0]}/deployments/{ctx.groups[1]} not found")
        return web.json_response(dep.wire(ctx.now))

    async def _deployment_list(self, ctx: _Ctx) -> web.Response:
        items = [d.wire(ctx.now) for d in sorted(self.deployments.values(), key=lambda d: d.id)]
        return _page(items, "deployments", ctx.query, self.max_page_size)

    async def _deployment_delete(self, ctx: _Ctx) -> web.Response:
        dep = self.deployments.get(ctx.groups[1])
        if dep is None:
            return _error("NOT_FOUND", f"deployment accounts/{ctx.groups[0]}/deployments/{ctx.groups[1]} not found")
        if dep.served and dep.deleted_at is None and ctx.query.get("ignoreChecks") != "true":
            # The real API refuses to delete a deployment that served traffic in the last hour.
            return _error(
                "FAILED_PRECONDITION", f"deployment {dep.name} served traffic recently; pass ignore_checks to delete it"
            )
        if dep.deleted_at is None:
            dep.deleted_at = ctx.now
        return web.json_response({})

    # -- inference ------------------------------------------------------------------------------

    async def _chat(self, ctx: _Ctx) -> web.Response:
        body = ctx.body or {}
        model = str(body.get("model") or "")
        messages = body.get("messages") or []
        not_found = web.json_response(
            {
                "error": {
                    "object": "error",
                    "type": "invalid_request_error",
                    "code": "NOT_FOUND",
                    "message": f"Model not found, inaccessible, and/or not deployed: {model}",
                }
            },
            status=404,
        )
        dep: DeploymentRecord | None = None
        if "#" in model:
            model_name, dep_name = model.split("#", 1)
            dep = next((d for d in self.deployments.values() if d.name == dep_name and d.base_model == model_name), None)
            if dep is None:
                return not_found
        elif "/deployments/" in model:
            dep = next((d for d in self.deployments.values() if d.name == model), None)
            if dep is None:
                return not_found
        else:
            m = self.models.get(model)
            if m is None:
                return not_found
            if not m.body.get("supportsServerless"):
                dep = next((d for d in self.deployments.values() if d.base_model == model and d.state(ctx.now) == "READY"), None)
                if dep is None:
                    return not_found
        if dep is not None:
            state = dep.state(ctx.now)
            if state in ("DELETING", "DELETED", "FAILED"):
                return not_found
            if state == "CREATING":
                return web.json_response({"error": {"message": "DEPLOYMENT_SCALING_UP: deployment is not ready yet"}}, status=503)
            if dep.cold_errors_left > 0:
                dep.cold_errors_left -= 1
                return web.json_response(
                    {"error": {"message": "DEPLOYMENT_SCALING_UP: scaling up from zero"}}, status=self.cold_start_status
                )
            dep.served = True
        text = self.chat_responder(model, messages)
        words = text.split(" ")
        max_tokens = int(body.get("max_tokens") or 2048)
        finish = "length" if len(words) > max_tokens else "stop"
        text = " ".join(words[:max_tokens])
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))
        return web.json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(text.split()),
                    "total_tokens": prompt_tokens + len(text.split()),
                },
            }
        )

    # -- signed URLs (no Fireworks auth; a signature in the query instead) ------------------------

    def _check_signed(self, ctx: _Ctx) -> web.Response | None:
        if "Authorization" in ctx.request.headers:
            # Cloud storage rejects a request that carries both a signature and credentials;
            # it would also mean the client leaked its API key to a third party.
            return web.Response(status=400, text="InvalidArgument: signed URL requests must not carry an Authorization header")
        problem = self._signer.check(ctx.request.method, ctx.request.path, ctx.query)
        return web.Response(status=403 if problem != "ExpiredToken" else 400, text=problem) if problem else None

    async def _signed_put(self, ctx: _Ctx) -> web.Response:
        if err := self._check_signed(ctx):
            return err
        ds = self.datasets.get(ctx.groups[1])
        name = ctx.groups[2]
        if ds is None or name not in ds.registered:
            return web.Response(status=404, text="NoSuchUpload")
        size = ds.registered[name]
        if (
            ctx.request.headers.get("Content-Type") != "application/octet-stream"
            or ctx.request.headers.get("X-Goog-Content-Length-Range") != f"{size},{size}"
        ):
            return web.Response(
                status=403, text="SignatureDoesNotMatch: Content-Type and X-Goog-Content-Length-Range are signed headers"
            )
        data = await ctx.request.read()
        if len(data) != size:
            return web.Response(status=400, text="EntityTooLarge" if len(data) > size else "EntityTooSmall")
        ds.files[name] = data
        return web.Response(status=200)

    async def _signed_dataset_get(self, ctx: _Ctx) -> web.Response:
        if err := self._check_signed(ctx):
            return err
        ds = self.datasets.get(ctx.groups[1])
        if ds is None or ctx.groups[2] not in ds.files:
            return web.Response(status=404, text="NoSuchKey")
        return web.Response(body=ds.files[ctx.groups[2]], content_type="application/octet-stream")

    async def _signed_metrics_get(self, ctx: _Ctx) -> web.Response:
        if err := self._check_signed(ctx):
            return err
        job = self.jobs.get(ctx.groups[1])
        if job is None:
            return web.Response(status=404, text="NoSuchKey")
        lines = job.metrics_lines(ctx.now, self.loss_fn)
        lines[1:1] = self.metrics_extra_lines
        return web.Response(text="".join(line + "\n" for line in lines), content_type="application/jsonl")


def _echo(model: str, messages: list[JSON]) -> str:
    """Deterministic answer: echo the last user message."""
    last = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {})
    content = last.get("content", "")
    if isinstance(content, list):
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return f"echo: {content}"


@pytest_asyncio.fixture
async def fake_fireworks() -> AsyncIterator[FakeFireworks]:
    """A running fake with a short job clock; stops when the test ends."""
    async with FakeFireworks(job_seconds=0.6, deployment_seconds=0.1) as fake:
        yield fake
