"""The fake's deployment shapes: ``deploymentShapeVersions:match`` and the shapes a deployment may use.

Modelled on the SDK's hand-written ``match`` (resources/deployment_shape_versions.py:202-259):
the body is ``{"createDeploymentRequest": {"parent", "deployment": {"baseModel", "enableAddons"}}}``;
the server "resolves PEFT addons and live-merge models to their base model, scopes results to
shapes your account can deploy, and requires MULTI_LORA-capable shapes when enable_addons is
true"; "an empty deployment_shape_versions list means no validated shape fits the model for
your account". Addons need BF16 (DOC deploying-loras: FP8/FP4 "addons cannot be enabled").
"""

from __future__ import annotations

from aiohttp import web

from .wire import Ctx
from .world import JSON


def shape(slug: str, base: str, accelerator: str, count: int, precision: str, *, addons: bool) -> JSON:
    """One validated shape version as the match answers it (types/deployment_shape_version.py)."""
    name = f"accounts/fireworks/deploymentShapes/{slug}"
    return {
        "name": f"{name}/versions/1",
        "validated": True,
        "latestValidated": True,
        "public": True,
        "snapshot": {
            "name": name,
            "baseModel": base,
            "acceleratorType": accelerator,
            "acceleratorCount": count,
            "precision": precision,
            "enableAddons": addons,
        },
    }


def default_shapes(base: str, params: float | None) -> list[JSON]:
    """A throughput FP8 shape and a BF16 multi-LoRA one, sized like Fireworks' public shapes."""
    short = base.rsplit("/", 1)[-1]
    size = params or 8e9
    if size <= 16e9:
        gpu, n = "NVIDIA_H100_80GB", 1
    elif size <= 80e9:
        gpu, n = "NVIDIA_H100_80GB", 4
    else:
        gpu, n = "NVIDIA_H200_141GB", 8
    return [
        shape(f"{short}-fast", base, gpu, n, "FP8", addons=False),
        shape(f"{short}-multi-lora", base, gpu, n, "BF16", addons=True),
    ]


class ShapeRoutes:
    def shapes_for(self, base: str) -> list[JSON]:
        """Validated shapes of a base this account can deploy (``fake.shapes`` overrides the defaults)."""
        if base in self.undeployable:
            return []
        if base in self.shapes:
            return self.shapes[base]
        model = self.models.get(base)
        if model is None:
            return []
        params = model.body.get("baseModelDetails", {}).get("parameterCount")
        return default_shapes(base, float(params) if params else None)

    def base_of(self, model_name: str) -> str:
        """A PEFT addon's base model (its ``peftDetails.baseModel``), or the model itself."""
        model = self.models.get(model_name)
        if model is not None and isinstance(model.body.get("peftDetails"), dict):
            return str(model.body["peftDetails"].get("baseModel") or model_name)
        return model_name

    def find_shape(self, base: str, requested: str) -> JSON | None:
        for version in self.shapes_for(base):
            if requested in (version["name"], version["snapshot"]["name"]):
                return version
        return None

    async def _shape_match(self, ctx: Ctx) -> web.Response:
        request = (ctx.body or {}).get("createDeploymentRequest") or {}
        deployment = request.get("deployment") or {}
        base = self.base_of(str(deployment.get("baseModel") or ""))
        addons = bool(deployment.get("enableAddons"))
        found = [v for v in self.shapes_for(base) if not addons or v["snapshot"]["enableAddons"]]
        if not found:
            return web.json_response({})  # what the SDK tolerates for "nothing matches" (notes: `{}`)
        return web.json_response({"deploymentShapeVersions": found, "totalSize": len(found)})
