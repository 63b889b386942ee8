"""The fake's multi-LoRA loads: ``/deployedModels`` (the SDK's ``client.lora``).

Wire shapes from SDK resources/lora.py (load :246-321 posts ``{"model", "deployment",
"displayName", ...}`` with no id: the name is server-assigned) and types/shared/deployed_model.py
(states ``DEPLOYING | DEPLOYED | UNDEPLOYING``). The load must target a deployment created with
``enableAddons`` whose base is the adapter's ``peftDetails.baseModel`` (DOC deploying-loras), at
most 100 adapters per deployment (DOC faq: "up to 100 LoRA models as addons on a single base
model deployment"). What the real server does on a second load of the same (model,
deployment) is undocumented: ``duplicate_loads`` chooses ("second": another record, the worst
case, so a client that loads twice is caught; "conflict": 409).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from aiohttp import web

from .wire import Ctx, page, rpc_error
from .world import JSON, rfc3339

MAX_ADDONS = 100


@dataclass
class LoadRecord:
    id: str
    account: str
    model: str
    deployment: str  # full name
    display_name: str
    created: float
    created_wall: float
    ready_at: float
    unloaded_at: float | None = None

    @property
    def name(self) -> str:
        return f"accounts/{self.account}/deployedModels/{self.id}"

    def state(self, now: float) -> str:
        if self.unloaded_at is not None:
            return "UNDEPLOYING"
        return "DEPLOYED" if now >= self.ready_at else "DEPLOYING"

    def wire(self, now: float, *, default: bool) -> JSON:
        return {
            "name": self.name,
            "model": self.model,
            "deployment": self.deployment,
            "displayName": self.display_name,
            "state": self.state(now),
            "default": default,
            "public": False,
            "serverless": False,
            "createTime": rfc3339(self.created_wall),
            "status": {"code": "OK", "message": ""},
        }


class AdapterRoutes:
    def live_loads(self) -> list[LoadRecord]:
        return [r for r in self.loads.values() if r.unloaded_at is None]

    def adapter_ready(self, model: str, deployment: str, now: float) -> bool:
        return any(r.model == model and r.deployment == deployment and r.state(now) == "DEPLOYED" for r in self.live_loads())

    def _load_wire(self, rec: LoadRecord, now: float) -> JSON:
        first = min((r.created for r in self.loads.values() if r.model == rec.model), default=rec.created)
        return rec.wire(now, default=rec.created == first)  # "the first deployment a model is deployed to"

    async def _lora_load(self, ctx: Ctx) -> web.Response:
        body = ctx.body or {}
        model, dep_name = str(body.get("model") or ""), str(body.get("deployment") or "")
        dep = next((d for d in self.deployments.values() if d.name == dep_name and d.deleted_at is None), None)
        if dep is None:
            return rpc_error("NOT_FOUND", f"deployment {dep_name} not found")
        adapter = self.models.get(model)
        if adapter is None or not isinstance(adapter.body.get("peftDetails"), dict):
            return rpc_error("NOT_FOUND", f"model {model} not found or not a LoRA addon")
        if not dep.body.get("enableAddons"):
            return rpc_error("FAILED_PRECONDITION", f"deployment {dep_name} does not have addons enabled")
        if adapter.body["peftDetails"].get("baseModel") != dep.base_model:
            return rpc_error("INVALID_ARGUMENT", f"addon {model} was trained on another base than {dep.base_model}")
        on_dep = [r for r in self.live_loads() if r.deployment == dep_name]
        if len(on_dep) >= MAX_ADDONS:
            return rpc_error(
                "RESOURCE_EXHAUSTED", f"deployment {dep_name} already has {MAX_ADDONS} addons (quota: LoRAs per deployment)"
            )
        if self.duplicate_loads == "conflict" and any(r.model == model for r in on_dep):
            return rpc_error("ALREADY_EXISTS", f"model {model} is already deployed to {dep_name}")
        rec = LoadRecord(
            id=uuid.uuid4().hex[:12],
            account=self.account,
            model=model,
            deployment=dep_name,
            display_name=str(body.get("displayName") or ""),
            created=ctx.now,
            created_wall=time.time(),
            ready_at=ctx.now + self.adapter_seconds,
        )
        self.loads[rec.id] = rec
        self.committed_creates["deployedModels", f"{model}#{dep_name}"] += 1
        return web.json_response(self._load_wire(rec, ctx.now))

    async def _lora_list(self, ctx: Ctx) -> web.Response:
        # AIP-160 `filter` is accepted and ignored: whether the server honours it is unverified,
        # so a client must match (model, deployment) itself.
        items = [self._load_wire(r, ctx.now) for r in sorted(self.live_loads(), key=lambda r: r.name)]
        return page(items, "deployedModels", ctx.query, self.max_page_size)

    async def _lora_get(self, ctx: Ctx) -> web.Response:
        rec = self.loads.get(ctx.groups[1])
        if rec is None or rec.unloaded_at is not None:
            return rpc_error("NOT_FOUND", f"deployed model accounts/{ctx.groups[0]}/deployedModels/{ctx.groups[1]} not found")
        return web.json_response(self._load_wire(rec, ctx.now))

    async def _lora_unload(self, ctx: Ctx) -> web.Response:
        rec = self.loads.get(ctx.groups[1])
        if rec is None or rec.unloaded_at is not None:
            return rpc_error("NOT_FOUND", f"deployed model accounts/{ctx.groups[0]}/deployedModels/{ctx.groups[1]} not found")
        rec.unloaded_at = ctx.now
        return web.json_response({})
