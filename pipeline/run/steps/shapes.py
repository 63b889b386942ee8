"""Before a plan: where would each base model's fine-tune be served, and can it be at all?

Fireworks answers with the validated deployment shapes this account may use for a model
(``deployment_shape`` on the platform; an empty answer means it cannot be deployed here).
The plan prices serving from those shapes, and a base that cannot be deployed is refused
before anything is spent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.domain.platform import PlatformError, ShapeInfo
from pipeline.domain.spec import EvalKind, Evaluation, RunSpec
from pipeline.run.context import RunContext


@dataclass
class Serving:
    shapes: dict[str, ShapeInfo | None] | None = None  # base -> live-merge shape (None: not looked up)
    addon_shapes: dict[str, ShapeInfo | None] | None = None  # base -> multi-LoRA shape, for candidate outputs
    undeployable: str | None = None  # the first base with no shape on this account
    warnings: list[str] = field(default_factory=list)


async def look_up(ctx: RunContext, spec: RunSpec, evaluation: Evaluation) -> Serving:
    """The shapes of the plan's bases; nothing is asked when nothing will be deployed."""
    caps = ctx.platform.capabilities
    outputs = evaluation.kind is not EvalKind.LOSS
    if not caps.deployment_shapes or not (spec.deploy is not False or outputs):
        return Serving()
    out = Serving(shapes={})
    assert out.shapes is not None
    try:
        for base in spec.base_models:
            shape = await ctx.platform.deployment_shape(base)
            if shape is None:
                return Serving(undeployable=base)
            out.shapes[base] = shape
        if outputs and caps.addon_deployments:
            out.addon_shapes = {b: await ctx.platform.deployment_shape(b, addons=True) for b in spec.base_models}
    except PlatformError as exc:
        # Not a refusal: the platform could not say. The plan shows serving as unknown.
        return Serving(warnings=[f"Could not ask {ctx.platform.name} which GPUs the models would be served on ({exc})"])
    return out


def refusal(base: str, platform: str) -> str:
    """The question text when a base cannot be deployed on this account."""
    return (
        f"{base} cannot be deployed on this {platform} account: {platform} has no deployment shape for it here, so the "
        "model I would train could not be served (nothing has been spent). Which base model should I fine-tune instead? "
        "(With deploy=no and validation loss, nothing is deployed.)"
    )
