"""The fake's deployments and chat completions (with cold starts and per-request errors)."""

from __future__ import annotations

import time
import uuid

from aiohttp import web

from .wire import VALID_ID, Ctx, page, rpc_error
from .world import (
    JSON,
    DeploymentRecord,
)


class DeploymentRoutes:
    async def _deployment_create(self, ctx: Ctx) -> web.Response:
        body: JSON = dict(ctx.body or {})
        dep_id = ctx.query.get("deploymentId") or uuid.uuid4().hex[:12]
        if not VALID_ID.match(dep_id):
            return rpc_error("INVALID_ARGUMENT", f"invalid deployment id {dep_id!r}")
        if dep_id in self.deployments:
            return rpc_error("ALREADY_EXISTS", f"deployment accounts/{self.account}/deployments/{dep_id} already exists")
        base = self.models.get(str(body.get("baseModel")))
        if base is None or base.body.get("state") != "READY":
            return rpc_error("NOT_FOUND", f"model {body.get('baseModel')} not found")
        if not body.get("deploymentShape") and not body.get("acceleratorType"):
            return rpc_error("INVALID_ARGUMENT", "accelerator_type must be specified")
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

    async def _deployment_get(self, ctx: Ctx) -> web.Response:
        dep = self.deployments.get(ctx.groups[1])
        if dep is None:
            return rpc_error("NOT_FOUND", f"deployment accounts/{ctx.groups[0]}/deployments/{ctx.groups[1]} not found")
        return web.json_response(dep.wire(ctx.now))

    async def _deployment_list(self, ctx: Ctx) -> web.Response:
        items = [d.wire(ctx.now) for d in sorted(self.deployments.values(), key=lambda d: d.id)]
        return page(items, "deployments", ctx.query, self.max_page_size)

    async def _deployment_delete(self, ctx: Ctx) -> web.Response:
        dep = self.deployments.get(ctx.groups[1])
        if dep is None:
            return rpc_error("NOT_FOUND", f"deployment accounts/{ctx.groups[0]}/deployments/{ctx.groups[1]} not found")
        if dep.served and dep.deleted_at is None and ctx.query.get("ignoreChecks") != "true":
            # The real API refuses to delete a deployment that served traffic in the last hour.
            return rpc_error(
                "FAILED_PRECONDITION", f"deployment {dep.name} served traffic recently; pass ignore_checks to delete it"
            )
        if dep.deleted_at is None:
            dep.deleted_at = ctx.now
        return web.json_response({})

    # -- inference ------------------------------------------------------------------------------

    async def _chat(self, ctx: Ctx) -> web.Response:
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
