"""What the local platform offers and costs, as it declares it."""

from __future__ import annotations

from pipeline.domain.platform import Capabilities, PlatformFacts, PriceFacts

NAME = "local"


def declared(*, max_parallel: int) -> PlatformFacts:
    """Answers in process, reports each epoch's validation loss while a job runs, computes an
    untrained base's loss, serves and exports from this machine; bills nothing (its cost is time)."""
    offers = Capabilities(
        generates_in_process=True,
        default_parallel=max_parallel,
        epoch_validation_loss=True,
        base_loss=True,
        serves_here=True,
        exports_models=True,
    )
    return PlatformFacts(name=NAME, capabilities=offers, prices=PriceFacts(), api_key_env="SFTBOT_LOCAL_API_KEY")
