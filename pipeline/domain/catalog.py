"""Known base models and the dated price table, loaded from package data files.

Prices live in a data file (not code) so a price change is a one-line diff with its date.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from pydantic import BaseModel, model_validator


class BaseModelInfo(BaseModel):
    """A tunable base model: its short id, size in billions of parameters and max context."""

    id: str
    params_b: float | None = None
    max_context: int | None = None
    name: str | None = None  # platform resource name or local path, when it differs from id


class PriceSource(BaseModel):
    """Where a figure in the table comes from, and how far to trust it."""

    url: str | None
    note: str
    confidence: str


class PriceTier(BaseModel):
    max_params_b: float | None
    usd: float
    label: str
    source: str  # a key of PriceTable.sources


class GpuRate(BaseModel):
    """One GPU's on-demand hourly rate. ``usd`` is the figure approvals use (the newest dated
    list price); ``usd`` None means unknown: a plan on it has no total, so a person approves it."""

    label: str
    usd: float | None
    source: str | None  # a key of PriceTable.sources; None exactly when usd is None
    usd_low: float | None = None  # the low end of the range (an older or lower published figure)
    low_source: str | None = None
    last_known_usd: float | None = None  # a superseded figure, shown, never used to approve
    last_known_source: str | None = None


class GpuRates(BaseModel):
    """On-demand $/GPU-hour by accelerator type (the names Fireworks' deployment shapes use)."""

    as_of: str
    source: str
    note: str
    region_restricted_multiplier: float
    rates: dict[str, GpuRate]


class PriceRange(BaseModel):
    low: float
    high: float


class PriceTable(BaseModel):
    """Fireworks prices as of a date, with their source (shown in every plan)."""

    as_of: str
    source: str
    currency: str
    sources: dict[str, PriceSource]
    lora_sft_per_million_tokens: list[PriceTier]
    gpu_hour_by_accelerator: GpuRates
    deployment_hours_in_estimate: float
    evaluation_deployment_hours: float
    range: PriceRange

    @model_validator(mode="after")
    def _every_figure_has_a_source(self) -> PriceTable:
        for tier in self.lora_sft_per_million_tokens:
            _known_source(self.sources, tier.source, tier.label)
        for name, rate in self.gpu_hour_by_accelerator.rates.items():
            if (rate.usd is None) != (rate.source is None):
                raise ValueError(f"{name}: a price needs a source and a source a price")
            for key in (rate.source, rate.low_source, rate.last_known_source):
                if key is not None:
                    _known_source(self.sources, key, name)
        return self

    def sft_tier(self, params_b: float | None) -> PriceTier | None:
        """The LoRA SFT price band for a model size; None when the size is unknown."""
        if params_b is None:
            return None
        for tier in self.lora_sft_per_million_tokens:
            if tier.max_params_b is None or params_b <= tier.max_params_b:
                return tier
        return None

    def gpu_rate(self, accelerator: str) -> GpuRate | None:
        """The table's row for a shape's accelerator type (its ``usd`` may be None: unknown); None
        when the type is not in the table at all."""
        return self.gpu_hour_by_accelerator.rates.get(accelerator)

    def gpu_usd(self, accelerator: str) -> float | None:
        """The hourly rate approvals use for one GPU of this type; None: unknown, a person decides."""
        rate = self.gpu_rate(accelerator)
        return rate.usd if rate is not None else None


def _known_source(sources: dict[str, PriceSource], key: str, what: str) -> None:
    if key not in sources:
        raise ValueError(f"{what}: source {key!r} is not in the price table's sources")


def _load(name: str) -> object:
    return json.loads(resources.files("pipeline.data").joinpath(name).read_text(encoding="utf-8"))


class Span(BaseModel):
    low: float
    high: float


class SpeedBand(BaseModel):
    max_params_b: float | None
    low: float
    high: float


class ThroughputTable(BaseModel):
    """Rough time assumptions for a platform that publishes none (pipeline/data/throughput.json)."""

    as_of: str
    basis: str
    job_start_minutes: Span
    training_tokens_per_second: list[SpeedBand]
    deployment_minutes: Span
    evaluation_minutes_per_model: Span

    def speed(self, params_b: float | None) -> SpeedBand | None:
        if params_b is None:
            return None
        return next((b for b in self.training_tokens_per_second if b.max_params_b is None or params_b <= b.max_params_b), None)


@lru_cache(maxsize=1)
def throughput_table() -> ThroughputTable:
    return ThroughputTable.model_validate(_load("throughput.json"))


@lru_cache(maxsize=1)
def price_table() -> PriceTable:
    """The bundled, dated price table."""
    return PriceTable.model_validate(_load("prices.json"))


@lru_cache(maxsize=1)
def known_models() -> tuple[BaseModelInfo, ...]:
    """Tunable Fireworks base models from the bundled catalogue (used offline and for sizes)."""
    data = _load("models.json")
    assert isinstance(data, dict)
    return tuple(BaseModelInfo.model_validate(m) for m in data["models"])


def find_model(model_id: str) -> BaseModelInfo | None:
    """Look a model up by short id or by `accounts/fireworks/models/<id>`."""
    short = model_id.rsplit("/", 1)[-1] if model_id.startswith("accounts/fireworks/models/") else model_id
    for m in known_models():
        if m.id == short:
            return m
    return None
