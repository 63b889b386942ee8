"""The fake's deployments and chat completions (with cold starts and per-request errors).

Behaviour modelled on the docs: a deployment scaling from zero answers 503
``DEPLOYMENT_SCALING_UP`` and does not queue the request (DOC deployments/autoscaling, body
below verbatim); a shape must be one Fireworks validated for the base and addons need BF16
(DOC deploying-loras); a request to ``<model>#<deployment>`` whose adapter is not loaded gets
404 NotFoundError (field notes, reference/fireworks.md §7).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid

from aiohttp import web

from .wire import VALID_ID, Ctx, echo, page, rpc_error
from .world import (
    JSON,
    DeploymentRecord,
)


class DeploymentRoutes:
    def _shape_refusal(self, body: JSON, snap: JSON, base_of: str) -> web.Response | None:
        """What a create on this shape is refused with (a validateOnly create answers the same)."""
        if body.get("enableAddons") and snap["precision"] != "BF16":
            return rpc_error(
                "INVALID_ARGUMENT", "invalid deployment: addons cannot be enabled with quantized precisions (FP8/FP4)"
            )
        if not body.get("enableAddons") and snap["name"].rsplit("/", 1)[-1] in self.live_merge_refused:
            # Field report (Nemotron Nano 3, 2026): "live merge is not supported for this deployment
            # configuration; choose a deployment shape that supports live merge ..." on a matched shape.
            return rpc_error(
                "FAILED_PRECONDITION",
                "live merge is not supported for this deployment configuration; choose a deployment shape that "
                "supports live merge, or use multi-lora (enable_addons=true) instead",
            )
        if body.get("enableAddons") and base_of in self.addons_refused:
            # Field report (Nemotron Nano 3 on Fireworks, 2026): "invalid deployment: addons are not
            # supported for this model" at create.
            return rpc_error("INVALID_ARGUMENT", "invalid deployment: addons are not supported for this model")
        return None

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
        base_of = self.base_of(base.name)
        shapes = self.shapes_for(base_of)
        requested = str(body.get("deploymentShape") or "")
        if requested == "default":  # "a default validated shape version for the base model" (SDK deployments.py:181)
            version = shapes[0] if shapes else None
        else:
            version = self.find_shape(base_of, requested) if requested else None
        if requested and version is None:
            return rpc_error("INVALID_ARGUMENT", "the deployment shape version does not exist or you do not have access to it")
        if version is not None:
            snap = version["snapshot"]
            if (refused := self._shape_refusal(body, snap, base_of)) is not None:
                return refused
            body["deploymentShape"] = version["name"]  # the server stores the version it resolved
            body.update({k: snap[k] for k in ("acceleratorType", "acceleratorCount", "precision")})
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
            return web.json_response(self._dep_wire(rec, ctx.now))
        self.deployments[dep_id] = rec
        self.committed_creates["deployments", dep_id] += 1
        return web.json_response(self._dep_wire(rec, ctx.now))

    def _dep_wire(self, rec: DeploymentRecord, now: float) -> JSON:
        out = rec.wire(now)
        if self.echo_resolved_base:
            # The echo of `baseModel` need not be what was asked for (e.g. the resolved base of a
            # live-merge addon): a client must build its model string from its own request.
            out["baseModel"] = self.base_of(rec.base_model)
        return out

    async def _deployment_get(self, ctx: Ctx) -> web.Response:
        dep = self.deployments.get(ctx.groups[1])
        # After a hard delete the GET is 404, not DELETED: the SDK's own helper deletes with
        # hard=true and polls "until the deployment is gone (404) or in DELETED state"
        # (fireworks-ai training/sdk/deployment.py:352-370, 484-507; DOC create-deployment 5.10.0).
        if dep is None or dep.purged(ctx.now):
            return rpc_error("NOT_FOUND", f"deployment accounts/{ctx.groups[0]}/deployments/{ctx.groups[1]} not found")
        return web.json_response(self._dep_wire(dep, ctx.now))

    async def _deployment_list(self, ctx: Ctx) -> web.Response:
        listed = [d for d in sorted(self.deployments.values(), key=lambda d: d.id) if not d.purged(ctx.now)]
        items = [self._dep_wire(d, ctx.now) for d in listed]
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
            dep.hard = ctx.query.get("hard") == "true"
            for load in self.live_loads():
                if load.deployment == dep.name:
                    load.unloaded_at = ctx.now  # its adapters go with it
        return web.json_response({})

    async def _deployment_scale(self, ctx: Ctx) -> web.Response:
        """``PATCH …/deployments/{id}:scale {"replicaCount": N}`` -> ``{}`` (SDK deployments.scale)."""
        dep = self.deployments.get(ctx.groups[1])
        if dep is None or dep.deleted_at is not None:
            return rpc_error("NOT_FOUND", f"deployment accounts/{ctx.groups[0]}/deployments/{ctx.groups[1]} not found")
        dep.scaled_to = int((ctx.body or {}).get("replicaCount", 0))
        return web.json_response({})

    async def _deployment_update(self, ctx: Ctx) -> web.Response:
        """``PATCH …/deployments/{id}`` with the fields to change, as the SDK's scale-to-zero helper
        sends ``{"maxReplicaCount": 0, "minReplicaCount": 0}`` (training/sdk/deployment.py:637-658);
        max 0 on a READY deployment is "Inactive" (DOC guides/ondemand-deployments): no replica."""
        dep = self.deployments.get(ctx.groups[1])
        if dep is None or dep.deleted_at is not None:
            return rpc_error("NOT_FOUND", f"deployment accounts/{ctx.groups[0]}/deployments/{ctx.groups[1]} not found")
        changes = {k: int(v) for k, v in (ctx.body or {}).items() if k in ("minReplicaCount", "maxReplicaCount")}
        dep.body.update(changes)
        if changes.get("maxReplicaCount") == 0:
            dep.scaled_to = 0
        return web.json_response(self._dep_wire(dep, ctx.now))

    # -- inference ------------------------------------------------------------------------------

    async def _chat(self, ctx: Ctx) -> web.Response:
        body = ctx.body or {}
        model = str(body.get("model") or "")
        messages = body.get("messages") or []
        dep = self._chat_deployment(model, ctx.now)
        if isinstance(dep, web.Response):
            return dep
        if dep is not None and (refused := self._not_serving(dep, model, ctx.now)) is not None:
            return refused
        base = self.base_of(dep.base_model if dep is not None else model)
        if problem := self._chat_problem(body, messages, base):
            return problem
        served = model.split("#", 1)[0] if "#" in model else (dep.base_model if dep is not None else model)
        # An untrained base parrots; a fine-tuned model (a PEFT addon) answers. With
        # `ignores_adapter` (a serving bug) every tuned model answers as its base would.
        untuned = self.base_of(served) == served or self.ignores_adapter
        text = self.chat_responder(self.base_of(served) if self.ignores_adapter else model, messages)
        if untuned and self.chat_responder is echo:
            text += " (as the base model)"
        if base in self.reasoning_models and body.get("reasoning_effort") not in ("none", False):
            # Qwen3-style: thinking is on unless switched off, and it comes first (SDK
            # completion_create_params.py:300-341); a small budget is spent before any answer.
            text = "<think>" + " ".join(["hmm,"] * self.thinking_words) + "</think>" + text
        words = text.split(" ")
        max_tokens = int(body.get("max_tokens") or 2048)
        finish = "length" if len(words) > max_tokens else "stop"
        text = " ".join(words[:max_tokens])
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))
        if self.chat_log is not None:
            self.chat_log.append({"model": model, "body": body})
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

    def _chat_deployment(self, model: str, now: float) -> DeploymentRecord | web.Response | None:
        """The deployment a chat's ``model`` routes to (None: serverless), or its 404."""
        not_found = model_not_found(model)
        if "#" in model:
            found = self._addon_deployment(model, now)
        elif "/deployments/" in model:
            found = next((d for d in self.deployments.values() if d.name == model), None)
        elif (m := self.models.get(model)) is None:
            return not_found
        elif m.body.get("supportsServerless"):
            return None
        else:  # a base model without serverless: served by a READY deployment of it
            found = next((d for d in self.deployments.values() if d.base_model == model and d.state(now) == "READY"), None)
        return not_found if found is None else found

    def _addon_deployment(self, model: str, now: float) -> DeploymentRecord | web.Response | None:
        """``<model>#<deployment>``: the deployment, if it serves that model (its base, or a loaded addon)."""
        model_name, dep_name = model.split("#", 1)
        dep = next((d for d in self.deployments.values() if d.name == dep_name), None)
        if dep is None:
            return None
        if dep.base_model != model_name and not (dep.body.get("enableAddons") and self.adapter_ready(model_name, dep_name, now)):
            return web.json_response(
                {
                    "error": {
                        "message": f"The model `{model}` does not exist.",
                        "type": "NotFoundError",
                        "param": "model",
                        "code": 404,
                    }
                },
                status=404,
            )
        return dep

    def _not_serving(self, dep: DeploymentRecord, model: str, now: float) -> web.Response | None:
        """Why ``dep`` cannot answer a chat for ``model`` now (gone, scaling up, a cold-start
        error), or None: it serves."""
        state = dep.state(now)
        if state in ("DELETING", "DELETED", "FAILED"):
            return model_not_found(model)
        if state == "CREATING" or now < dep.ready_at + self.cold_start_seconds:
            return scaling_up(503)
        if dep.cold_errors_left > 0:
            dep.cold_errors_left -= 1
            return scaling_up(self.cold_start_status)
        dep.served = True
        return None

    def _chat_problem(self, body: JSON, messages: list[JSON], base: str) -> web.Response | None:
        """Per-request refusals: bad reasoning switches, tool turns without tools, bad examples."""
        effort = body.get("reasoning_effort")
        if effort in ("none", False) and base in self.rejects_reasoning_none:  # GPT-OSS: "Invalid reasoning effort: none"
            return openai_error(400, "Invalid reasoning effort: none", "invalid_request_error")
        has_tool_turn = any(isinstance(m, dict) and m.get("role") == "tool" for m in messages)
        if has_tool_turn and not body.get("tools") and self.tool_turns_need_tools:
            # Undocumented on the real API (reference §5): a knob, refused by default.
            return openai_error(400, "messages with role 'tool' require 'tools' to be given", "invalid_request_error")
        if self.chat_error_rate > 0:
            digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
            if int.from_bytes(digest[:4], "big") / 2**32 < self.chat_error_rate:
                # The same prompt fails every time, as a prompt the model cannot take would.
                return openai_error(
                    400, "The prompt is too long for this deployment (injected per-example error)", "invalid_request_error"
                )
        return None


def openai_error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "code": status}}, status=status)


def scaling_up(status: int) -> web.Response:
    # Verbatim from DOC deployments/autoscaling ("Scale from zero behavior").
    return web.json_response(
        {
            "error": {
                "message": "Deployment is currently scaled to zero and is scaling up. Please retry your request in a few minutes.",
                "code": "DEPLOYMENT_SCALING_UP",
                "type": "error",
            }
        },
        status=status,
    )


def model_not_found(model: str) -> web.Response:
    """The inference plane's 404 for a model nothing serves."""
    return web.json_response(
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
