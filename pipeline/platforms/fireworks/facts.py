"""What Fireworks offers and costs, as the platform declares it (no SDK import: `sftbot plan`
without an account plans from these alone)."""

from __future__ import annotations

from pipeline.domain.catalog import price_table
from pipeline.domain.platform import Capabilities, PlatformFacts, PriceFacts

NAME = "fireworks"
# Fireworks SFT trains with a context of "≥32768 for most models; examples are truncated at
# that length" unless `maxContextLength` asks for more (reference/fireworks.md §4, REF:168).
TRAINING_CONTEXT = 32768


def declared(*, min_replicas: int = 0) -> PlatformFacts:
    """Deployment shapes, deployments that scale between ``min_replicas`` and at least one
    replica, a default training context; billed at the dated price table."""
    offers = Capabilities(
        deployment_shapes=True, replicas=(min_replicas, max(1, min_replicas)), training_context=TRAINING_CONTEXT
    )
    prices = PriceFacts(table=price_table())
    return PlatformFacts(name=NAME, capabilities=offers, prices=prices, api_key_env="FIREWORKS_API_KEY")
