"""A plan from an instruction, without a runner: shared by the planning and rendering tests."""

from __future__ import annotations

from typing import Any

from pipeline.dataset.inspection import InspectionReport, Shape
from pipeline.domain.instructions import parse_instruction
from pipeline.planning.plan import make_plan
from pipeline.planning.plan_types import Lookups, Plan
from pipeline.platforms.fireworks import facts as fireworks
from pipeline.platforms.local import facts as local

# What each platform declares, as its platform object would (the local one's parallelism is the machine's).
FACTS = {"fireworks": fireworks.declared(), "local": local.declared(max_parallel=1)}


def plan_for(text: str, samples: int = 5000, *, platform: str = "fireworks", **found: Any) -> Plan:
    """``found``: what the planner's lookups would have found (shapes, addon_shapes, throughput, ...)."""
    return make_plan(parse_instruction(text), report(samples), FACTS[platform], found=Lookups(**found))


def report(samples: int, tokens_per_sample: int = 100) -> InspectionReport:
    return InspectionReport(
        path="x.jsonl",
        bytes=1,
        lines=samples,
        samples=samples,
        shape=Shape.CHAT,
        tokens=samples * tokens_per_sample,
        token_method="estimate",
        max_sample_tokens=tokens_per_sample,
    )
