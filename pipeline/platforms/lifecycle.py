"""What a deployment keeps costing and how it scales, in the platform's own words.

The text lives in ``templates/lifecycle_<platform>.md.j2``; a platform without such a
template says nothing (the local one serves from this machine). The plan, the final message
and the report all show the same sentence, so nobody learns about idle billing from the
invoice.
"""

from __future__ import annotations

from jinja2 import TemplateNotFound

from pipeline.domain.catalog import price_table
from pipeline.domain.platform import Capabilities, ShapeInfo
from templates import render


def gpus(shape: ShapeInfo | None) -> str | None:
    """ "1 x H100 80GB" for a shape (its accelerator's own name when the price table lacks it)."""
    if shape is None:
        return None
    rate = price_table().gpu_rate(shape.accelerator)
    return f"{shape.count} x {rate.label if rate else shape.accelerator}"


def serving_note(
    platform: str, caps: Capabilities, *, deployment_id: str, run_number: int, shape: ShapeInfo | None = None
) -> str | None:
    """One paragraph on billing, scaling and teardown; None when the platform has nothing to say."""
    if caps.replicas is None:
        return None
    low, high = caps.replicas
    try:
        text = render(
            f"lifecycle_{platform}.md.j2",
            deployment_id=deployment_id,
            run_number=run_number,
            min_replicas=low,
            max_replicas=high,
            gpus=gpus(shape),
        )
    except TemplateNotFound:
        return None
    return " ".join(text.split())
