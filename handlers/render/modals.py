"""The revise modal: prefilled from the plan, parsed back into a new run spec (pure).

Only fields the person changed are applied, so an untouched default stays a default
(and is labelled so in plan v2). Each problem is reported on its own input block, which
Slack shows inline when the submission is answered with ``response_action="errors"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from handlers.render.mrkdwn import Block, clip, decode, encode, plain
from handlers.render.plan_message import plan_pairs
from pipeline.domain.instructions import normalise_model, parse_instruction
from pipeline.domain.limits import MAX_SAMPLES, MIN_SAMPLES
from pipeline.domain.records import RunRecord
from pipeline.domain.spec import (
    MAX_EPOCHS,
    MAX_PARALLEL,
    CandidateSpec,
    RunSpec,
    SpecError,
    check_learning_rate,
    check_rank,
    make_spec,
)
from pipeline.planning.plan_types import Plan

CALLBACK_ID = "sft_revise_modal"
MODELS, GRID, EPOCHS, HP, PARALLEL, FINAL, OTHER = "models", "grid", "epochs", "hp_samples", "parallel", "final_run", "other"
_ACTION = "value"


def _text_input(
    block_id: str, label: str, initial: str, *, hint: str = "", optional: bool = False, multiline: bool = False
) -> Block:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": _ACTION, "multiline": multiline}
    if initial:
        element["initial_value"] = clip(initial, 3000)
    block: Block = {"type": "input", "block_id": block_id, "label": plain(label, 2000), "element": element, "optional": optional}
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def _fmt_pairs(pairs: list[tuple[int, float]]) -> str:
    return ", ".join(f"{r}:{lr:g}" for r, lr in pairs)


def revise_modal(run: RunRecord, plan: Plan) -> dict[str, Any]:
    """The modal a Revise click opens; private_metadata carries run id + plan version."""
    final_on = {"text": plain("on: retrain the winner on the full data"), "value": "on"}
    final_off = {"text": plain("off: deploy the winning candidate as is"), "value": "off"}
    epochs = plan.candidates[0].epochs if plan.candidates else 1
    blocks = [
        _text_input(MODELS, "Base models", ", ".join(run.spec.base_models), hint="Comma-separated, e.g. qwen3-8b, qwen3-32b"),
        _text_input(
            GRID,
            "Candidates (LoRA rank:learning rate)",
            _fmt_pairs(plan_pairs(plan)),
            hint="Each pair is one candidate per base model, e.g. 8:1.5e-4, 16:1e-4, 32:5e-5",
        ),
        _text_input(EPOCHS, "Epochs", str(epochs), hint=f"1 to {MAX_EPOCHS}"),
        _text_input(
            HP,
            "HP-tuning samples",
            str(plan.hp_samples or ""),
            optional=True,
            hint="Rows sampled for the sweep; empty = the whole train split",
        ),
        _text_input(PARALLEL, "Jobs in parallel (at most)", str(plan.max_parallel), hint=f"1 to {MAX_PARALLEL}"),
        {
            "type": "input",
            "block_id": FINAL,
            "label": plain("Final run"),
            "element": {
                "type": "radio_buttons",
                "action_id": _ACTION,
                "options": [final_on, final_off],
                "initial_option": final_on if plan.final else final_off,
            },
        },
        _text_input(
            OTHER,
            "Anything else (plain English)",
            "",
            optional=True,
            multiline=True,
            hint="e.g. use accounts/me/datasets/holdout as the eval dataset; generate an evaluator for me",
        ),
    ]
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "private_metadata": encode(run=run.id, v=plan.version),
        "title": plain(f"Revise plan v{plan.version}", 24),
        "submit": plain(f"Propose v{plan.version + 1}", 24),
        "close": plain("Back", 24),
        "blocks": blocks,
    }


def modal_target(view: dict[str, Any]) -> tuple[str | None, int | None]:
    meta = decode(view.get("private_metadata"))
    version = meta.get("v")
    return meta.get("run"), int(version) if isinstance(version, int) else None


def _value(values: dict[str, Any], block_id: str) -> str:
    state = values.get(block_id, {}).get(_ACTION, {})
    if state.get("type") == "radio_buttons" or "selected_option" in state:
        return str((state.get("selected_option") or {}).get("value") or "")
    return str(state.get("value") or "").strip()


def _int(text: str, what: str, lo: int, hi: int) -> int:
    cleaned = text.replace(",", "").replace("_", "").strip()
    if not re.fullmatch(r"\d+", cleaned):
        raise SpecError(f"{what} must be a whole number from {lo} to {hi:,}, not “{clip(text, 40)}”")
    n = int(cleaned)
    if not lo <= n <= hi:
        raise SpecError(f"{what} {n:,} is out of range: use {lo} to {hi:,}")
    return n


def _pairs(text: str) -> list[tuple[int, float]]:
    pairs: list[tuple[int, float]] = []
    for part in [p for p in re.split(r"[,;\s]+", text) if p]:
        rank_s, sep, lr_s = part.partition(":")
        if not sep:
            raise SpecError(f"“{clip(part, 40)}” is not rank:learning-rate, e.g. 16:1e-4")
        try:
            rank, lr = int(rank_s), float(lr_s)
        except ValueError:
            raise SpecError(f"“{clip(part, 40)}” is not rank:learning-rate, e.g. 16:1e-4") from None
        pairs.append((check_rank(rank), check_learning_rate(lr)))
    if not pairs:
        raise SpecError("give at least one rank:learning-rate pair")
    return list(dict.fromkeys(pairs))


def _models(run: RunRecord, plan: Plan, text: str) -> dict[str, Any]:
    names = tuple(dict.fromkeys(normalise_model(m) for m in re.split(r"[,\s]+", text) if m))
    if not names:
        raise SpecError("name at least one base model")
    return {"base_models": names} if names != tuple(run.spec.base_models) else {}


def _grid(run: RunRecord, plan: Plan, text: str) -> dict[str, Any]:
    pairs = _pairs(text)
    if pairs == plan_pairs(plan):
        return {}
    candidates = tuple(CandidateSpec(lora_rank=r, learning_rate=lr) for r, lr in pairs)
    return {"candidates": candidates, "learning_rates": None, "lora_ranks": None}


def _epochs(run: RunRecord, plan: Plan, text: str) -> dict[str, Any]:
    n = _int(text, "epochs", 1, MAX_EPOCHS)
    return {"epochs": n} if not plan.candidates or n != plan.candidates[0].epochs else {}


def _hp(run: RunRecord, plan: Plan, text: str) -> dict[str, Any]:
    if text and (n := _int(text, "HP-tuning samples", MIN_SAMPLES, MAX_SAMPLES)) != plan.hp_samples:
        return {"hp_samples": n}
    return {}


def _parallel(run: RunRecord, plan: Plan, text: str) -> dict[str, Any]:
    n = _int(text, "jobs in parallel", 1, MAX_PARALLEL)
    return {"max_parallel": n} if n != plan.max_parallel else {}


def _final(run: RunRecord, plan: Plan, text: str) -> dict[str, Any]:
    on = text != "off"
    return {"final_run": on} if on != (plan.final is not None) else {}


# Each form field -> the spec updates its value makes (only what differs from the plan), or a
# SpecError / ValueError that is shown on that field.
_FIELDS: tuple[tuple[str, Callable[[RunRecord, Plan, str], dict[str, Any]]], ...] = (
    (MODELS, _models),
    (GRID, _grid),
    (EPOCHS, _epochs),
    (HP, _hp),
    (PARALLEL, _parallel),
    (FINAL, _final),
)


def _field_updates(run: RunRecord, plan: Plan, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The updates every field makes, and the errors by input block."""
    updates: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for block_id, parse in _FIELDS:
        try:
            updates.update(parse(run, plan, _value(values, block_id)))
        except (SpecError, ValueError) as exc:
            errors[block_id] = clip(str(exc), 2000)
    return updates, errors


def parse_revision(run: RunRecord, plan: Plan, values: dict[str, Any]) -> tuple[RunSpec | None, dict[str, str]]:
    """The revised spec, or the errors by input block (never both)."""
    updates, errors = _field_updates(run, plan, values)
    other = _value(values, OTHER)
    extra: RunSpec | None = None
    if other:
        try:
            extra = parse_instruction(other)
        except (SpecError, ValueError) as exc:
            errors[OTHER] = clip(str(exc), 2000)
    if errors:
        return None, errors
    if not updates and extra is None:
        return None, {OTHER: "Nothing changed: edit a value, or close this and approve the plan as it is."}
    try:
        spec = make_spec(**{**run.spec.model_dump(), **updates})
        if extra is not None:
            spec = spec.merged(extra)
    except (SpecError, ValueError) as exc:
        return None, {OTHER: clip(str(exc), 2000)}
    return spec, {}
