"""Planning and costing: the workflow's defaults, every override, and cost lines that add up."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import msgspec
import pytest

from pipeline.domain.catalog import price_table
from pipeline.domain.instructions import parse_instruction
from pipeline.domain.platform import ShapeInfo, Throughput
from pipeline.domain.spec import EvalKind
from pipeline.planning.plan import default_epochs, make_plan
from tests.paths import DATASETS
from tests.pipeline.planning.plan_support import FACTS, plan_for, report


def test_defaults_follow_the_workflow() -> None:
    plan = plan_for("dataset=d.jsonl model=qwen3-8b", samples=5000)
    assert [(c.lora_rank, c.learning_rate) for c in plan.candidates] == [(8, 1.5e-4), (16, 1.0e-4), (32, 5.0e-5)]
    assert all(c.epochs == 1 for c in plan.candidates)  # min(5, ceil(2500/5000)) = 1
    assert plan.hp_samples == 1000 and all(c.train_samples == 1000 for c in plan.candidates)
    assert plan.max_parallel == 6
    assert plan.evaluation.kind is EvalKind.LOSS
    assert plan.final is not None and plan.final.train_samples == plan.train_samples
    assert plan.train_samples + plan.test_samples == 5000
    assert set(plan.sources.values()) == {plan.sources["grid"]} | {plan.sources["base_models"]}


@pytest.mark.parametrize("n,epochs", [(100, 5), (500, 5), (600, 5), (1000, 3), (1250, 2), (2500, 1), (10_000, 1)])
def test_default_epochs_rule(n: int, epochs: int) -> None:
    assert default_epochs(n) == epochs == min(5, math.ceil(2500 / n))


def test_small_dataset_is_not_subsampled() -> None:
    plan = plan_for("dataset=d.jsonl model=qwen3-8b", samples=300)
    assert plan.hp_samples is None
    assert all(c.train_samples == plan.train_samples for c in plan.candidates)


def test_every_override_wins_and_is_marked() -> None:
    text = (
        "Run SFT on d.jsonl across qwen3-8b and qwen3-32b with learning rates 1e-4 and 5e-5, "
        "LoRA ranks 16 and 32, and 3 epochs. Use 500 samples for HP tuning. Run up to 10 training jobs in parallel. "
        "Skip the full-data final run. Generate an evaluator for me."
    )
    plan = plan_for(text, samples=5000)
    assert len(plan.candidates) == 2 * 2 * 2  # models x ranks x lrs
    assert {c.base_model for c in plan.candidates} == {"qwen3-8b", "qwen3-32b"}
    assert {(c.lora_rank, c.learning_rate) for c in plan.candidates} == {(16, 1e-4), (16, 5e-5), (32, 1e-4), (32, 5e-5)}
    assert all(c.epochs == 3 and c.train_samples == 500 for c in plan.candidates)
    assert plan.max_parallel == 10 and plan.final is None and plan.evaluation.kind is EvalKind.GENERATE
    for key in ("grid", "epochs", "hp_samples", "max_parallel", "final_run", "evaluation"):
        assert plan.sources[key].value == "user", key


def test_ranks_and_lrs_form_a_cross_product_per_model() -> None:
    plan = plan_for("dataset=d.jsonl model=qwen3-8b Use LoRA ranks 8, 16, 32 with learning rates 1e-4 and 5e-5.")
    assert len(plan.candidates) == 6


def test_explicit_candidates_are_taken_as_listed() -> None:
    plan = plan_for("dataset=d.jsonl model=qwen3-8b candidates=16:1e-4,32:5e-5")
    assert [(c.lora_rank, c.learning_rate) for c in plan.candidates] == [(16, 1e-4), (32, 5e-5)]


def test_eval_dataset_disables_the_carve_out() -> None:
    plan = plan_for("dataset=d.jsonl model=qwen3-8b Use accounts/myacct/datasets/holdout as the eval dataset.", samples=800)
    assert plan.eval_dataset == "accounts/myacct/datasets/holdout"
    assert plan.test_samples == 0 and plan.train_samples == 800


H100 = ShapeInfo(name="accounts/fireworks/deploymentShapes/h", accelerator="NVIDIA_H100_80GB", count=1, precision="FP8")


def test_cost_lines_add_up_and_use_the_price_band() -> None:
    shapes = {"qwen3-8b": H100, "qwen3-32b": H100.model_copy(update={"count": 2})}
    plan = plan_for("dataset=d.jsonl model=qwen3-8b,qwen3-32b", samples=5000, shapes=shapes)
    c = plan.cost
    training = sum(ln.usd for ln in c.lines if ln.phase == "training")
    inference = sum(ln.usd for ln in c.lines if ln.phase == "inference")
    assert c.training_usd == pytest.approx(training) and c.inference_usd == pytest.approx(inference)
    assert c.total_usd == pytest.approx(training + inference)
    assert c.low_usd < c.total_usd < c.high_usd
    # qwen3-8b candidates: 1000 samples x 100 tokens x 1 epoch at $0.50/1M
    assert c.lines[0].usd == pytest.approx(1000 * 100 / 1e6 * 0.50)
    # the final run is costed at the priciest model's band (qwen3-32b, $3/1M) on the full train split
    final_line = next(ln for ln in c.lines if ln.label == "final run")
    assert final_line.usd == pytest.approx(plan.train_samples * 100 / 1e6 * 3.00)
    assert c.prices_as_of == price_table().as_of and c.billed_tokens == sum(
        j.train_tokens * j.epochs for j in [*plan.candidates, plan.final]
    )


def test_serving_is_priced_from_the_shape_fireworks_matched() -> None:
    b200 = ShapeInfo(name="accounts/fireworks/deploymentShapes/big/versions/3", accelerator="NVIDIA_B200_180GB", count=8)
    plan = plan_for(
        "dataset=d.jsonl model=qwen3-235b-a22b-instruct-2507", samples=500, shapes={"qwen3-235b-a22b-instruct-2507": b200}
    )
    line = next(ln for ln in plan.cost.lines if ln.label == "deployment (first hour)")
    rate = price_table().gpu_usd("NVIDIA_B200_180GB")
    assert rate is not None and line.usd == pytest.approx(8 * rate * price_table().deployment_hours_in_estimate)
    assert "8 x B200 180GB" in line.detail and "shape big" in line.detail
    assert plan.cost.inference_usd == pytest.approx(line.usd) and plan.shapes == {"qwen3-235b-a22b-instruct-2507": b200}
    assert plan.cost.high_usd is not None and plan.cost.total_usd is not None and plan.cost.high_usd > plan.cost.total_usd
    # The low end prices the GPUs at the docs' calculator figure, below the list price approved.
    assert plan.cost.low_usd is not None and plan.cost.low_usd < plan.cost.total_usd * price_table().range.low


def test_serving_without_a_shape_or_a_rate_is_unknown_never_a_guess() -> None:
    offline = plan_for("dataset=d.jsonl model=qwen3-8b", samples=500)  # `sftbot plan` asks no platform
    line = next(ln for ln in offline.cost.lines if ln.phase == "inference")
    assert line.usd is None and "not looked up" in line.detail
    assert offline.cost.inference_usd is None and offline.cost.total_usd is None
    assert offline.cost.training_usd is not None and any("not looked up" in u for u in offline.cost.unknown)
    odd = H100.model_copy(update={"accelerator": "NVIDIA_L4_24GB"})
    unpriced = plan_for("dataset=d.jsonl model=qwen3-8b", samples=500, shapes={"qwen3-8b": odd})
    assert (
        unpriced.cost.total_usd is None
        and "price unknown for this GPU type, not approved without a person" in unpriced.cost.lines[-1].detail
    )


def test_candidate_outputs_share_one_multi_lora_deployment_per_base() -> None:
    addon = H100.model_copy(update={"precision": "BF16", "addons": True})
    shapes = {"qwen3-8b": H100, "qwen3-32b": H100}
    plan = plan_for(
        "dataset=d.jsonl model=qwen3-8b,qwen3-32b eval=generate",
        samples=500,
        shapes=shapes,
        addon_shapes={"qwen3-8b": addon, "qwen3-32b": None},
    )
    evals = {ln.label: ln for ln in plan.cost.lines if ln.label.startswith("evaluation outputs")}
    hours, h100 = price_table().evaluation_deployment_hours, price_table().gpu_usd("NVIDIA_H100_80GB")
    assert h100 is not None
    assert evals["evaluation outputs (qwen3-8b)"].usd == pytest.approx(1 * hours * h100)  # one shared deployment
    assert "3 adapters on one multi-LoRA deployment" in evals["evaluation outputs (qwen3-8b)"].detail
    assert evals["evaluation outputs (qwen3-32b)"].usd == pytest.approx(3 * hours * h100)  # no addon shape: live merge each
    assert "evaluation outputs (final model)" not in evals  # the final model is scored on the production deployment


def test_a_long_example_asks_for_more_context_and_says_which_line() -> None:
    long = msgspec.structs.replace(report(500), max_sample_tokens=40_000, longest_line=17)
    plan = make_plan(parse_instruction("dataset=d.jsonl model=qwen3-8b"), long, FACTS["fireworks"])
    assert {c.max_context_length for c in plan.candidates} == {44_000} and plan.final is not None
    assert plan.final.max_context_length == 44_000 and 44_000 % 16 == 0
    assert any("~40,000 tokens, line 17" in w and "maxContextLength=44,000" in w for w in plan.warnings)
    short = make_plan(parse_instruction("dataset=d.jsonl model=qwen3-8b"), report(500), FACTS["fireworks"])
    assert all(c.max_context_length is None for c in short.candidates)  # the default fits: nothing sent
    local = make_plan(parse_instruction("dataset=d.jsonl model=qwen3-8b"), long, FACTS["local"])
    assert all(c.max_context_length is None for c in local.candidates)
    capped = make_plan(
        parse_instruction("dataset=d.jsonl model=qwen3-4b"),
        msgspec.structs.replace(long, max_sample_tokens=64_000),
        FACTS["fireworks"],
    )
    assert {c.max_context_length for c in capped.candidates} == {65_536}  # the model's own maximum, a multiple of 16


def test_unknown_model_size_is_unknown_not_guessed() -> None:
    plan = plan_for("dataset=d.jsonl model=accounts/acme/models/my-base", samples=500)
    assert plan.cost.training_usd is None and plan.cost.total_usd is None
    assert plan.cost.unknown and any("unknown" in w for w in plan.warnings)


def _throughput(low: float, high: float, *, startup: float = 10.0) -> Throughput:
    return Throughput(
        model="smollm2-135m",
        machine="a test CPU x2 (cpu)",
        device="cpu",
        precision="fp32",
        batch_size=16,
        tokens_per_second_low=low,
        tokens_per_second_high=high,
        startup_seconds=startup,
        decode_seconds=0.05,
        steps=2,
        measured_at="2026-11-30T00:00:00Z",
    )


def test_local_platform_costs_time_per_job_and_in_total() -> None:
    tp = _throughput(400.0, 500.0)
    plan = plan_for(
        "dataset=d.jsonl model=smollm2-135m lr=1e-4,3e-4 epochs=2 parallel=1",
        samples=300,
        platform="local",
        throughput={"smollm2-135m": tp},
    )
    assert plan.cost.total_usd == 0.0 and plan.cost.unknown == []
    jobs = [*plan.candidates, plan.final]
    for job in jobs:
        assert job is not None and job.duration is not None
        validation = plan.test_samples * (plan.tokens / plan.samples) * job.epochs / 3
        work = job.train_tokens * job.epochs + validation
        assert job.duration.low_seconds == pytest.approx(10.0 + work / 500.0, abs=0.1)  # at the fastest timed step
        assert job.duration.high_seconds == pytest.approx((10.0 + work / 400.0) * 1.25, abs=0.1)  # slowest, with margin
    assert plan.duration is not None
    # One job at a time on this CPU: the total holds every job, plus loading the deployed model.
    assert plan.duration.low_seconds >= sum(j.duration.low_seconds for j in jobs if j and j.duration)
    assert plan.duration.high_seconds > plan.duration.low_seconds
    assert "400-500 tokens/s" in plan.duration.basis and "measured now" in plan.duration.basis


def test_parallel_waves_shorten_the_total_and_unknown_speed_says_so() -> None:
    tp = {"smollm2-135m": _throughput(400.0, 500.0)}
    one = plan_for("dataset=d.jsonl model=smollm2-135m parallel=1", samples=300, platform="local", throughput=tp)
    three = plan_for("dataset=d.jsonl model=smollm2-135m parallel=3", samples=300, platform="local", throughput=tp)
    assert one.duration is not None and three.duration is not None
    assert three.duration.low_seconds < one.duration.low_seconds  # three candidates in one wave
    unknown = plan_for("dataset=d.jsonl model=smollm2-135m", samples=300, platform="local")
    assert unknown.duration is None and unknown.cost.unknown and unknown.cost.total_usd == 0.0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, timeout=60)


def test_cli_plan_json_schema_on_a_real_dataset() -> None:
    out = _cli("plan", "--platform", "fireworks", "--json", f"Run SFT on {DATASETS / 'gsm8k_200.jsonl'} with qwen3-8b")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"candidates", "final", "max_parallel", "evaluation", "cost", "warnings"} <= set(data)
    assert set(data["candidates"][0]) >= {"base_model", "lora_rank", "learning_rate", "epochs", "train_samples"}
    assert set(data["cost"]) >= {"training_usd", "inference_usd", "total_usd", "low_usd", "high_usd", "prices_as_of"}
    assert data["candidates"][0]["epochs"] == 5 and data["max_parallel"] == 6
    assert any("convert" in w.lower() for w in data["warnings"])  # question/answer rows become chat


def test_cli_errors_are_one_line_without_traceback() -> None:
    out = _cli("plan", "dataset=d.jsonl model=qwen3-8b rank=7")
    assert out.returncode != 0 and "rank 7" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = _cli("plan", f"dataset={DATASETS / 'chat_minimal.jsonl'} model=qwen3-8b")
    assert out.returncode == 1 and "Traceback" not in out.stderr


def test_cli_inspect_exit_codes() -> None:
    assert _cli("inspect", str(DATASETS / "text2sql_dataset.jsonl")).returncode == 0
    assert _cli("inspect", str(DATASETS / "gsm8k_200.jsonl")).returncode == 0
    bad = _cli("inspect", str(DATASETS / "chat_minimal.jsonl"))
    assert bad.returncode == 1
    assert _cli("inspect", "/nonexistent.jsonl").returncode == 2
    assert _cli("frobnicate").returncode == 2


# Every accelerator the create-deployment API names: SDK 1.2.30's Literal
# (fireworks/types/deployment_create_params.py:71-86) plus those the Gateway REST API 5.10.0 adds
# (https://docs.fireworks.ai/api-reference/create-deployment: NVIDIA_B300_288GB, NVIDIA_GB200, NVIDIA_GB300).
API_ACCELERATORS = {
    "NVIDIA_A100_80GB", "NVIDIA_H100_80GB", "AMD_MI300X_192GB", "NVIDIA_A10G_24GB", "NVIDIA_A100_40GB",
    "NVIDIA_L4_24GB", "NVIDIA_H200_141GB", "NVIDIA_B200_180GB", "AMD_MI325X_256GB", "AMD_MI350X_288GB",
    "NVIDIA_B300_288GB", "NVIDIA_GB200", "NVIDIA_GB300",
}  # fmt: skip


def test_every_accelerator_is_priced_with_a_dated_source_or_said_unknown() -> None:
    from typing import get_args, get_type_hints

    from fireworks.types.deployment_create_params import DeploymentCreateParams

    hint = get_type_hints(DeploymentCreateParams, include_extras=True)["accelerator_type"]
    sdk = set(get_args(get_args(hint)[0])) - {"ACCELERATOR_TYPE_UNSPECIFIED"}
    assert len(sdk) == 10 and sdk <= API_ACCELERATORS  # the SDK's list is a subset of the API's; both are covered below
    table = price_table()
    assert set(table.gpu_hour_by_accelerator.rates) == API_ACCELERATORS
    for name, rate in table.gpu_hour_by_accelerator.rates.items():
        if rate.usd is None:  # unknown: no source, and nothing the plan could approve with
            assert rate.source is None, name
            continue
        assert rate.source in table.sources and table.sources[rate.source].url, name
        if rate.usd_low is not None:  # the range's low end is lower and has its own source
            assert rate.usd_low < rate.usd and rate.low_source in table.sources, name
    assert all(tier.source in table.sources for tier in table.lora_sft_per_million_tokens)
    # The 2026-09-01 list prices approvals use, with the docs' calculator as the low end.
    assert {n: (r.usd, r.usd_low) for n, r in table.gpu_hour_by_accelerator.rates.items() if r.usd is not None} == {
        "NVIDIA_H100_80GB": (8.0, 7.0),
        "NVIDIA_H200_141GB": (8.0, 7.0),
        "NVIDIA_B200_180GB": (13.0, 10.0),
        "NVIDIA_B300_288GB": (15.0, 12.0),
        "NVIDIA_GB300": (20.0, None),
    }


def test_a_figure_without_a_source_is_refused_when_the_table_loads() -> None:
    from pipeline.domain.catalog import PriceTable

    data = price_table().model_dump()
    data["gpu_hour_by_accelerator"]["rates"]["NVIDIA_GB200"]["usd"] = 30.0  # a price nobody can point at
    with pytest.raises(ValueError, match="NVIDIA_GB200: a price needs a source"):
        PriceTable.model_validate(data)
    data = price_table().model_dump()
    data["lora_sft_per_million_tokens"][0]["source"] = "hearsay"
    with pytest.raises(ValueError, match="source 'hearsay' is not in the price table's sources"):
        PriceTable.model_validate(data)


def test_an_unknown_gpu_rate_leaves_the_total_unknown_so_a_person_approves() -> None:
    from pipeline.domain.authz import Action, Actor, Policy, Rule, Subject, authorize

    gb200 = H100.model_copy(update={"accelerator": "NVIDIA_GB200", "count": 4})
    plan = plan_for("dataset=d.jsonl model=qwen3-8b", samples=500, shapes={"qwen3-8b": gb200})
    line = next(ln for ln in plan.cost.lines if ln.label == "deployment (first hour)")
    assert line.usd is None and "not approved without a person" in line.detail and "4 x GB200" in line.detail
    assert plan.cost.total_usd is None and plan.cost.deployment_usd_per_hour is None
    policy = Policy(budget_usd=100.0, admins=["UADMIN"])
    about = Subject(requester="UALICE", estimated_usd=plan.cost.total_usd)
    verdict = authorize(Actor(id="UBOB"), Action.APPROVE, policy=policy, about=about)
    assert not verdict.allowed and verdict.rule is Rule.OVER_BUDGET  # an admin has to look
    assert authorize(Actor(id="UADMIN"), Action.APPROVE, policy=policy, about=about).allowed
