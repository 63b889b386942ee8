"""Fireworks serving: deployments (live merge and multi-LoRA), deployment shapes, adapter loads.

A fine-tuned LoRA is served either by a live-merge deployment of the fine-tuned model, or
as an addon loaded onto a deployment of its base created with ``enableAddons`` (up to 100
adapters on one BF16 deployment; reference/fireworks.md §7). Which shape a deployment runs
on — and whether this account can deploy the model at all — comes from
``deployment_shape_versions.match_for_model`` (SDK resources/deployment_shape_versions.py:259:
"an empty list means no validated shape fits the model for your account").

Loads carry no caller-chosen id (SDK resources/lora.py:246, the id is server-assigned), so a
load is made idempotent by looking for the (model, deployment) pair before loading.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fireworks import AsyncFireworks, omit
from fireworks.types import Deployment
from fireworks.types.deployment_shape_version import DeploymentShapeVersion
from fireworks.types.shared.deployed_model import DeployedModel

from pipeline.domain.catalog import BaseModelInfo, price_table
from pipeline.domain.ids import PREFIX, owned
from pipeline.domain.platform import (
    AdapterStatus,
    DeploymentState,
    DeploymentStatus,
    NotFound,
    PlatformError,
    ShapeInfo,
    Snippet,
)
from pipeline.platforms.fireworks import wire
from pipeline.platforms.fireworks.calls import Caller
from pipeline.platforms.fireworks.catalog import PUBLIC_ACCOUNT
from pipeline.platforms.fireworks.settings import DEFAULT_INFERENCE_ROOT, FireworksSettings
from templates import render

LARGE_PARAMS_B = 70.0  # bases this size and up get the longer warm-up window

ModelInfo = Callable[[str], Awaitable[BaseModelInfo | None]]


VALIDATION_ID = "sftbot-preflight"  # a validateOnly create's id: nothing is created under it


class FireworksServing:
    """The ``serving`` and ``adapters`` roles on Fireworks: deployments, shapes and adapter loads."""

    def __init__(self, control: AsyncFireworks, calls: Caller, settings: FireworksSettings, *, model_info: ModelInfo) -> None:
        self._control, self._calls = control, calls
        self._settings = settings
        self._account = settings.account_id
        self.endpoint = settings.endpoint
        self.min_replicas = settings.min_replicas
        self.max_replicas = max(1, settings.min_replicas)
        self.warmup_seconds = settings.warmup_seconds
        self._large_warmup = settings.large_warmup_seconds
        self._model_info = model_info
        self._requested: dict[str, str] = {}  # deployment id -> the model sftbot asked it to serve
        self._warmup: dict[str, float] = {}  # deployment id -> its warm-up window (seconds)
        self.ready_since: dict[str, float] = {}  # model string -> when it was first seen ready to serve

    def dep_name(self, deployment_id: str) -> str:
        return f"accounts/{self._account}/deployments/{deployment_id}"

    def model_name(self, model: str) -> str:
        return model if model.startswith("accounts/") else f"accounts/{self._account}/models/{model}"

    def warmup_for(self, model_string: str) -> float:
        """The warm-up window of the deployment a model string routes to."""
        dep = model_string.rpartition("#")[2].rsplit("/", 1)[-1]
        return self._warmup.get(dep, self.warmup_seconds)

    # -- shapes ---------------------------------------------------------------------------------

    async def shape(self, model: str, *, addons: bool = False) -> ShapeInfo | None:
        """The cheapest validated shape a deployment of ``model`` would use; None when none fits."""
        name = wire.base_model_name(model) if "/" not in model else model
        found = await self._calls.run(
            f"look up deployment shapes for {name}",
            lambda: self._control.deployment_shape_versions.match_for_model(name, enable_addons=addons),
        )
        options = [s for v in (found.deployment_shape_versions or []) if (s := _shape(v, addons=addons)) is not None]
        if not options:
            return None
        prices = price_table()

        def cost(s: ShapeInfo) -> float:
            usd = prices.gpu_usd(s.accelerator)
            return s.count * usd if usd is not None else float("inf")

        return min(options, key=cost)  # stable: the server's order breaks ties

    # -- deployments ------------------------------------------------------------------------------

    async def create(self, deployment_id: str, model: str) -> DeploymentStatus:
        """A live-merge deployment of a fine-tuned model (or a base), on the shape Fireworks matches."""
        model_name = self.model_name(model)
        self._requested[deployment_id] = model_name
        base = await self._base_of(model_name)
        await self._set_warmup(deployment_id, base)
        try:
            shape = await self.shape(model_name, addons=False)
        except PlatformError:
            shape = None  # the server's default validated shape is the next best thing
        try:
            deployment = await self._create_merged(deployment_id, model_name, shape.name if shape is not None else "default")
        except PlatformError as exc:
            if exc.retryable or shape is None:
                raise
            # Live merge refused on the matched shape (field reports: "live merge is not supported for
            # this deployment configuration"): once more on the base's default validated shape
            # ("default": SDK resources/deployments.py:181), which the server picks itself.
            deployment = await self._create_merged(deployment_id, model_name, "default")
        return self.status(deployment, deployment_id)

    async def validate(self, model: str, shape: ShapeInfo) -> str | None:
        """A ``validateOnly`` create of the live-merge deployment ("If true, this will not create the
        deployment, but will return the deployment that would be created": SDK
        resources/deployments.py:168-169), on ``shape`` and, as ``create`` does when refused, on the
        default shape; None when one is accepted, else Fireworks' refusal."""
        name = model if model.startswith("accounts/") else wire.base_model_name(model)
        refusal: PlatformError | None = None
        for option in (shape.name, "default"):
            try:
                await self._create_merged(VALIDATION_ID, name, option, validate_only=True)
                return None
            except PlatformError as exc:
                if exc.retryable:
                    raise
                refusal = refusal or exc
        return str(refusal).rstrip(".") if refusal is not None else None

    async def _create_merged(self, deployment_id: str, model_name: str, shape: str, *, validate_only: bool = False) -> Deployment:
        return await self._calls.run(
            f"create deployment {deployment_id} of {model_name}",
            lambda: self._control.deployments.create(
                base_model=model_name,  # live merge: the fine-tuned LoRA is the deployment's model
                deployment_id=deployment_id,
                deployment_shape=shape,
                # Scale to zero when idle (the default window is 1 h) so a forgotten deployment stops billing.
                min_replica_count=self.min_replicas,
                max_replica_count=self.max_replicas,
                display_name=deployment_id,
                validate_only=validate_only or omit,
            ),
            on_conflict=lambda: self._control.deployments.get(deployment_id),
        )

    async def create_shared(self, deployment_id: str, base_model: str, *, shape: str) -> DeploymentStatus:
        """A deployment of ``base_model`` with addons enabled, for loading many adapters onto."""
        base = wire.base_model_name(base_model)
        self._requested[deployment_id] = base
        await self._set_warmup(deployment_id, base)
        deployment = await self._calls.run(
            f"create addon deployment {deployment_id} of {base}",
            lambda: self._control.deployments.create(
                base_model=base,
                deployment_id=deployment_id,
                deployment_shape=shape,  # a BF16 shape: addons are refused on FP8/FP4 (DOC deploying-loras)
                enable_addons=True,
                # A quantized drafter fails addon validation on some bases ("draft model precision
                # validation failed", field notes in reference/fireworks.md §7); outputs for an
                # evaluation do not need speculative decoding.
                disable_speculative_decoding=True,
                min_replica_count=self.min_replicas,
                max_replica_count=self.max_replicas,
                display_name=deployment_id,
            ),
            on_conflict=lambda: self._control.deployments.get(deployment_id),
        )
        return self.status(deployment, deployment_id)

    async def get(self, deployment_id: str) -> DeploymentStatus:
        deployment = await self._calls.run(
            f"read deployment {deployment_id}",
            lambda: self._control.deployments.get(deployment_id),
            missing=f"deployment {self.dep_name(deployment_id)}",
        )
        return self.status(deployment, deployment_id)

    async def delete(self, deployment_id: str) -> DeploymentStatus:
        if not owned(deployment_id):
            raise PlatformError(
                f"refusing to delete deployment {deployment_id}: sftbot only deletes deployments it created (ids starting with {PREFIX})."
            )
        await self._calls.run(
            f"delete deployment {deployment_id}",
            # The smoke test and evaluation just sent traffic; without ignore_checks the API
            # refuses to delete for an hour. The bot created this deployment and owns it. Hard,
            # as the SDK's own helper deletes (training/sdk/deployment.py:360-370): gone, not
            # soft-deleted and restorable.
            lambda: self._control.deployments.delete(deployment_id, hard=True, ignore_checks=True),
            missing=f"deployment {self.dep_name(deployment_id)}",
        )
        try:
            return await self.get(deployment_id)
        except NotFound:
            # Read back after a hard delete: 404 is gone ("gone (404) or in DELETED state",
            # training/sdk/deployment.py:484-507), not a failed teardown that bills on.
            return DeploymentStatus(
                deployment_id=deployment_id,
                state=DeploymentState.DELETED,
                model=self._requested.get(deployment_id, ""),
                endpoint=self.endpoint,
                model_string="",
            )

    async def scale_to_zero(self, deployment_id: str) -> DeploymentStatus:
        """Minimum and maximum replicas 0, as the SDK's own helper parks a deployment
        (fireworks-ai training/sdk/deployment.py:637-658: ``PATCH …/deployments/{id}`` with
        ``{"maxReplicaCount": 0, "minReplicaCount": 0}`` and nothing else, "releasing all
        accelerators"). ``deployments.scale(replica_count=0)`` only sets the current count, and GPU
        quota is held at ``maxReplicaCount`` (fw-ai/cookbook, GPU quota accounting notes); the docs
        call a READY deployment with max 0 "Inactive" (guides/ondemand-deployments)."""
        if not owned(deployment_id):
            raise PlatformError(f"refusing to scale deployment {deployment_id}: sftbot only changes deployments it created.")
        path = f"/v1/accounts/{self._account}/deployments/{deployment_id}"
        await self._calls.run(
            f"scale deployment {deployment_id} to zero",
            lambda: self._control.patch(path, cast_to=Deployment, body={"maxReplicaCount": 0, "minReplicaCount": 0}),
            missing=f"deployment {self.dep_name(deployment_id)}",
        )
        return await self.get(deployment_id)

    def snippet(self, deployment: DeploymentStatus, *, system_prompt: str | None = None) -> Snippet:
        root = self._settings.inference_root
        code = render(
            "fireworks_snippet.py.j2",
            model=deployment.model,
            deployment_id=deployment.deployment_id,
            model_string=deployment.model_string,
            base_url=None if root == DEFAULT_INFERENCE_ROOT else root,
            system_prompt=system_prompt,
            # Up to the warm-up window: a scaled-to-zero deployment answers 503 until a replica is up.
            retry_minutes=max(1, round(self.warmup_seconds / 60)),
        )
        return Snippet(language="python", code=code, env=["FIREWORKS_API_KEY"])

    def status(self, deployment: Deployment, deployment_id: str) -> DeploymentStatus:
        # The model string is built from the model sftbot asked for, not the server's echo of
        # `baseModel` (which may be the resolved base, or another spelling of the same model).
        requested = self._requested.get(deployment_id) or deployment.base_model
        out = wire.deployment_status(deployment, deployment_id, account=self._account, endpoint=self.endpoint, model=requested)
        if out.state is DeploymentState.READY:
            self.ready_since.setdefault(out.model_string, self._calls.clock())
        return out

    # -- adapters (multi-LoRA) ----------------------------------------------------------------

    async def load(self, model: str, deployment_id: str, *, label: str) -> AdapterStatus:
        found = await self.find(model, deployment_id)
        if found is not None:
            return found  # loaded before (a resume): never twice
        model_name, dep = self.model_name(model), self.dep_name(deployment_id)
        loaded = await self._calls.run(
            f"load {model_name} onto deployment {deployment_id}",
            lambda: self._control.lora.load(model=model_name, deployment=dep, display_name=label[:63]),
        )
        return self._adapter(loaded, model_name, deployment_id)

    async def find(self, model: str, deployment_id: str) -> AdapterStatus | None:
        model_name, dep = self.model_name(model), self.dep_name(deployment_id)

        async def listed() -> list[DeployedModel]:
            # Whether the server honours this filter is unverified (reference §7): matched again below.
            return [d async for d in self._control.lora.list(filter=f'deployment="{dep}"', page_size=200)]

        for loaded in await self._calls.run(f"list the adapters on deployment {deployment_id}", listed):
            if loaded.model == model_name and loaded.deployment == dep:
                return self._adapter(loaded, model_name, deployment_id)
        return None

    def _adapter(self, loaded: DeployedModel, model_name: str, deployment_id: str) -> AdapterStatus:
        string = f"{model_name}#{self.dep_name(deployment_id)}"  # DOC deploying-loras: "<model_name>#<deployment_name>"
        ready = loaded.state == "DEPLOYED"
        if ready:
            self.ready_since.setdefault(string, self._calls.clock())
        message = loaded.status.message if loaded.status and loaded.status.message else None
        return AdapterStatus(
            name=loaded.name or "",
            model=model_name,
            deployment_id=deployment_id,
            ready=ready,
            model_string=string,
            message=message,
        )

    # -- warm-up windows ------------------------------------------------------------------------

    async def _base_of(self, model_name: str) -> str:
        """The base of a fine-tuned model (its PEFT details), or the model itself."""
        account, short = wire.model_ref(model_name)
        if account == PUBLIC_ACCOUNT:
            return model_name
        try:
            found = await self._calls.run(
                f"read model {model_name}",
                lambda: self._control.models.get(short, account_id=account),
                missing=f"model {model_name}",
            )
        except (NotFound, PlatformError):
            return model_name
        details = found.peft_details
        return details.base_model if details is not None and details.base_model else model_name

    async def _set_warmup(self, deployment_id: str, base: str) -> None:
        """Scaling 0 -> 1 takes "up to a few minutes", longer for big models (DOC deployments/autoscaling)."""
        try:
            info = await self._model_info(base)
        except PlatformError:
            info = None
        large = info is not None and info.params_b is not None and info.params_b >= LARGE_PARAMS_B
        self._warmup[deployment_id] = max(self.warmup_seconds, self._large_warmup) if large else self.warmup_seconds


def _shape(version: DeploymentShapeVersion, *, addons: bool) -> ShapeInfo | None:
    snap = version.snapshot
    if snap is None or version.validated is False:
        return None
    # Multi-LoRA needs a BF16 shape with addons on (DOC deploying-loras); FP8/FP4 refuse addons.
    capable = bool(snap.enable_addons) or snap.precision == "BF16"
    if addons and not capable:
        return None
    return ShapeInfo(
        name=snap.name or version.name or "",
        accelerator=snap.accelerator_type or "ACCELERATOR_TYPE_UNSPECIFIED",
        count=int(snap.accelerator_count or 1),
        precision=snap.precision,
        addons=capable,
    )
