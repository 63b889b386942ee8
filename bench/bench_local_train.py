"""Local trainer vs transformers.Trainer: same model, data, order, LoRA init and schedule.

    python bench/bench_local_train.py                  # tiny random Llama (~0.85M params), seconds
    python bench/bench_local_train.py --model smollm2  # SmolLM2-135M-Instruct (converted once), minutes

Both sides train LoRA (q/k/v/o, alpha = 2 * rank) on the bundled demo dataset (first
``--rows`` rows to train, the next ``--val`` to validate) with AdamW (no weight decay),
constant learning rate, gradient clipping 1.0, the same batches in the same order and the
same LoRA initialisation, at the precision the local trainer picks on this machine. Throughput
is training tokens (prompt + completion, no padding) per second of the training loop, wall
and per CPU-second of this process (the CPU figure is the fair one on a shared machine).
Both final models are scored by the same fp32 validation loss.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the trainer subprocess runs (see local_train)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from peft import get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

from pipeline.dataset.demo_data import demo_path
from pipeline.domain.platform import JobRequest
from pipeline.platforms.local.encode import Encoded, collate, load_rows
from pipeline.platforms.local.jobs import LocalJobSpec, TrainerStatus
from pipeline.platforms.local.loss import evaluate
from pipeline.platforms.local.models import DEMO_MODEL_ID, TINY_MODEL_ID, ensure_folder, resolve
from pipeline.platforms.local.train import Trainer as LocalTrainer
from pipeline.platforms.local.train import batches, lora_config


class ReplaySampler(torch.utils.data.Sampler[int]):
    """Yields the local trainer's per-epoch permutation, so both see identical batches."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Any:
        order = [i for b in batches(self.n, self.batch_size, self.seed, self.epoch) for i in b]
        self.epoch += 1
        return iter(order)


class ReplayTrainer(Trainer):
    replay: ReplaySampler

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        return self.replay


def run_local(job_dir: Path, spec: LocalJobSpec) -> tuple[float, float, float, str]:
    """The real trainer code path, in-process; returns (loop s, loop CPU s, tokens/s, precision)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "request.json").write_text(spec.model_dump_json(), encoding="utf-8")
    LocalTrainer(job_dir).run()
    status = TrainerStatus.model_validate_json((job_dir / "status.json").read_text(encoding="utf-8"))
    last = json.loads((job_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert status.tokens_per_second is not None and status.precision is not None
    return last["elapsed_s"], last["cpu_s"], status.tokens_per_second, status.precision


def run_hf(folder: Path, train: list[Encoded], pad_id: int, spec: LocalJobSpec, out: Path) -> tuple[float, float, float, Any]:
    req = spec.request
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    torch.manual_seed(spec.seed)  # same LoRA init as the local trainer
    model = get_peft_model(model, lora_config(req.lora_rank))
    bf16 = spec.precision == "bf16"
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=spec.batch_size,
        num_train_epochs=req.epochs,
        learning_rate=req.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        optim="adamw_torch",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        use_cpu=spec.device == "cpu",
        bf16=bf16,
        seed=spec.seed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=True,
    )

    def collator(rows: list[Encoded]) -> dict[str, torch.Tensor]:
        ids, attn, labels = collate(rows, pad_id, "cpu")
        return {"input_ids": ids, "attention_mask": attn, "labels": labels}

    trainer = ReplayTrainer(model=model, args=args, train_dataset=train, data_collator=collator)  # type: ignore[arg-type]
    trainer.replay = ReplaySampler(len(train), spec.batch_size, spec.seed)
    tokens = sum(len(r.input_ids) for r in train) * req.epochs
    wall0, cpu0 = time.perf_counter(), time.process_time()
    trainer.train()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall, cpu, tokens / wall, model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    ap.add_argument("--rows", type=int, default=None, help="training rows (default 270 tiny, 64 smollm2)")
    ap.add_argument("--val", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=None, help="default 3 tiny, 1 smollm2")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None, help="default 1e-3 tiny, 1e-4 smollm2")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default 1 tiny, all cores smollm2)")
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "sftbot-bench-local")
    a = ap.parse_args()
    tiny = a.model == "tiny"
    rows, epochs = a.rows or (270 if tiny else 64), a.epochs or (3 if tiny else 1)
    lr, threads = a.lr or (1e-3 if tiny else 1e-4), a.threads or (1 if tiny else os.cpu_count() or 1)
    torch.set_num_threads(threads)
    resolved = resolve(TINY_MODEL_ID if tiny else DEMO_MODEL_ID, a.root)
    assert resolved is not None
    t0 = time.perf_counter()
    folder = ensure_folder(resolved)
    print(f"model folder ready in {time.perf_counter() - t0:.1f}s: {folder}")

    work = Path(tempfile.mkdtemp(dir=a.root, prefix="run-"))
    lines = demo_path().read_text(encoding="utf-8").splitlines(keepends=True)
    (work / "train.jsonl").write_text("".join(lines[:rows]), encoding="utf-8")
    (work / "val.jsonl").write_text("".join(lines[rows : rows + a.val]), encoding="utf-8")
    request = JobRequest(
        job_id="bench",
        base_model=resolved.ref,
        dataset=str(work / "train.jsonl"),
        eval_dataset=str(work / "val.jsonl"),
        epochs=epochs,
        lora_rank=a.rank,
        learning_rate=lr,
        output_model="bench",
    )
    spec = LocalJobSpec(
        request=request,
        base_model=resolved.ref,
        dataset_path=request.dataset,
        eval_path=request.eval_dataset,
        root=str(a.root),
        device="cpu",
        batch_size=a.batch,
        threads=threads,
    )

    local_s, local_cpu, local_tps, precision = run_local(work / "local", spec)
    tok = AutoTokenizer.from_pretrained(str(folder))
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    train = load_rows(work / "train.jsonl", tok, spec.max_seq_len)
    val = load_rows(work / "val.jsonl", tok, spec.max_seq_len)
    spec = spec.model_copy(update={"precision": precision})
    hf_s, hf_cpu, hf_tps, hf_model = run_hf(folder, train, pad_id, spec, work / "hf")

    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    local_model = PeftModel.from_pretrained(base, str(work / "local" / "adapter"))
    local_val = evaluate(local_model, val, pad_id, "cpu", a.batch)
    hf_val = evaluate(hf_model, val, pad_id, "cpu", a.batch)
    assert local_val is not None and hf_val is not None
    tokens = sum(len(r.input_ids) for r in train) * epochs
    print(
        json.dumps(
            {
                "model": a.model,
                "precision": precision,
                "threads": threads,
                "train_rows": len(train),
                "epochs": epochs,
                "batch": a.batch,
                "rank": a.rank,
                "lr": lr,
                "train_tokens": tokens,
                "local": {
                    "train_s": round(local_s, 2),
                    "tokens_per_s": round(local_tps, 1),
                    "loop_cpu_s": round(local_cpu, 1),
                    "val_loss": round(local_val, 5),
                },
                "transformers_trainer": {
                    "train_s": round(hf_s, 2),
                    "tokens_per_s": round(hf_tps, 1),
                    "loop_cpu_s": round(hf_cpu, 1),
                    "val_loss": round(hf_val, 5),
                },
                "ratio_tokens_per_s": round(local_tps / hf_tps, 3),
                "ratio_tokens_per_cpu_s": round(hf_cpu / local_cpu, 3),
                "val_loss_rel_diff": round(abs(local_val - hf_val) / hf_val, 5),
                "load_average": [round(x, 2) for x in os.getloadavg()],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
