"""The local trainer: one LoRA SFT job in its own process (``python -m pipeline.platforms.local.train <job_dir>``).

A separate process so a job can be cancelled (its process group is killed) and a crash
(OOM, a CUDA error) cannot take the bot down. It reads ``request.json``, writes
``status.json`` atomically after every step, appends ``metrics.jsonl`` and leaves the LoRA
adapter in ``adapter/``. The merged model is not written here: merging happens at deploy
time (in memory, seconds for small models), which saves a full model copy per candidate.

A plain PyTorch loop instead of ``transformers.Trainer``: it measured 1.07-1.3x faster on
this project's CPU box with identical validation loss (bench/bench_local_train.py), partly
because the loss only projects the assistant positions through the LM head.
Determinism: one seed drives the LoRA init and the per-epoch batch order.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pipeline.domain.fsio import write_atomic
from pipeline.domain.platform import JobState, LossPoint
from pipeline.platforms.local.encode import Encoded, collate, load_rows
from pipeline.platforms.local.jobs import LaunchRecord, LocalJobSpec, TrainerStatus, now_iso
from pipeline.platforms.local.loss import evaluate, load_base, max_length, token_loss_sum

if TYPE_CHECKING:
    import torch

# Must be set before torch loads: with the default (spinning) wait policy, OpenMP threads on a
# CPU shared with other work stalled each other and a step took 2-5x longer than on 1 thread.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class MetricRow(LossPoint):
    """One ``metrics.jsonl`` line; ``kind`` tells per-step rows from end-of-epoch rows."""

    kind: Literal["step", "epoch"] = "step"
    elapsed_s: float | None = None  # wall seconds in the training loop so far (no eval, no load)
    cpu_s: float | None = None  # CPU seconds of this process in the loop so far (fair on a shared box)


def autocast_factory(device: str, precision: str) -> tuple[Callable[[], contextlib.AbstractContextManager[Any]], str]:
    """bf16 autocast where it is supported and pays off; otherwise fp32.

    On a CPU "supported" is not enough: without native bf16 instructions (AVX512-BF16/AMX)
    oneDNN emulates it, and on this project's AVX2-only box a bf16 matmul measured 13-30x
    slower than fp32, while CPUs with AMX run it about twice as fast. So "auto" times one
    matmul both ways (on a GPU too, synchronised; there bf16 wins on any card that has it)
    and keeps bf16 only when it wins clearly.
    """
    import torch

    kind = "cuda" if device.startswith("cuda") else "cpu"
    if precision == "fp32" or (kind == "cuda" and not torch.cuda.is_bf16_supported()):
        return contextlib.nullcontext, "fp32"
    try:
        x, w = torch.randn(128, 512, device=device), torch.randn(512, 512, device=device)
        with torch.autocast(kind, dtype=torch.bfloat16):
            probe = x @ w
        if probe.dtype != torch.bfloat16:
            return contextlib.nullcontext, "fp32"
        if precision == "auto":
            if kind == "cuda":
                x, w = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
            fp32, bf16 = _time(lambda: _sync(x @ w)), _time(lambda: _sync(_autocast_matmul(x, w)))
            if bf16 * 1.25 > fp32:
                return contextlib.nullcontext, "fp32"
    except Exception:
        return contextlib.nullcontext, "fp32"
    return (lambda: torch.autocast(kind, dtype=torch.bfloat16)), "bf16"


def _autocast_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    import torch

    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        return x @ w


def _sync(result: torch.Tensor) -> torch.Tensor:
    """Wait for a GPU kernel, so timing it measures the kernel and not its launch."""
    import torch

    if result.is_cuda:
        torch.cuda.synchronize()
    return result


def _time(fn: Callable[[], object], reps: int = 3) -> float:
    fn()  # warm-up: the first call creates the kernels
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def batches(n: int, batch_size: int, seed: int, epoch: int) -> Iterator[list[int]]:
    """A seeded permutation per epoch (the benchmark replays exactly this order)."""
    import torch

    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


def lora_config(rank: int) -> Any:
    from peft import LoraConfig, TaskType

    return LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        bias="none",
        task_type=TaskType.CAUSAL_LM,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )


class Trainer:
    """Runs one job and keeps its status/metrics files current."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.spec = LocalJobSpec.model_validate_json((job_dir / "request.json").read_text(encoding="utf-8"))
        launch = job_dir / "launch.json"
        self.attempt = LaunchRecord.model_validate_json(launch.read_text(encoding="utf-8")).attempts if launch.exists() else 1
        self.status = TrainerStatus(
            state=JobState.RUNNING, attempt=max(self.attempt, 1), pid=os.getpid(), message="loading the base model"
        )
        self.metrics_path = job_dir / "metrics.jsonl"

    def write_status(self, **changes: Any) -> None:
        self.status = self.status.model_copy(update={**changes, "updated_at": now_iso()})
        write_atomic(self.job_dir / "status.json", self.status.model_dump_json(indent=1))

    def run(self) -> None:
        self.write_status()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if self.spec.device.startswith("cuda"):
            # Batch size by memory: start from the configured size and halve it on a CUDA
            # out-of-memory error (accelerate's helper), retraining from a fresh model each time.
            from accelerate.utils import find_executable_batch_size  # type: ignore[import-untyped]

            find_executable_batch_size(self.train_with, starting_batch_size=self.spec.batch_size)()
        else:
            self.train_with(self.spec.batch_size)
        self.write_status(state=JobState.COMPLETED, progress=100.0, message=None)

    def train_with(self, batch_size: int) -> None:
        """Prepare, train and save with ``batch_size`` rows per step."""
        import torch

        self.spec = self.spec.model_copy(update={"batch_size": batch_size})
        torch.manual_seed(self.spec.seed)
        model, pad_id, train, val = self.prepare()
        autocast, precision = autocast_factory(self.spec.device, self.spec.precision)
        self.write_status(precision=precision, message=None)
        self.train(model, pad_id, train, val, autocast)
        self.save_adapter(model)

    def prepare(self) -> tuple[Any, int, list[Encoded], list[Encoded]]:
        """Base model (LoRA-wrapped), pad id, and the tokenised train/validation rows."""
        import torch
        from peft import get_peft_model

        spec = self.spec
        model, tokenizer = load_base(spec.base_model, Path(spec.root), spec.device)
        if spec.threads or (spec.device == "cpu" and sum(p.numel() for p in model.parameters()) < 20_000_000):
            # Tiny models gain nothing from more threads (measured 6x slower with 2 than 1).
            torch.set_num_threads(spec.threads or 1)
        max_len, pad_id = max_length(model, tokenizer, spec.max_seq_len)
        train = load_rows(Path(spec.dataset_path), tokenizer, max_len)
        val = load_rows(Path(spec.eval_path), tokenizer, max_len) if spec.eval_path else []
        if not spec.eval_path and len(train) >= 10:
            # No held-out set given: keep a seeded 10% aside so validation loss still exists.
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(spec.seed)).tolist()
            cut = max(1, min(100, len(train) // 10))
            val, train = [train[i] for i in order[:cut]], [train[i] for i in order[cut:]]
        if not train:
            raise ValueError("the training file has no row with an assistant reply")
        torch.manual_seed(spec.seed)  # the LoRA init depends only on the seed (the benchmark relies on it)
        model = get_peft_model(model, lora_config(spec.request.lora_rank))
        return model, int(pad_id), train, val

    def train(
        self,
        model: Any,
        pad_id: int,
        train: list[Encoded],
        val: list[Encoded],
        autocast: Callable[[], contextlib.AbstractContextManager[Any]],
    ) -> tuple[int, float]:
        """The loop; returns (tokens trained on, wall seconds spent in training steps)."""
        import torch

        spec, req = self.spec, self.spec.request
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=req.learning_rate, weight_decay=0.0)
        steps_per_epoch = math.ceil(len(train) / spec.batch_size)
        total = steps_per_epoch * req.epochs
        self.write_status(total_steps=total)
        self.metrics_path.write_text("", encoding="utf-8")  # a restarted attempt starts a fresh history
        step, tokens, wall, cpu = 0, 0, 0.0, 0.0
        for epoch in range(req.epochs):
            loss_sum, loss_n = 0.0, 0
            for idx in batches(len(train), spec.batch_size, spec.seed, epoch):
                t0, c0 = time.monotonic(), time.process_time()
                ids, attn, labels = collate([train[i] for i in idx], pad_id, spec.device)
                with autocast():
                    loss, n = token_loss_sum(model, ids, attn, labels)
                (loss / max(n, 1)).backward()  # type: ignore[no-untyped-call]  # torch leaves it untyped
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                wall, cpu = wall + time.monotonic() - t0, cpu + time.process_time() - c0
                step, tokens = step + 1, tokens + int(attn.sum())
                summed = loss.detach().item()
                if not math.isfinite(summed):
                    raise FloatingPointError(f"training loss became {summed} at step {step}")
                loss_sum, loss_n = loss_sum + summed, loss_n + n
                at = round(step / steps_per_epoch, 4)
                self.append(
                    MetricRow(step=step, epoch=at, train_loss=summed / max(n, 1), elapsed_s=round(wall, 3), cpu_s=round(cpu, 3))
                )
                self.write_status(
                    step=step,
                    epoch=at,
                    train_loss=summed / max(n, 1),
                    progress=round(99.0 * step / total, 2),
                    tokens_per_second=tokens / wall,
                )
            val_loss = evaluate(model, val, pad_id, spec.device, spec.batch_size)
            epoch_loss = loss_sum / max(loss_n, 1)
            self.append(
                MetricRow(
                    kind="epoch",
                    step=step,
                    epoch=float(epoch + 1),
                    train_loss=epoch_loss,
                    val_loss=val_loss,
                    elapsed_s=round(wall, 3),
                    cpu_s=round(cpu, 3),
                )
            )
            self.write_status(val_loss=val_loss, train_loss=epoch_loss)
        return tokens, wall

    def append(self, row: MetricRow) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(row.model_dump_json(exclude_none=True) + "\n")

    def save_adapter(self, model: Any) -> None:
        """Save into a temp folder and rename, so ``adapter/`` is either complete or absent."""
        final, tmp = self.job_dir / "adapter", self.job_dir / ".adapter.tmp"
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pipeline.platforms.local.train <job_dir>", file=sys.stderr)
        return 2
    trainer = Trainer(Path(argv[0]))
    try:
        trainer.run()
    except BaseException as exc:
        traceback.print_exc()
        trainer.write_status(state=JobState.FAILED, message=f"{type(exc).__name__}: {exc}"[:500])
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
