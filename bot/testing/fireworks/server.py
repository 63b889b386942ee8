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

(the tests' ``fake`` fixture, tests/pipeline/fireworks_support.py, does this).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import InitVar, dataclass
from typing import Any

from aiohttp import web

from .accounts import AccountRoutes
from .adapters import AdapterRoutes, LoadRecord
from .datasets import DatasetRoutes
from .deployments import DeploymentRoutes
from .evaluators import EvalJobRecord, EvaluatorRecord, EvaluatorRoutes
from .jobs import JobRoutes
from .shapes import ShapeRoutes
from .wire import Ctx, Faults, RecordedRequest, Responder, echo, rpc_error
from .world import (
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
)


@dataclass(kw_only=True, eq=False, repr=False)
class FakeFireworks(AccountRoutes, DatasetRoutes, JobRoutes, DeploymentRoutes, ShapeRoutes, AdapterRoutes, EvaluatorRoutes):
    """The fake server; see the module docstring. Every knob is a plain attribute; these are
    also keyword arguments of the constructor."""

    api_key: str = "fw-test-key-0123456789"
    account: str = "test-acct"
    job_seconds: float = 1.0
    deployment_seconds: float = 0.2
    deployment_delete_seconds: float = 0.0
    dataset_ready_seconds: float = 0.0
    steps_per_epoch: int = 10
    seed: int = 1234
    job_quota: int | None = None  # active jobs allowed; beyond it create answers 429 quota_exceeded
    adapter_seconds: float = 0.1  # DEPLOYING -> DEPLOYED (field notes: ~10 min in reality)
    eval_job_seconds: float = 0.2
    # Seconds (fake clock) after READY during which chats answer 503 DEPLOYMENT_SCALING_UP.
    cold_start_seconds: float = 0.0
    max_page_size: int = 200
    max_direct_upload_bytes: int = 150 * 1024 * 1024
    signed_url_ttl: InitVar[float] = 3600.0

    def __post_init__(self, signed_url_ttl: float) -> None:
        self.clock = Clock()
        self._occurrences: Counter[str] = Counter()
        self.faults = Faults()
        self.fail_jobs: dict[str, str] = {}  # job id -> failure message
        self.fail_lr_above: float | None = None  # jobs with a higher learning rate fail ("diverged")
        # The job's reported ``estimatedCost`` x this: a platform whose bill runs above what the
        # plan's dated price table predicted (the money guard's test; SDK SupervisedFineTuningJob.estimated_cost).
        self.cost_factor = 1.0
        self.fail_deployments: dict[str, str] = {}
        self.forced_job_states: dict[str, str] = {}  # job id -> raw state to report (e.g. JOB_STATE_PAUSED)
        self.cold_start_errors = 0  # chat errors each new deployment answers before it serves
        self.cold_start_status = 503
        self.chat_error_rate = 0.0  # share of prompts that always fail with a 400 (per example, by content)
        self.reasoning_models: set[str] = set()  # bases that think first unless reasoning_effort is "none"
        self.thinking_words = 600  # how much they think: more than a 512-token answer budget
        self.rejects_reasoning_none: set[str] = set()  # bases that answer 400 to reasoning_effort="none" (GPT-OSS)
        self.tool_turns_need_tools = True  # a `tool` turn without `tools` is refused (undocumented: a knob)
        self.chat_log: list[JSON] | None = None  # set to [] to keep every served chat request body
        self.job_capacity_refusals = 0  # the next N job creates answer a capacity 429
        self.job_refusal: tuple[str | None, str] | None = None  # the next job create: 429 (ErrorInfo reason, message)
        self.cancel_arrives_late: set[str] = set()  # jobs a cancel no longer stops (they complete)
        self.late_cancels: dict[str, float] = {}
        self.cancels: list[str] = []  # job ids, one per accepted cancel call
        self.refused_job_creates: dict[str, str] = {}  # job id -> the 400 its create answers (jobs.py)
        # Deployment shapes per base (full name) overriding the defaults; bases with no shape here.
        self.shapes: dict[str, list[JSON]] = {}
        self.undeployable: set[str] = set()
        self.live_merge_refused: set[str] = set()  # shape slugs a live-merge create is refused on (by name)
        self.addons_refused: set[str] = set()  # bases (full names) whose addon deployments are refused
        self.duplicate_loads = "second"  # what a second load of the same adapter does: "second" | "conflict"
        self.loads: dict[str, LoadRecord] = {}
        self.evaluators: dict[str, EvaluatorRecord] = {}
        self.readable_accounts: set[str] = set()  # other accounts that share resources with this key (add_evaluator)
        self.eval_jobs: dict[str, EvalJobRecord] = {}
        self.eval_rows = "eval_protocol"  # "evals": output rows carry evals/eval_details only (evaluators.py)
        self.metrics_extra_lines: list[str] = []  # e.g. garbage, inserted into every metrics file
        self.metrics_renamed: dict[str, str] = {}  # metric key -> the name written instead (e.g. "eval/loss" -> "eval/nll")
        self.echo_resolved_base = False  # deployments echo their base model's name as `baseModel`
        self.loss_fn: LossFn = default_loss_floors
        self.chat_responder: Responder = echo
        self.ignores_adapter = False  # a serving bug: tuned models answer exactly as their base does
        self.echo_bad_key_in_401 = False  # a careless server echoing the presented key
        self.suspend_state = "UNSUSPENDED"  # the account's suspendState (accounts.py)
        self.requests: list[RecordedRequest] = []
        self.committed_creates: Counter[tuple[str, str]] = Counter()  # (collection, id) -> creates
        self.datasets: dict[str, DatasetRecord] = {}
        self.jobs: dict[str, JobRecord] = {}
        self.models: dict[str, ModelRecord] = {m.name: m for m in default_catalog()}
        self.deployments: dict[str, DeploymentRecord] = {}
        self._signer = Signer(uuid.uuid4().bytes, signed_url_ttl)
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._routes: list[tuple[str, re.Pattern[str], Callable[[Ctx], Awaitable[web.StreamResponse]]]] = [
            (method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in self._route_table()
        ]

    def _route_table(self) -> list[tuple[str, str, Callable[[Ctx], Awaitable[web.StreamResponse]]]]:
        acct = r"/v1/accounts/([^/]+)"
        rid = r"([^/:]+)"
        return [
            ("GET", acct, self._account_get),
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
            ("PATCH", rf"{acct}/deployments/{rid}:scale", self._deployment_scale),
            ("PATCH", rf"{acct}/deployments/{rid}", self._deployment_update),
            ("POST", rf"{acct}/deploymentShapeVersions:match", self._shape_match),
            ("POST", rf"{acct}/deployedModels", self._lora_load),
            ("GET", rf"{acct}/deployedModels", self._lora_list),
            ("GET", rf"{acct}/deployedModels/{rid}", self._lora_get),
            ("DELETE", rf"{acct}/deployedModels/{rid}", self._lora_unload),
            ("GET", rf"{acct}/evaluators/{rid}", self._evaluator_get),
            ("POST", rf"{acct}/evaluationJobs", self._eval_job_create),
            ("GET", rf"{acct}/evaluationJobs", self._eval_job_list),
            ("GET", rf"{acct}/evaluationJobs/{rid}", self._eval_job_get),
            ("POST", r"(?:/inference)?/v1/chat/completions", self._chat),
            ("PUT", r"/signed/upload/([^/]+)/([^/]+)/([^/]+)", self._signed_put),
            ("GET", r"/signed/datasets/([^/]+)/([^/]+)/([^/]+)", self._signed_dataset_get),
            ("GET", r"/signed/metrics/([^/]+)/([^/]+)/metrics\.jsonl", self._signed_metrics_get),
        ]

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
        """Committed creates per id for ``datasets``, ``supervisedFineTuningJobs``, ``deployments``,
        ``evaluationJobs`` or ``deployedModels`` (keyed ``<model>#<deployment>``: loads have no id)."""
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
        body, malformed = await _json_body(request)
        if malformed is not None:
            return malformed
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
            return rpc_error("RESOURCE_EXHAUSTED", "rate limit exceeded (injected); retry later", headers)
        if status == 503:
            return rpc_error("UNAVAILABLE", "service unavailable (injected)", headers)
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
                return rpc_error("UNAUTHENTICATED", msg)
            rec.authorized = True
        self._materialize_models()
        self._materialize_eval_outputs()
        for method, pattern, handler in self._routes:
            m = pattern.match(path)
            if m and method == request.method:
                # The account resource itself answers 404 for another account (accounts.py).
                scoped = path.startswith("/v1/accounts/") and path != f"/v1/accounts/{m.group(1)}"
                if scoped and (err := self._check_account(m.group(1), method)):
                    return err
                return await handler(Ctx(request, m.groups(), dict(request.query), body, self.clock.now()))
        return rpc_error("NOT_FOUND", f"no route for {request.method} {path}")

    def _check_account(self, account: str, method: str) -> web.Response | None:
        shared = account == "fireworks" or account in self.readable_accounts  # reads only
        if account == self.account or (shared and method == "GET"):
            return None
        return rpc_error("PERMISSION_DENIED", f"permission denied on account {account}")


async def _json_body(request: web.Request) -> tuple[Any, web.Response | None]:
    """The request's JSON body (None without one), or the error a malformed one is answered with."""
    if request.method not in ("POST", "PUT", "PATCH") or request.content_type != "application/json":
        return None, None
    raw = await request.read()
    try:
        return (json.loads(raw) if raw else None), None
    except ValueError:
        return None, rpc_error("INVALID_ARGUMENT", "request body is not valid JSON")
