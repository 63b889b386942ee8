"""The state behind the fake Fireworks API: resources, their clocks, loss curves, signed URLs.

Everything here is plain data and pure functions of (resource, now); the HTTP layer in
``fireworks_server.py`` only parses requests and renders these records in the wire format
(camelCase, ``JOB_STATE_*``, google.type.Money) that the official ``fireworks-ai`` SDK expects.

Time is lazy: a job's state is computed from its creation time whenever someone looks, so
nothing needs a background task and ``Clock.advance`` can jump a whole sweep forward.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

# Phases of a fake SFT job as fractions of its total duration (CREATING, PENDING, RUNNING, WRITING_RESULTS).
_PHASES = (
    ("JOB_STATE_CREATING", 0.1),
    ("JOB_STATE_PENDING", 0.1),
    ("JOB_STATE_RUNNING", 0.7),
    ("JOB_STATE_WRITING_RESULTS", 0.1),
)
_RUN_START = 0.2  # fraction of the duration at which RUNNING begins
_RUN_END = 0.9
TERMINAL_JOB_STATES = frozenset({"JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"})

LossFn = Callable[[float, int], "tuple[float, float]"]  # (lr, rank) -> (train floor, validation floor)


class Clock:
    """Monotonic time plus an offset that tests can advance to skip ahead."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds


def rfc3339(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def money(usd: float) -> JSON:
    """google.type.Money, as Fireworks reports ``estimatedCost``."""
    units = int(usd)
    return {"currencyCode": "USD", "units": str(units), "nanos": round((usd - units) * 1e9)}


def default_loss_floors(lr: float, rank: int) -> tuple[float, float]:
    """Deterministic loss floors: best near lr 1e-4, slightly better with a higher rank.

    With the default grid (8, 1.5e-4), (16, 1e-4), (32, 5e-5) the middle config wins clearly.
    """
    val = 0.6 + 0.8 * abs(math.log10(max(lr, 1e-12) / 1e-4)) + 0.8 / max(rank, 1)
    return val - 0.1, val


def sft_price_per_million(params: float | None) -> float:
    if params is None or params <= 16e9:
        return 0.5
    if params <= 80e9:
        return 3.0
    if params <= 300e9:
        return 6.0
    return 10.0


# ---------------------------------------------------------------------------------------------
# Resources


@dataclass
class DatasetRecord:
    id: str
    account: str
    created_wall: float
    example_count: str | None = None
    format: str = "CHAT"
    display_name: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    registered: dict[str, int] = field(default_factory=dict)  # getUploadEndpoint: filename -> size
    ready_at: float | None = None
    user_uploaded: bool = True

    @property
    def name(self) -> str:
        return f"accounts/{self.account}/datasets/{self.id}"

    def state(self, now: float) -> str:
        return "READY" if self.ready_at is not None and now >= self.ready_at else "UPLOADING"

    def token_estimate(self) -> int:
        return sum(len(b) for b in self.files.values()) // 4

    def wire(self, now: float) -> JSON:
        out: JSON = {
            "name": self.name,
            "displayName": self.display_name or self.id,
            "createTime": rfc3339(self.created_wall),
            "updateTime": rfc3339(self.created_wall),
            "state": self.state(now),
            "status": {"code": "OK", "message": ""},
            "format": self.format,
            "userUploaded": {} if self.user_uploaded else None,
        }
        if self.example_count is not None:
            out["exampleCount"] = self.example_count
        if self.state(now) == "READY":
            out["estimatedTokenCount"] = str(self.token_estimate())
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class JobRecord:
    id: str
    account: str
    body: JSON  # the create body as sent (camelCase)
    created: float  # clock time
    created_wall: float
    seconds: float  # total duration at creation time
    epochs: int
    lr: float
    rank: int
    steps_per_epoch: int
    estimated_cost_usd: float
    fail_message: str | None = None  # decided at creation: the job fails half-way through RUNNING
    cancelled_at: float | None = None

    @property
    def name(self) -> str:
        return f"accounts/{self.account}/supervisedFineTuningJobs/{self.id}"

    @property
    def output_model_id(self) -> str:
        out = str(self.body.get("outputModel") or self.id)
        return out.rsplit("/", 1)[-1]

    @property
    def output_model_name(self) -> str:
        return f"accounts/{self.account}/models/{self.output_model_id}"

    def _fail_time(self) -> float | None:
        if self.fail_message is None:
            return None
        return self.created + self.seconds * (_RUN_START + 0.5 * (_RUN_END - _RUN_START))

    def end_time(self) -> float:
        """When the job stops being active (completion, failure or cancellation)."""
        ends = [self.created + self.seconds]
        if (fail := self._fail_time()) is not None:
            ends.append(fail)
        if self.cancelled_at is not None:
            ends.append(self.cancelled_at)
        return min(ends)

    def state(self, now: float) -> str:
        fail = self._fail_time()
        if self.cancelled_at is not None and now >= self.cancelled_at and (fail is None or self.cancelled_at < fail):
            return "JOB_STATE_CANCELLED"
        if fail is not None and now >= fail:
            return "JOB_STATE_FAILED"
        elapsed = (now - self.created) / self.seconds if self.seconds > 0 else 1.0
        edge = 0.0
        for state, frac in _PHASES:
            edge += frac
            if elapsed < edge:
                return state
        return "JOB_STATE_COMPLETED"

    def run_fraction(self, now: float) -> float:
        """How much of the training (RUNNING phase) is done, 0..1."""
        stop = min(now, self.end_time())
        start = self.created + self.seconds * _RUN_START
        span = self.seconds * (_RUN_END - _RUN_START)
        if span <= 0:
            return 1.0 if stop >= start else 0.0
        return max(0.0, min(1.0, (stop - start) / span))

    @property
    def total_steps(self) -> int:
        return max(1, self.epochs * self.steps_per_epoch)

    def wire(self, now: float, metrics_url: str | None) -> JSON:
        state = self.state(now)
        frac = self.run_fraction(now)
        out: JSON = dict(self.body)
        out.update(
            {
                "name": self.name,
                "state": state,
                "createTime": rfc3339(self.created_wall),
                "updateTime": rfc3339(self.created_wall + max(0.0, now - self.created)),
                "createdBy": "fake-user@example.com",
                "outputModel": self.output_model_name,
                # "The estimated cost of the job." (DOC create-supervised-fine-tuning-job 5.10.0,
                # readOnly; SDK types/supervised_fine_tuning_job.py:151-152). Whether it is revised
                # after a cancel is not documented: the fake keeps the whole job's figure, and the
                # ledger charges a stopped job only the part that ran (ledger.ran_share).
                "estimatedCost": money(self.estimated_cost_usd),
                "jobProgress": {
                    "percent": 100 if state == "JOB_STATE_COMPLETED" else int(frac * 100),
                    "epoch": min(self.epochs - 1, int(frac * self.epochs)) if self.epochs > 0 else 0,
                    "inputTokens": 0,
                },
            }
        )
        if state == "JOB_STATE_FAILED":
            out["status"] = {"code": "INTERNAL", "message": self.fail_message or "training failed"}
        elif state == "JOB_STATE_CANCELLED":
            out["status"] = {"code": "CANCELLED", "message": "job was cancelled"}
        else:
            out["status"] = {"code": "OK", "message": ""}
        if state in TERMINAL_JOB_STATES:
            out["completedTime"] = rfc3339(self.created_wall + (self.end_time() - self.created))
        if metrics_url is not None and now >= self.created + self.seconds * _RUN_START:
            out["metricsFileSignedUrl"] = metrics_url
        return out

    def metrics_lines(self, now: float, loss_fn: LossFn) -> list[str]:
        """The metrics.jsonl rows written so far: per-step ``train/loss``, per-epoch ``eval/loss``."""
        train_floor, val_floor = loss_fn(self.lr, self.rank)
        done = int(self.run_fraction(now) * self.total_steps + 1e-9)
        lines: list[str] = []
        for step in range(1, done + 1):
            p = step / self.total_steps
            # A decaying curve plus a small deterministic wiggle, so it looks like training.
            train = train_floor + (2.4 - train_floor) * math.exp(-4.0 * p) + 0.02 * math.sin(step * 1.7)
            epoch = step / self.steps_per_epoch
            ts = self.created_wall + step
            lines.append(
                json.dumps(
                    {
                        "step": step,
                        "timestamp": ts,
                        "train/loss": round(train, 6),
                        "train/epoch": round(epoch, 4),
                        "train/learning_rate": self.lr,
                    }
                )
            )
            if step % self.steps_per_epoch == 0:
                e = step // self.steps_per_epoch
                val = val_floor + (2.4 - val_floor) * math.exp(-4.0 * e / max(1, self.epochs))
                lines.append(json.dumps({"step": step, "timestamp": ts, "epoch": e, "eval/loss": round(val, 6)}))
        return lines


@dataclass
class ModelRecord:
    account: str
    id: str
    body: JSON

    @property
    def name(self) -> str:
        return f"accounts/{self.account}/models/{self.id}"

    def wire(self) -> JSON:
        return {"name": self.name, **self.body}


@dataclass
class DeploymentRecord:
    id: str
    account: str
    base_model: str
    body: JSON
    created: float
    created_wall: float
    ready_at: float
    fail_message: str | None = None
    cold_errors_left: int = 0
    served: bool = False  # answered a chat request (the real API then refuses a plain delete)
    deleted_at: float | None = None
    hard: bool = False  # deleted with hard=true: gone (GET 404) once the delete is through
    scaled_to: int | None = None  # the last ``:scale`` replica count asked for
    delete_seconds: float = 0.0

    @property
    def name(self) -> str:
        return f"accounts/{self.account}/deployments/{self.id}"

    def purged(self, now: float) -> bool:
        return self.hard and self.state(now) == "DELETED"

    def state(self, now: float) -> str:
        if self.deleted_at is not None:
            return "DELETED" if now >= self.deleted_at + self.delete_seconds else "DELETING"
        if now < self.ready_at:
            return "CREATING"
        return "FAILED" if self.fail_message else "READY"

    def wire(self, now: float) -> JSON:
        state = self.state(now)
        out: JSON = dict(self.body)
        out.update(
            {
                "name": self.name,
                "baseModel": self.base_model,
                "state": state,
                "createTime": rfc3339(self.created_wall),
                "status": {"code": "INTERNAL", "message": self.fail_message}
                if state == "FAILED"
                else {"code": "OK", "message": ""},
                "replicaCount": (1 if self.scaled_to is None else self.scaled_to) if state == "READY" else 0,
            }
        )
        if self.deleted_at is not None:
            out["deleteTime"] = rfc3339(self.created_wall + (self.deleted_at - self.created))
        return out


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals [start, end) alive at one instant (ends sort before starts at a tie)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


# ---------------------------------------------------------------------------------------------
# The public base-model catalogue (accounts/fireworks/models)


def base_model(
    id_: str,
    params: float | None,
    ctx: int,
    *,
    tunable: bool = True,
    deprecated_tunable: bool | None = None,
    **flags: bool,  # moe, serverless
) -> ModelRecord:
    """A public base model as get-model answers it (Gateway REST API 5.10.0,
    https://docs.fireworks.ai/api-reference/get-model): ``supervisedLoraTunable`` is the V2 flag
    ("True when a validated LORA_TRAINER training shape exists"); ``tunable`` and
    ``baseModelDetails.tunable`` are "Deprecated: V1 training stack only" and may disagree with it
    (``deprecated_tunable``; by default they say the same)."""
    v1 = tunable if deprecated_tunable is None else deprecated_tunable
    moe, serverless = flags.get("moe", False), flags.get("serverless", False)
    details: JSON = {"tunable": v1, "moe": moe, "worldSize": 1, "modelType": "qwen3" if "qwen" in id_ else "llama"}
    if params is not None:
        details["parameterCount"] = str(int(params))
    return ModelRecord(
        account="fireworks",
        id=id_,
        body={
            "displayName": id_,
            "kind": "HF_BASE_MODEL",
            "state": "READY",
            "public": True,
            "tunable": v1,
            "useTrainingV2": True,
            "supervisedLoraTunable": tunable,
            "supportsLora": True,
            "supportsServerless": serverless,
            "contextLength": ctx,
            "baseModelDetails": details,
        },
    )


def default_catalog() -> list[ModelRecord]:
    return [
        # Not SFT-LoRA tunable in the docs' catalogue (https://docs.fireworks.ai/fine-tuning/models,
        # generated 2026-08-28: supervisedLoraTunable false); the deprecated V1 flag still says yes.
        base_model("qwen3-4b", 4.0e9, 65536, tunable=False, deprecated_tunable=True),
        base_model("qwen3-4b-instruct-2507", 4.4e9, 262144),
        base_model("qwen3-8b", 8.2e9, 256000, serverless=True),
        base_model("qwen3-32b", 32.8e9, 131072),
        base_model("llama-v3p3-70b-instruct", 70.6e9, 131072),
        base_model("qwen3-235b-a22b-instruct-2507", 235e9, 128000, moe=True),
        # Known to the platform without a size: clients fall back to their own catalogue.
        base_model("qwen3p5-9b", None, 262144),
        base_model("llama-v3p1-8b-instruct", 8.0e9, 131072, tunable=False, serverless=True),
        base_model("deepseek-v3", 671e9, 163840, tunable=False, moe=True, serverless=True),
    ]


# ---------------------------------------------------------------------------------------------
# Signed URLs (stand-ins for GCS V4 signatures: an HMAC over method, path and expiry)


class Signer:
    def __init__(self, secret: bytes, ttl: float) -> None:
        self._secret = secret
        self.ttl = ttl

    def _sig(self, method: str, path: str, expires: int) -> str:
        return hmac.new(self._secret, f"{method}\n{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, base_url: str, method: str, path: str) -> str:
        expires = int(time.time() + self.ttl)
        return f"{base_url}{path}?X-Goog-Expires={expires}&X-Goog-Signature={self._sig(method, path, expires)}"

    def check(self, method: str, path: str, query: dict[str, str]) -> str | None:
        """None when the signature is valid, else the storage-style error code."""
        try:
            expires = int(query.get("X-Goog-Expires", ""))
        except ValueError:
            return "MissingSecurityHeader"
        if not hmac.compare_digest(self._sig(method, path, expires), query.get("X-Goog-Signature", "")):
            return "SignatureDoesNotMatch"
        if time.time() > expires:
            return "ExpiredToken"
        return None
