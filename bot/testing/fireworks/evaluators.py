"""The fake's hosted evaluators and evaluation jobs.

Wire shapes from the SDK: ``GET /evaluators/{id}`` answers types/evaluator_get_response.py
(``state: ACTIVE | BUILDING | BUILD_FAILED``); ``POST /evaluationJobs`` takes
``{"evaluationJob": {"evaluator", "inputDataset", "outputDataset"}, "evaluationJobId"}`` with
the id in the body (resources/evaluation_jobs.py:83) and the output dataset "created by this
job" (types/evaluation_job_create_params.py); the job walks ``JOB_STATE_*`` and reports
``metrics`` (types/evaluation_job_get_response.py).

INVENTED (undocumented, reference/fireworks.md §8): what an input row holds and what the
job writes per row. Here an input row is ``{"messages": [..., {"role": "assistant",
"content": <answer>}], "ground_truth": ..., "input_metadata": {"row_id": ...}}`` and each
output row is that row plus ``"evaluation_result": {"score", "reason", "is_score_valid"}`` (the
Eval Protocol's EvaluationRow names). ``metrics`` gets ``{"mean_score": ...}``. Real rows
must be checked on first contact; the bot keeps the raw file and says what it read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .wire import VALID_ID, Ctx, page, rpc_error
from .world import JSON, DatasetRecord, rfc3339

Scorer = Callable[[str, Any], float]  # (the row's answer, its ground truth) -> score 0..1


def exact(answer: str, truth: Any) -> float:
    return 1.0 if answer.strip() == str(truth).strip() else 0.0


@dataclass
class EvaluatorRecord:
    account: str
    id: str
    scorer: Scorer
    state: str = "ACTIVE"

    @property
    def name(self) -> str:
        return f"accounts/{self.account}/evaluators/{self.id}"

    def wire(self) -> JSON:
        return {
            "name": self.name,
            "displayName": self.id,
            "description": f"fake evaluator {self.id}",
            "state": self.state,
            "status": {"code": "OK", "message": "" if self.state == "ACTIVE" else "build in progress"},
            "criteria": [{"type": "CODE_SNIPPETS", "name": f"{self.id}_match", "description": "answer matches"}],
            "createTime": rfc3339(time.time()),
        }


@dataclass
class EvalJobRecord:
    id: str
    account: str
    evaluator: str
    input_dataset: str
    output_dataset: str
    created: float
    created_wall: float
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    written: bool = False
    fail_message: str | None = None

    def state(self, now: float) -> str:
        elapsed = now - self.created
        if elapsed < self.seconds * 0.2:
            return "JOB_STATE_CREATING"
        if elapsed < self.seconds:
            return "JOB_STATE_RUNNING"
        return "JOB_STATE_FAILED" if self.fail_message else "JOB_STATE_COMPLETED"

    def wire(self, now: float) -> JSON:
        state = self.state(now)
        out: JSON = {
            "name": f"accounts/{self.account}/evaluationJobs/{self.id}",
            "evaluator": self.evaluator,
            "inputDataset": self.input_dataset,
            "outputDataset": self.output_dataset,
            "state": state,
            "createTime": rfc3339(self.created_wall),
            "status": {"code": "INTERNAL", "message": self.fail_message}
            if state == "JOB_STATE_FAILED"
            else {"code": "OK", "message": ""},
        }
        if state == "JOB_STATE_COMPLETED":
            out["metrics"] = self.metrics
            out["outputStats"] = json.dumps(self.metrics)
        return out


class EvaluatorRoutes:
    def add_evaluator(
        self, evaluator_id: str, scorer: Scorer = exact, *, state: str = "ACTIVE", account: str | None = None
    ) -> EvaluatorRecord:
        """Seed an evaluator the user uploaded (``ep upload``) on this account, or (``account``)
        one another account shares. Whether Fireworks lets an account read and run another
        account's evaluator is not documented; the fake lets it, so the bot's own rule for
        foreign accounts (SFTBOT_FOREIGN_ACCOUNTS) is what the tests exercise."""
        rec = EvaluatorRecord(account=account or self.account, id=evaluator_id, scorer=scorer, state=state)
        if account is not None and account != self.account:
            self.readable_accounts.add(account)
        self.evaluators[evaluator_id] = rec
        return rec

    def _materialize_eval_outputs(self) -> None:
        """Completed evaluation jobs write their output dataset (once)."""
        now = self.clock.now()
        for job in self.eval_jobs.values():
            if job.written or job.state(now) != "JOB_STATE_COMPLETED":
                continue
            source = self.datasets.get(job.input_dataset.rsplit("/", 1)[-1])
            scorer = self.evaluators[job.evaluator.rsplit("/", 1)[-1]].scorer
            rows_out: list[str] = []
            scores: list[float] = []
            for data in source.files.values() if source else []:
                for line in data.decode().splitlines():
                    if not line.strip():
                        continue
                    row = json.loads(line)
                    answer = str(row["messages"][-1].get("content") or "")
                    score = scorer(answer, row.get("ground_truth"))
                    scores.append(score)
                    result = {"score": score, "reason": "exact match" if score else "differs", "is_score_valid": True}
                    # As Eval Protocol uploads scored rows (eval_protocol/pytest/handle_persist_flow.py): the
                    # row's evaluation_result, plus evals.score and eval_details beside it. The hosted job's
                    # own writer is not public: `eval_rows` "evals" keeps only the latter two.
                    if self.eval_rows != "evals":
                        row["evaluation_result"] = result
                    row["evals"] = {"score": score}
                    row["eval_details"] = {**result, "metrics": {}}
                    rows_out.append(json.dumps(row))
            out_id = job.output_dataset.rsplit("/", 1)[-1]
            out = DatasetRecord(
                id=out_id,
                account=self.account,
                created_wall=time.time(),
                files={"results.jsonl": ("\n".join(rows_out) + "\n").encode()},
            )
            out.example_count, out.ready_at, out.user_uploaded = str(len(rows_out)), now, False
            self.datasets[out_id] = out
            job.metrics = {"mean_score": sum(scores) / len(scores) if scores else 0.0}
            job.written = True

    async def _evaluator_get(self, ctx: Ctx) -> web.Response:
        rec = self.evaluators.get(ctx.groups[1])
        if rec is None or rec.account != ctx.groups[0]:
            return rpc_error("NOT_FOUND", f"evaluator accounts/{ctx.groups[0]}/evaluators/{ctx.groups[1]} not found")
        return web.json_response(rec.wire())

    async def _eval_job_create(self, ctx: Ctx) -> web.Response:
        body = ctx.body or {}
        job_id = str(body.get("evaluationJobId") or "")
        spec = body.get("evaluationJob") or {}
        if not VALID_ID.match(job_id):
            return rpc_error("INVALID_ARGUMENT", f"invalid evaluation job id {job_id!r}")
        if job_id in self.eval_jobs:
            return rpc_error("ALREADY_EXISTS", f"evaluation job accounts/{self.account}/evaluationJobs/{job_id} already exists")
        evaluator = self.evaluators.get(str(spec.get("evaluator") or "").rsplit("/", 1)[-1])
        if evaluator is None or evaluator.name != spec.get("evaluator"):
            return rpc_error("NOT_FOUND", f"evaluator {spec.get('evaluator')} not found")
        if evaluator.state != "ACTIVE":  # INVENTED: the real answer to a non-ACTIVE evaluator is unknown
            return rpc_error("FAILED_PRECONDITION", f"evaluator {evaluator.name} is {evaluator.state}")
        ds = self._ready_dataset(spec.get("inputDataset"), ctx.now, "input dataset")
        if isinstance(ds, web.Response):
            return ds
        output = str(spec.get("outputDataset") or "")
        if not output.startswith(f"accounts/{self.account}/datasets/"):
            return rpc_error("INVALID_ARGUMENT", "outputDataset must be accounts/{account}/datasets/{id}")
        job = EvalJobRecord(
            id=job_id,
            account=self.account,
            evaluator=evaluator.name,
            input_dataset=str(spec["inputDataset"]),
            output_dataset=output,
            created=ctx.now,
            created_wall=time.time(),
            seconds=self.eval_job_seconds,
        )
        self.eval_jobs[job_id] = job
        self.committed_creates["evaluationJobs", job_id] += 1
        return web.json_response(job.wire(ctx.now))

    async def _eval_job_get(self, ctx: Ctx) -> web.Response:
        job = self.eval_jobs.get(ctx.groups[1])
        if job is None:
            return rpc_error("NOT_FOUND", f"evaluation job {ctx.groups[1]} not found")
        return web.json_response(job.wire(ctx.now))

    async def _eval_job_list(self, ctx: Ctx) -> web.Response:
        """``GET .../evaluationJobs`` (SDK resources/evaluation_jobs.py:97, paged like every list)."""
        items = [j.wire(ctx.now) for j in sorted(self.eval_jobs.values(), key=lambda j: j.id)]
        return page(items, "evaluationJobs", ctx.query, self.max_page_size)
