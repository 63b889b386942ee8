"""The base models Fireworks can fine-tune: the public catalogue (cached) and any model by name."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fireworks import AsyncFireworks
from fireworks.types import Model

from pipeline.domain.catalog import BaseModelInfo, find_model
from pipeline.domain.platform import NotFound, PlatformError
from pipeline.platforms.fireworks import wire
from pipeline.platforms.fireworks.calls import Caller

PUBLIC_ACCOUNT = "fireworks"  # the account Fireworks publishes its base models under


class FireworksCatalog:
    """The ``models`` role on Fireworks."""

    def __init__(self, control: AsyncFireworks, calls: Caller, *, ttl: float, clock: Callable[[], float]) -> None:
        self._control, self._calls = control, calls
        self._ttl, self._clock = ttl, clock
        self._models: list[BaseModelInfo] | None = None
        self._models_at = 0.0
        self._lock = asyncio.Lock()

    async def list_models(self) -> list[BaseModelInfo]:
        async with self._lock:
            if self._models is not None and self._clock() - self._models_at < self._ttl:
                return list(self._models)

            async def fetch() -> list[Model]:
                return [m async for m in self._control.models.list(account_id=PUBLIC_ACCOUNT, page_size=200)]

            # `filter="tunable=true"` is unverified on the server (reference §5): filter here.
            models = await self._calls.run("list base models", fetch)
            self._models = [wire.model_info(m) for m in models if wire.tunable(m)]
            self._models_at = self._clock()
            return list(self._models)

    async def model_info(self, model: str) -> BaseModelInfo | None:
        account, short = wire.model_ref(model)
        if account == PUBLIC_ACCOUNT:
            try:
                known = await self.list_models()
            except PlatformError:
                # Fireworks unreachable: the bundled catalogue still knows the common sizes.
                return find_model(short)
            for info in known:
                if info.id == short:
                    return info
        try:
            found = await self._calls.run(
                f"read model accounts/{account}/models/{short}",
                lambda: self._control.models.get(short, account_id=account),
                missing=f"model accounts/{account}/models/{short}",
            )
        except NotFound:
            return None
        return wire.model_info(found) if wire.tunable(found) else None
