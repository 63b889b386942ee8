"""A plan from an instruction, without a runner: shared by the planning and rendering tests."""

from __future__ import annotations

from pipeline.dataset.inspection import InspectionReport, Shape
from pipeline.domain.instructions import parse_instruction
from pipeline.planning.plan import make_plan


def plan_for(text: str, samples: int = 5000, **kw: object):
    return make_plan(parse_instruction(text), report(samples), **kw)  # type: ignore[arg-type]


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
