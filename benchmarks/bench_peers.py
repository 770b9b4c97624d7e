"""trainforge against its peers: a hand-written PyTorch loop, Hugging Face ``transformers.Trainer`` and Lightning.

Run (from the repository root, with the ``bench`` extra installed: ``pip install -e ".[bench]"``)::

    python benchmarks/bench_peers.py                 # full run, ~16 minutes on 2 cores; writes
                                                     # benchmarks/results/peers.md and peers.png
    python benchmarks/bench_peers.py --quick --out-dir /tmp/peers   # tiny sizes, 1 repeat (checks the script)

Every engine trains the SAME model (trainforge's GPT, built from the same seed) on the SAME batches (the corpus
blocks in one seeded order, taken sequentially by every engine) for the SAME number of optimizer steps, with the
same optimizer (AdamW, lr 3e-4, weight decay 0.1 on >= 2-D parameters only, ``foreach=True``: the raw loop, the HF
Trainer and Lightning get the identical optimizer and ``LambdaLR`` (linear warm-up + cosine) objects; trainforge
builds the same ones from its config), gradient clipping at 1.0, fp32, and nothing else: no checkpoints, no
evaluation, no logging backends, no progress bars. trainforge keeps its always-on console/CSV lines (every 10
steps, to a buffer) and its NaN guard; HF keeps its default per-step NaN filter of the loss. Each engine takes
data in its own idiomatic form: the raw loop slices a tensor, trainforge gets the tensor, HF a map-style dataset of
``{"input_ids", "labels"}`` dicts (``train_sampling_strategy="sequential"``), Lightning a ``DataLoader`` over the
rows (``shuffle=False``).

Cases (one process, engines interleaved, the order reversed on every other repeat, medians and min-max):

* (a) ``big``: the GPT ``bench`` preset, batch 16 x 128 tokens (~200 ms steps here);
* (b) ``tiny``: ``bench_tiny``, batch 8 x 32 (a few ms per step: per-step overhead shows);
* (c) ``tiny+compile``: (b) with ``torch.compile`` (raw: ``torch.compile(model)``, trainforge:
  ``compile_mode="default"``, HF: ``torch_compile=True``, Lightning: ``torch.compile(lightning_module)``);
  compilation falls in the warm-up steps, which are not timed; dynamo is reset before every run;
* (d) ``eval``: forward-only over a validation set (the ``bench`` model): raw ``no_grad`` loop, trainforge's
  end-of-epoch validation (timed from the last step's end to ``EVAL_END``), ``Trainer.evaluate()``,
  ``Trainer.validate()``;
* (e) ``startup``: wall time from launching ``python -c ...`` to the end of the first optimizer step (a tiny model
  defined inline, so only the engine's own imports and setup differ), and to the end of its imports (``import
  torch`` + the engine's: the raw child imports torch only, so the difference is the engine's import time over
  torch's); fresh interpreters with a bytecode cache, as after ``pip install``;
* (f) ``checkpoint``: saving/loading the ``bench`` model and its AdamW state: raw ``torch.save`` (and + ``fsync``)
  and ``torch.load`` vs trainforge's ``CheckpointManager.save``/``safe_load`` on the same payload. The manager writes
  the bytes to a temporary file on the calling thread and commits it (fsync, rename, fsync of the directory) on a
  background thread: timed once as what the training thread waits for (the commit is then awaited, untimed, so it
  never overlaps the next measurement), once until durable (``save`` + ``wait()``). And the full epoch checkpoint
  written by ``Trainer`` (payload with RNG, config, history), until durable: timed from ``EPOCH_END`` to ``FIT_END``
  (one step, one epoch, no best.pt: only the checkpoint and the wait for its commit lie between them).
* (g) ``fixed``: the fixed cost of one training call: the whole call (model build, engine setup, 2 optimizer steps of
  ``bench_tiny``, teardown) minus the raw loop's whole call in the same repeat. trainforge runs with its default
  settings (run directory, metrics files, run database, end-of-run plots on; the plots are drawn by a background
  thread, which the script waits for outside the timed region so it never overlaps the next measurement).

Training tokens/s = target tokens (``batch * (seq - 1)`` per step) of the timed steps / the wall time between the
end of the last warm-up step and the end of the last step, both taken by each engine's own step-end hook
(trainforge ``on_step_end``, HF ``TrainerCallback.on_step_end``, Lightning ``Callback.on_train_batch_end``, the raw
loop after ``zero_grad``). The whole call (model build, engine setup, warm-up, teardown) is reported too.

The script re-runs itself with glibc's heap thresholds fixed for every engine (``machine_info.STEADY_MALLOC``, which
says why; ``--default-malloc`` keeps glibc's defaults).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from machine_info import (  # benchmarks/ is the script's directory: on sys.path
    DEFAULT_MALLOC_FLAG,
    cpu_name,
    describe,
    load_avg,
    malloc_note,
    rerun_with_steady_malloc,
)
from reference import lr_factor  # benchmarks/ is the script's directory: on sys.path
from torch import Tensor, nn

import trainforge
from trainforge import TaskSpec, Trainer, TrainingConfig
from trainforge.checkpoint import CheckpointManager
from trainforge.checkpoint.io import safe_load
from trainforge.data.corpus import default_lm_dataset
from trainforge.models.gpt import GPT, MODEL_PRESETS, GPTConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT_DIR = ROOT / "benchmarks" / "results"

SEED = 1234
LEARNING_RATE = 3e-4
WEIGHT_DECAY = 0.1
WARMUP_RATIO = 0.1
MAX_GRAD_NORM = 1.0
ENGINES = ("raw", "trainforge", "hf", "lightning")
LABELS = {"raw": "raw PyTorch loop", "trainforge": "trainforge", "hf": "transformers.Trainer",
          "lightning": "Lightning Trainer"}
COLORS = {"raw": "#7f7f7f", "trainforge": "#1f77b4", "hf": "#ff7f0e", "lightning": "#9467bd"}
TARGETS = {"big": 0.99, "tiny": 0.97}  # trainforge / raw tokens/s
IMPORT_TARGET_S = 0.3  # trainforge import over torch
SAVE_TARGET = 1.1  # trainforge save time / raw torch.save
FIXED_TARGET_S = 0.1  # trainforge whole call over the raw loop's, 2 tiny steps


@dataclass(frozen=True)
class TrainCase:
    name: str
    title: str
    preset: str
    batch_size: int
    seq_len: int
    steps: int  # timed steps
    warmup: int  # untimed steps before them
    compile: bool = False
    # Repeats = --repeats x this. (a) and (b) get more pairs: their targets (0.99x, 0.97x raw) lie within this VM's
    # pair-to-pair spread (single pairs differ by ±3% in (a), and two identical raw loops by up to ±5% in (b)); an
    # even count also puts each engine first in a pair as often as second.
    repeat_scale: int = 1

    @property
    def total_steps(self) -> int:
        return self.warmup + self.steps

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * (self.seq_len - 1)


@dataclass(frozen=True)
class Plan:
    train: tuple[TrainCase, ...]
    eval_preset: str
    eval_batch: int
    eval_seq: int
    eval_rows: int
    startup_repeats: int
    ckpt_preset: str
    ckpt_repeats: int
    fixed: TrainCase  # (g): only the whole call counts


FULL = Plan(
    train=(
        TrainCase("big", "(a) small GPT", "bench", batch_size=16, seq_len=128, steps=20, warmup=3, repeat_scale=2),
        TrainCase("tiny", "(b) tiny model", "bench_tiny", batch_size=8, seq_len=32, steps=1000, warmup=5,
                  repeat_scale=2),
        TrainCase("tiny+compile", "(c) tiny model, torch.compile", "bench_tiny", batch_size=8, seq_len=32,
                  steps=1000, warmup=8, compile=True),
    ),
    eval_preset="bench", eval_batch=16, eval_seq=128, eval_rows=320,
    startup_repeats=7, ckpt_preset="bench", ckpt_repeats=15,
    fixed=TrainCase("fixed", "(g) fixed cost", "bench_tiny", batch_size=8, seq_len=32, steps=1, warmup=1,
                    repeat_scale=2),
)
QUICK = Plan(
    train=(
        TrainCase("big", "(a) small GPT", "bench_tiny", batch_size=4, seq_len=16, steps=6, warmup=2),
        TrainCase("tiny", "(b) tiny model", "bench_tiny", batch_size=4, seq_len=16, steps=10, warmup=2),
        TrainCase("tiny+compile", "(c) tiny model, torch.compile", "bench_tiny", batch_size=4, seq_len=16,
                  steps=4, warmup=3, compile=True),
    ),
    eval_preset="bench_tiny", eval_batch=8, eval_seq=16, eval_rows=32,
    startup_repeats=1, ckpt_preset="bench_tiny", ckpt_repeats=1,
    fixed=TrainCase("fixed", "(g) fixed cost", "bench_tiny", batch_size=4, seq_len=16, steps=1, warmup=1),
)


# ------------------------------------------------------------------------------------------------ shared parts
class StepClock:
    """A timestamp at the end of every optimizer step; the timed window starts at the end of warm-up."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.stamps: list[float] = []

    def tick(self) -> None:
        self.stamps.append(time.perf_counter())

    def window(self, total: int) -> float:
        if len(self.stamps) != total:
            raise RuntimeError(f"expected {total} step ends, saw {len(self.stamps)}")
        return self.stamps[-1] - self.stamps[self.warmup - 1]


@dataclass
class RunResult:
    seconds: float  # the timed window
    whole_s: float  # the whole call, model build included
    final_state: dict[str, Tensor] = field(repr=False, default_factory=dict)


def new_gpt(preset: str, seq_len: int) -> GPT:
    torch.manual_seed(SEED)
    return GPT(GPTConfig.from_dict({**MODEL_PRESETS[preset], "max_seq_len": seq_len}))


def optimizer_for(
    model: nn.Module, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The optimizer and schedule every peer gets: exactly what trainforge builds from its config on CPU."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LEARNING_RATE, betas=(0.9, 0.999), eps=1e-8, foreach=True,
    )
    warmup = int(WARMUP_RATIO * total_steps)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, warmup))


def lm_loss(logits: Tensor, ids: Tensor) -> Tensor:
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    return {k.replace("_orig_mod.", "").removeprefix("model."): v.detach().clone()
            for k, v in model.state_dict().items()}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Engines' console output (banners, warnings, trainforge's log lines) goes to a buffer / devnull."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(devnull), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def fresh_compile() -> None:
    torch._dynamo.reset()  # every compiled run compiles (inductor's on-disk cache may still serve the kernels)


class RowsDataset(torch.utils.data.Dataset[Any]):
    """Rows of a token tensor, as a map-style dataset (``as_dict`` for HF: input_ids and labels)."""

    def __init__(self, rows: Tensor, as_dict: bool = False) -> None:
        self.rows, self.as_dict = rows, as_dict

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Any:
        row = self.rows[i]
        return {"input_ids": row, "labels": row} if self.as_dict else row


# ------------------------------------------------------------------------------------------------ (a)-(c) train
def finish_background_plots(results: dict[str, Any]) -> None:
    """Wait, untimed, for the plots ``train()`` draws on a background thread after it returns.

    Every trainforge case calls this before it returns: the thread must finish before its run directory is
    deleted, and it must not run on into the next measurement. On 2 cores a ~0.4 s matplotlib thread left running
    slowed whatever came next (the next engine's run, or the next checkpoint save: raw ``torch.save`` took 140 ms
    instead of 23 ms when it came first after a ``Trainer`` case) and made the comparison say nothing.
    """
    _ = list(results.get("plot_paths") or [])


def train_raw(case: TrainCase, data: Tensor) -> RunResult:
    called = time.perf_counter()
    model = new_gpt(case.preset, case.seq_len)
    model.train()
    optimizer, scheduler = optimizer_for(model, case.total_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    forward: Callable[[Tensor], Tensor] = model
    if case.compile:
        fresh_compile()
        forward = torch.compile(model)  # type: ignore[assignment]
    clock = StepClock(case.warmup)
    b = case.batch_size
    for step in range(case.total_steps):
        x = data[step * b:(step + 1) * b]
        loss = lm_loss(forward(x), x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM, foreach=True)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        clock.tick()
    whole = time.perf_counter() - called
    return RunResult(clock.window(case.total_steps), whole, snapshot(model))


class _ClockCallback:
    def __init__(self, clock: StepClock) -> None:
        self.clock = clock

    def on_step_end(self, state: Any) -> None:
        self.clock.tick()


def train_trainforge(case: TrainCase, data: Tensor) -> RunResult:
    """trainforge as a user runs it, progress bar off; its run directory and run database (``track_runs``, kept
    beside the run directory) live in a temporary directory."""
    called = time.perf_counter()
    model = new_gpt(case.preset, case.seq_len)
    clock = StepClock(case.warmup)
    if case.compile:
        fresh_compile()
    with tempfile.TemporaryDirectory(prefix="tf-peers-") as tmp, quiet():
        cfg = TrainingConfig(
            epochs=1, max_steps=case.total_steps, batch_size=case.batch_size, learning_rate=LEARNING_RATE,
            weight_decay=WEIGHT_DECAY, warmup_ratio=WARMUP_RATIO, lr_schedule="cosine", max_grad_norm=MAX_GRAD_NORM,
            seed=SEED, shuffle=False, output_dir=str(Path(tmp) / "run"), progress_bar=False, precision="fp32",
            device="cpu", compile_mode="default" if case.compile else None,
        )
        task = TaskSpec.language_modeling(name="bench", vocab_size=model.config.vocab_size, max_seq_len=case.seq_len)
        results = Trainer(model, model.config, cfg, task, callbacks=[_ClockCallback(clock)]).train(data)
        whole = time.perf_counter() - called  # train() has returned: what the caller waits for
        finish_background_plots(results)
    if results["global_step"] != case.total_steps:
        raise RuntimeError(f"trainforge ran {results['global_step']} steps, expected {case.total_steps}")
    return RunResult(clock.window(case.total_steps), whole, dict(results["final_model_state"]))


class HFLanguageModel(nn.Module):
    """What transformers.Trainer needs from a custom model: keyword inputs, a ``loss`` in the output."""

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        logits = self.model(input_ids)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = lm_loss(logits, labels)
        return out


def _hf_args(tmp: str, **extra: Any) -> Any:
    import dataclasses

    from transformers import TrainingArguments

    if "train_sampling_strategy" in {f.name for f in dataclasses.fields(TrainingArguments)}:
        extra["train_sampling_strategy"] = "sequential"  # older versions: _HFSequential below
    return TrainingArguments(
        output_dir=tmp, report_to="none", save_strategy="no", eval_strategy="no", logging_strategy="no",
        disable_tqdm=True, dataloader_num_workers=0, dataloader_pin_memory=False, use_cpu=True, seed=SEED,
        remove_unused_columns=False, max_grad_norm=MAX_GRAD_NORM, **extra,
    )


def _hf_trainer(**kwargs: Any) -> Any:
    """``transformers.Trainer`` reading the training rows in order (as every engine here does)."""
    from transformers import Trainer as HFTrainer

    class SequentialHFTrainer(HFTrainer):  # type: ignore[misc]
        def _get_train_sampler(self, *args: Any, **kw: Any) -> Any:
            if getattr(self.args, "train_sampling_strategy", None) == "sequential":
                return super()._get_train_sampler(*args, **kw)
            return torch.utils.data.SequentialSampler(self.train_dataset)  # type: ignore[arg-type]

    return SequentialHFTrainer(**kwargs)


def train_hf(case: TrainCase, data: Tensor) -> RunResult:
    from transformers import TrainerCallback

    class Clock(TrainerCallback):  # type: ignore[misc]
        def __init__(self, clock: StepClock) -> None:
            self.clock = clock

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.clock.tick()

    called = time.perf_counter()
    model = HFLanguageModel(new_gpt(case.preset, case.seq_len))
    optimizer, scheduler = optimizer_for(model, case.total_steps)
    clock = StepClock(case.warmup)
    if case.compile:
        fresh_compile()
    with tempfile.TemporaryDirectory(prefix="hf-peers-") as tmp, quiet():
        args = _hf_args(tmp, max_steps=case.total_steps, per_device_train_batch_size=case.batch_size,
                        torch_compile=case.compile)
        trainer = _hf_trainer(model=model, args=args, train_dataset=RowsDataset(data, as_dict=True),
                              optimizers=(optimizer, scheduler), callbacks=[Clock(clock)])
        out = trainer.train()
    whole = time.perf_counter() - called
    if out.global_step != case.total_steps:
        raise RuntimeError(f"HF ran {out.global_step} steps, expected {case.total_steps}")
    return RunResult(clock.window(case.total_steps), whole, snapshot(model.model))


def _lightning_module(model: GPT, total_steps: int) -> Any:
    import lightning as L

    class LitLM(L.LightningModule):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: Tensor) -> Tensor:
            return self.model(ids)

        def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
            return lm_loss(self(batch), batch)

        def validation_step(self, batch: Tensor, batch_idx: int) -> Tensor:
            return lm_loss(self(batch), batch)

        def configure_optimizers(self) -> Any:
            optimizer, scheduler = optimizer_for(self.model, total_steps)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    return LitLM()


def _lightning_trainer(**extra: Any) -> Any:
    import lightning as L

    return L.Trainer(
        accelerator="cpu", devices=1, precision="32-true", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **extra,
    )


def train_lightning(case: TrainCase, data: Tensor) -> RunResult:
    import lightning as L

    class Clock(L.Callback):  # type: ignore[misc]
        def __init__(self, clock: StepClock) -> None:
            self.clock = clock

        def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
            self.clock.tick()

    called = time.perf_counter()
    gpt = new_gpt(case.preset, case.seq_len)
    module = _lightning_module(gpt, case.total_steps)
    clock = StepClock(case.warmup)
    if case.compile:
        fresh_compile()
        module = torch.compile(module)
    loader = torch.utils.data.DataLoader(RowsDataset(data), batch_size=case.batch_size, shuffle=False)
    with quiet():
        trainer = _lightning_trainer(max_steps=case.total_steps, max_epochs=1, gradient_clip_val=MAX_GRAD_NORM,
                                     gradient_clip_algorithm="norm", callbacks=[Clock(clock)])
        trainer.fit(module, train_dataloaders=loader)
    whole = time.perf_counter() - called
    if trainer.global_step != case.total_steps:
        raise RuntimeError(f"Lightning ran {trainer.global_step} steps, expected {case.total_steps}")
    return RunResult(clock.window(case.total_steps), whole, snapshot(gpt))


TRAIN: dict[str, Callable[[TrainCase, Tensor], RunResult]] = {
    "raw": train_raw, "trainforge": train_trainforge, "hf": train_hf, "lightning": train_lightning,
}


def interleaved(repeats: int) -> Iterator[tuple[int, str]]:
    for r in range(repeats):
        for name in ENGINES if r % 2 == 0 else ENGINES[::-1]:
            gc.collect()
            yield r, name


def max_param_diff(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    common = [k for k in a if k in b]
    if not common:
        return float("nan")
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in common)


def bench_train(case: TrainCase, train_blocks: Tensor, repeats: int, threads: int) -> dict[str, Any]:
    need = case.total_steps * case.batch_size
    if len(train_blocks) < need:
        raise RuntimeError(f"{case.name}: the corpus gives {len(train_blocks)} blocks, {need} needed")
    g = torch.Generator().manual_seed(SEED)
    data = train_blocks[torch.randperm(len(train_blocks), generator=g)[:need]].contiguous()
    runs: dict[str, list[RunResult]] = {e: [] for e in ENGINES}
    for r, name in interleaved(repeats * case.repeat_scale):
        res = TRAIN[name](case, data)
        if torch.get_num_threads() != threads:  # an engine changed the thread count: put it back, say so
            print(f"  note: {name} left torch at {torch.get_num_threads()} threads; reset to {threads}")
            torch.set_num_threads(threads)
        runs[name].append(res)
        print(f"  {case.name} #{r + 1} {LABELS[name]:22s} {case.tokens_per_step * case.steps / res.seconds:>10,.0f} "
              f"tok/s ({res.seconds:.2f} s timed, {res.whole_s:.2f} s whole)", flush=True)
    tokens = case.tokens_per_step * case.steps
    return {
        "case": case,
        "repeats": repeats * case.repeat_scale,
        "rates": {e: [tokens / r.seconds for r in rs] for e, rs in runs.items()},
        "step_ms": {e: [r.seconds / case.steps * 1e3 for r in rs] for e, rs in runs.items()},
        "whole": {e: [r.whole_s for r in rs] for e, rs in runs.items()},
        "diff": {e: max_param_diff(runs["raw"][0].final_state, rs[0].final_state) for e, rs in runs.items()},
    }


# ------------------------------------------------------------------------------------------------ (d) eval
def eval_raw(model: GPT, val: Tensor, batch: int, train_row: Tensor) -> float:
    started = time.perf_counter()
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, len(val), batch):
            x = val[i:i + batch]
            logits = model(x)
            total += F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1),
                                     reduction="sum")
    float(total)
    return time.perf_counter() - started


def eval_trainforge(model: GPT, val: Tensor, batch: int, train_rows: Tensor) -> float:
    stamps: dict[str, float] = {}

    class Stamp:
        def on_step_end(self, state: Any) -> None:
            stamps["step"] = time.perf_counter()

        def on_eval_end(self, state: Any) -> None:
            stamps["eval"] = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="tf-peers-") as tmp, quiet():
        cfg = TrainingConfig(epochs=1, max_steps=1, batch_size=len(train_rows), eval_batch_size=batch,
                             learning_rate=LEARNING_RATE, seed=SEED, shuffle=False, output_dir=str(Path(tmp) / "run"),
                             progress_bar=False, precision="fp32", device="cpu")
        task = TaskSpec.language_modeling(name="bench", vocab_size=model.config.vocab_size,
                                          max_seq_len=val.shape[1])
        results = Trainer(model, model.config, cfg, task, callbacks=[Stamp()]).train(train_rows, val)
        finish_background_plots(results)
    return stamps["eval"] - stamps["step"]


def eval_hf(model: GPT, val: Tensor, batch: int, train_rows: Tensor) -> float:
    with tempfile.TemporaryDirectory(prefix="hf-peers-") as tmp, quiet():
        trainer = _hf_trainer(model=HFLanguageModel(model), args=_hf_args(tmp, per_device_eval_batch_size=batch),
                              eval_dataset=RowsDataset(val, as_dict=True))
        started = time.perf_counter()
        trainer.evaluate()
        return time.perf_counter() - started


def eval_lightning(model: GPT, val: Tensor, batch: int, train_rows: Tensor) -> float:
    module = _lightning_module(model, 1)
    loader = torch.utils.data.DataLoader(RowsDataset(val), batch_size=batch, shuffle=False)
    with quiet():
        trainer = _lightning_trainer()
        started = time.perf_counter()
        trainer.validate(module, dataloaders=loader, verbose=False)
        return time.perf_counter() - started


EVAL: dict[str, Callable[[GPT, Tensor, int, Tensor], float]] = {
    "raw": eval_raw, "trainforge": eval_trainforge, "hf": eval_hf, "lightning": eval_lightning,
}


def bench_eval(plan: Plan, repeats: int) -> dict[str, Any]:
    train_blocks, val_blocks = default_lm_dataset(block_size=plan.eval_seq, val_fraction=0.1)
    val = val_blocks[:plan.eval_rows].contiguous()
    if len(val) < plan.eval_rows:
        raise RuntimeError(f"eval: {len(val)} validation blocks, {plan.eval_rows} needed")
    tokens = len(val) * (plan.eval_seq - 1)
    seconds: dict[str, list[float]] = {e: [] for e in ENGINES}
    for r, name in interleaved(repeats):
        model = new_gpt(plan.eval_preset, plan.eval_seq)
        s = EVAL[name](model, val, plan.eval_batch, train_blocks[:plan.eval_batch])
        seconds[name].append(s)
        print(f"  eval #{r + 1} {LABELS[name]:22s} {tokens / s:>10,.0f} tok/s ({s:.2f} s)", flush=True)
    return {"rates": {e: [tokens / s for s in ss] for e, ss in seconds.items()}, "seconds": seconds,
            "rows": len(val), "tokens": tokens}


# ------------------------------------------------------------------------------------------------ (e) startup
# Each child is what a user runs: torch and its engine's imports (then it prints the wall clock), a tiny model
# defined inline (so no engine imports another's code), 512 random rows of 32 tokens, one optimizer step (then it
# prints the wall clock again). The raw child imports torch only: the difference of the first stamps is the engine's
# import time over torch's.
_CHILD_IMPORTS = {
    "raw": "",
    "trainforge": "from trainforge import TaskSpec, Trainer, TrainingConfig\n",
    "hf": "from transformers import Trainer, TrainerCallback, TrainingArguments\n",
    "lightning": "import lightning as L\n",
}

_CHILD_PRELUDE = """
print("IMPORTED", time.time(), flush=True)
from torch import nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(256, 64)
        self.fc = nn.Linear(64, 256)

    def forward(self, input_ids):
        return self.fc(self.emb(input_ids))

def lm_loss(logits, ids):
    return F.cross_entropy(logits[:, :-1].reshape(-1, 256), ids[:, 1:].reshape(-1))

torch.manual_seed(0)
data = torch.randint(0, 256, (512, 32))
tmp = sys.argv[1]
def first_step():
    print("FIRST_STEP", time.time(), flush=True)
"""

_CHILD_BODY = {
    "raw": """
model = Net()
opt = torch.optim.AdamW(model.parameters(), lr=3e-4, foreach=True)
x = data[:8]
loss = lm_loss(model(x), x)
loss.backward()
torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
opt.step()
opt.zero_grad(set_to_none=True)
first_step()
""",
    "trainforge": """
class Stamp:
    def on_step_end(self, state):
        first_step()

cfg = TrainingConfig(epochs=1, max_steps=1, batch_size=8, progress_bar=False, output_dir=tmp + "/run", device="cpu")
task = TaskSpec.language_modeling(name="lm", vocab_size=256, max_seq_len=32)
Trainer(Net(), None, cfg, task, callbacks=[Stamp()]).train(data)
""",
    "hf": """
class HFNet(Net):
    def forward(self, input_ids, labels=None):
        logits = super().forward(input_ids)
        return {"logits": logits, "loss": lm_loss(logits, labels)}

class Stamp(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        first_step()

class Rows(torch.utils.data.Dataset):
    def __len__(self):
        return len(data)
    def __getitem__(self, i):
        return {"input_ids": data[i], "labels": data[i]}

args = TrainingArguments(output_dir=tmp, max_steps=1, per_device_train_batch_size=8, report_to="none",
                         save_strategy="no", eval_strategy="no", logging_strategy="no", disable_tqdm=True,
                         use_cpu=True, dataloader_pin_memory=False, remove_unused_columns=False)
Trainer(model=HFNet(), args=args, train_dataset=Rows(), callbacks=[Stamp()]).train()
""",
    "lightning": """
class Lit(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = Net()
    def training_step(self, batch, batch_idx):
        return lm_loss(self.net(batch), batch)
    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-4, foreach=True)

class Stamp(L.Callback):
    def on_train_batch_end(self, *args, **kwargs):
        first_step()

trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False, callbacks=[Stamp()])
trainer.fit(Lit(), torch.utils.data.DataLoader(data, batch_size=8))
""",
}

CHILD_CODE = {e: "import sys, time\nimport torch\n" + _CHILD_IMPORTS[e] + _CHILD_PRELUDE + _CHILD_BODY[e]
              for e in ENGINES}


def python_env() -> dict[str, str]:
    """Fresh interpreters with a bytecode cache (as after ``pip install``), written outside the repository."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "trainforge-bench-pycache")
    # The children run in a temporary directory: they import the trainforge this process imported (installed or
    # from a relative PYTHONPATH such as `PYTHONPATH=src`).
    source = str(Path(trainforge.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([source, *(x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x)])
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def run_child(code: str, env: dict[str, str]) -> tuple[float, float, float]:
    """Seconds from launch to: the engine imported, the end of the first optimizer step, the process's exit."""
    with tempfile.TemporaryDirectory(prefix="peers-child-") as tmp:
        launched = time.time()
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code, tmp], capture_output=True, text=True, cwd=tmp, env=env)
        whole = time.perf_counter() - started
    stamps = {line.split()[0]: float(line.split()[1]) for line in proc.stdout.splitlines()
              if line.startswith(("IMPORTED ", "FIRST_STEP "))}
    if proc.returncode != 0 or len(stamps) != 2:
        raise RuntimeError(f"child failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return stamps["IMPORTED"] - launched, stamps["FIRST_STEP"] - launched, whole


def bench_startup(plan: Plan, warm: bool) -> dict[str, Any]:
    env = python_env()
    for name in ENGINES if warm else ():  # warm the page cache and write the bytecode cache
        run_child(CHILD_CODE[name], env)
    imports: dict[str, list[float]] = {e: [] for e in ENGINES}
    first: dict[str, list[float]] = {e: [] for e in ENGINES}
    whole: dict[str, list[float]] = {e: [] for e in ENGINES}
    for r, name in interleaved(plan.startup_repeats):
        i, f, w = run_child(CHILD_CODE[name], env)
        imports[name].append(i)
        first[name].append(f)
        whole[name].append(w)
        print(f"  startup #{r + 1} {LABELS[name]:22s} imported after {i:.2f} s, first step after {f:.2f} s "
              f"(process {w:.2f} s)", flush=True)
    return {"first": first, "whole": whole, "imports": imports}


# ------------------------------------------------------------------------------------------------ (f) checkpoint
def _trained_payload(preset: str) -> tuple[GPT, torch.optim.Optimizer, dict[str, Any]]:
    model = new_gpt(preset, MODEL_PRESETS[preset]["max_seq_len"])
    optimizer, _ = optimizer_for(model, 10)
    x = torch.randint(0, model.config.vocab_size, (2, 16))
    lm_loss(model(x), x).backward()
    optimizer.step()  # AdamW state exists (exp_avg, exp_avg_sq): the checkpoint is ~3x the weights
    payload = {"format_version": 1, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
    return model, optimizer, payload


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _raw_save_fsync(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def _trainer_checkpoint(model: GPT, rows: Tensor, directory: Path) -> float:
    """The epoch checkpoint ``Trainer`` writes (payload built + save + commit), until durable: EPOCH_END -> FIT_END.

    Not to CHECKPOINT_SAVED: a callback with ``on_checkpoint_saved`` makes every save wait for its commit. FIT_END
    comes after the wait for the last commit, so this is the durable time, not the time the training thread blocks.
    """
    stamps: dict[str, float] = {}

    class Stamp:
        def on_epoch_end(self, state: Any) -> None:
            stamps["epoch"] = time.perf_counter()

        def on_fit_end(self, state: Any) -> None:
            stamps["end"] = time.perf_counter()

    with quiet():
        cfg = TrainingConfig(epochs=1, max_steps=1, batch_size=len(rows), seed=SEED, shuffle=False,
                             output_dir=str(directory / "run"), checkpoint_dir=str(directory / "ckpt"),
                             save_best=False, progress_bar=False, precision="fp32", device="cpu")
        task = TaskSpec.language_modeling(name="bench", vocab_size=model.config.vocab_size, max_seq_len=rows.shape[1])
        finish_background_plots(Trainer(model, model.config, cfg, task, callbacks=[Stamp()]).train(rows))
    return stamps["end"] - stamps["epoch"]


def _blocked_then_committed(manager: CheckpointManager, payload: dict[str, Any], path: Path) -> float:
    """Seconds the caller of ``save`` is blocked; the commit is then awaited untimed (it must not overlap the next
    measurement's disk writes)."""
    blocked = _timed(lambda: manager.save(payload, path))
    manager.wait()
    return blocked


def _until_durable(manager: CheckpointManager, payload: dict[str, Any], path: Path) -> None:
    manager.save(payload, path)
    manager.wait()


def bench_checkpoint(plan: Plan) -> dict[str, Any]:
    model, _, payload = _trained_payload(plan.ckpt_preset)
    seq = MODEL_PRESETS[plan.ckpt_preset]["max_seq_len"]
    rows = torch.randint(0, model.config.vocab_size, (4, seq), generator=torch.Generator().manual_seed(SEED))
    times: dict[str, list[float]] = {k: [] for k in ("raw_save", "raw_save_fsync", "tf_save", "tf_durable",
                                                      "trainer_save", "raw_load", "tf_load")}
    with tempfile.TemporaryDirectory(prefix="peers-ckpt-") as tmp:
        d = Path(tmp)
        raw_path, tf_path = d / "raw.pt", d / "tf" / "tf.pt"
        manager = CheckpointManager(tf_path.parent)
        torch.save(payload, raw_path)  # warm-up: allocator, page cache, file creation paths, the commit thread
        _until_durable(manager, payload, tf_path)
        size_mb = raw_path.stat().st_size / 1e6
        for r in range(plan.ckpt_repeats):
            order = ["raw_save", "raw_save_fsync", "tf_save", "tf_durable"]
            for key in order if r % 2 == 0 else order[::-1]:
                gc.collect()
                # No write-back of earlier bytes (other cases' files, this loop's unsynced raw saves) may run
                # under a timed save: every save starts with nothing dirty in the page cache.
                os.sync()
                if key in ("raw_save", "raw_save_fsync"):
                    # A new file, as trainforge's temporary file is: overwriting would add truncating 22 MB
                    raw_path.unlink(missing_ok=True)
                if key == "raw_save":
                    times[key].append(_timed(lambda: torch.save(payload, raw_path)))
                elif key == "raw_save_fsync":
                    times[key].append(_timed(lambda: _raw_save_fsync(payload, raw_path)))
                elif key == "tf_save":
                    times[key].append(_blocked_then_committed(manager, payload, tf_path))
                else:
                    times[key].append(_timed(lambda: _until_durable(manager, payload, tf_path)))
            for key in (["raw_load", "tf_load"] if r % 2 == 0 else ["tf_load", "raw_load"]):
                gc.collect()
                if key == "raw_load":
                    times[key].append(_timed(lambda: torch.load(raw_path, map_location="cpu", weights_only=True)))
                else:
                    times[key].append(_timed(lambda: safe_load(tf_path)))
            times["trainer_save"].append(_trainer_checkpoint(new_gpt(plan.ckpt_preset, seq), rows, d / f"t{r}"))
        manager.close()
    print("  checkpoint " + ", ".join(f"{k} {statistics.median(v) * 1e3:.1f} ms" for k, v in times.items()), flush=True)
    return {"times": times, "size_mb": size_mb}


# ------------------------------------------------------------------------------------------------ report
def med(values: list[float]) -> float:
    return statistics.median(values)


def paired(engine: list[float], raw: list[float]) -> float:
    """Median over repeats of engine / raw within the repeat: raw and trainforge run back to back in every repeat
    (either order), and this VM switches between a fast and a ~1/3 slower state for minutes at a time, which a
    ratio of the two medians mixes up when the states fall unevenly on the two sides."""
    return statistics.median(e / r for e, r in zip(engine, raw))


def mr(values: list[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(med(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def machine(threads: int) -> str:
    versions = []
    for mod in ("transformers", "accelerate", "lightning"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except Exception:  # the version line must not fail the report
            versions.append(f"{mod} ?")
    return describe(f"{threads} intra-op / {torch.get_num_interop_threads()} inter-op, the same for every engine "
                    "(one process)", versions) + "\n" + malloc_note()


def summarize(
    train: list[dict[str, Any]], ev: dict[str, Any], st: dict[str, Any], ck: dict[str, Any], fixed: dict[str, Any]
) -> dict[str, Any]:
    """The numbers the targets are judged on (also written as JSON next to the table)."""
    out: dict[str, Any] = {"train": {}, "eval": {}, "startup": {}, "import": {}, "checkpoint": {}}
    for res in train:
        name = res["case"].name
        out["train"][name] = {e: {"median": med(v), "min": min(v), "max": max(v)} for e, v in res["rates"].items()}
    out["eval"] = {e: {"median": med(v), "min": min(v), "max": max(v)} for e, v in ev["rates"].items()}
    out["startup"] = {e: {"median": med(v), "min": min(v), "max": max(v)} for e, v in st["first"].items()}
    out["import"] = {e: {"median": med(v), "min": min(v), "max": max(v)} for e, v in st["imports"].items()}
    out["checkpoint"] = {k: {"median": med(v), "min": min(v), "max": max(v)} for k, v in ck["times"].items()}
    out["fixed_cost_s"] = {e: {"median": med(over_raw(fixed, e)), "min": min(over_raw(fixed, e)),
                               "max": max(over_raw(fixed, e))} for e in ENGINES}
    return out


def over_raw(fixed: dict[str, Any], engine: str) -> list[float]:
    """(g): the engine's whole call minus the raw loop's in the same repeat, per repeat."""
    return [w - r for w, r in zip(fixed["whole"][engine], fixed["whole"]["raw"])]


def report(train: list[dict[str, Any]], ev: dict[str, Any], st: dict[str, Any], ck: dict[str, Any],
           fixed: dict[str, Any], repeats: int, quick: bool) -> tuple[str, list[str]]:
    lines: list[str] = []
    verdicts: list[str] = []
    # ---- training
    lines += ["## Training throughput (a)–(c)", "",
              "| case | engine | tokens/s median (min–max) | × raw | × raw, paired | ms/step | whole call s "
              "| max abs param diff vs raw |",
              "|---|---|---|---|---|---|---|---|"]
    for res in train:
        case: TrainCase = res["case"]
        raw = med(res["rates"]["raw"])
        for e in ENGINES:
            ratio = med(res["rates"][e]) / raw
            label = (f"{case.title}: {case.preset}, batch {case.batch_size}×{case.seq_len}, {case.warmup} warm-up + "
                     f"{case.steps} timed steps, {res['repeats']} repeat{'s' * (res['repeats'] != 1)}")
            lines.append(f"| {label} | {LABELS[e]} | {mr(res['rates'][e])} | {ratio:.3f} "
                         f"| {paired(res['rates'][e], res['rates']['raw']):.3f} "
                         f"| {med(res['step_ms'][e]):.2f} | {med(res['whole'][e]):.2f} | {res['diff'][e]:.1e} |")
        tf = med(res["rates"]["trainforge"])
        if case.name in TARGETS:
            t = TARGETS[case.name]
            tf_paired = paired(res["rates"]["trainforge"], res["rates"]["raw"])
            verdicts.append(f"| {case.title}: trainforge ≥ {t}× raw (paired) | {tf_paired:.3f}× (medians: "
                            f"{tf / raw:.3f}×) | {mark(tf_paired >= t)} |")
        if case.name != "big":
            peers = max(med(res["rates"]["hf"]), med(res["rates"]["lightning"]))
            verdicts.append(f"| {case.title}: trainforge ahead of both peers | {tf / peers:.2f}× the faster peer "
                            f"| {mark(tf > peers)} |")
    # ---- eval
    lines += ["", f"## Evaluation throughput (d): forward-only, {ev['rows']} validation rows, loss over every row", "",
              "| engine | tokens/s median (min–max) | × raw | seconds median |", "|---|---|---|---|"]
    raw_eval = med(ev["rates"]["raw"])
    for e in ENGINES:
        lines.append(f"| {LABELS[e]} | {mr(ev['rates'][e])} | {med(ev['rates'][e]) / raw_eval:.3f} "
                     f"| {med(ev['seconds'][e]):.3f} |")
    # ---- startup and import
    torch_import = med(st["imports"]["raw"])
    lines += ["", "## Start-up (e): `python -c` to the end of the first optimizer step, and import time", "",
              "| engine | to first step s median (min–max) | whole process s | imports done s median (min–max) "
              "| import over torch s |", "|---|---|---|---|---|"]
    for e in ENGINES:
        lines.append(f"| {LABELS[e]} | {mr(st['first'][e], '{:.2f}')} | {med(st['whole'][e]):.2f} "
                     f"| {mr(st['imports'][e], '{:.3f}')} | {med(st['imports'][e]) - torch_import:+.3f} |")
    tf_first = med(st["first"]["trainforge"])
    peer_first = min(med(st["first"]["hf"]), med(st["first"]["lightning"]))
    verdicts.append(f"| (e) trainforge first step before both peers | {tf_first:.2f} s vs {peer_first:.2f} s "
                    f"(faster peer) | {mark(tf_first < peer_first)} |")
    tf_import = med(st["imports"]["trainforge"]) - torch_import
    verdicts.append(f"| (e) `import trainforge` ≤ {IMPORT_TARGET_S} s over `import torch` | {tf_import:+.3f} s "
                    f"| {mark(tf_import <= IMPORT_TARGET_S)} |")
    # ---- checkpoint
    t = ck["times"]
    raw_save, raw_fsync = med(t["raw_save"]), med(t["raw_save_fsync"])

    def row(label: str, key: str, vs_fsync: bool = True) -> str:
        return (f"| {label} | {mr([x * 1e3 for x in t[key]], '{:.1f}')} | {med(t[key]) / raw_save:.2f} "
                f"| {f'{med(t[key]) / raw_fsync:.2f}' if vs_fsync else ''} |")

    lines += ["", f"## Checkpoint (f): the bench model + AdamW state, {ck['size_mb']:.1f} MB", "",
              "| operation | ms median (min–max) | × raw `torch.save` | × raw save + fsync |", "|---|---|---|---|",
              row("raw `torch.save(payload, path)`", "raw_save"),
              row("raw `torch.save` + `fsync`", "raw_save_fsync"),
              row("trainforge `CheckpointManager.save`, training thread blocked (bytes to a temp file; fsync + rename "
                  "go on on the commit thread)", "tf_save"),
              row("trainforge `CheckpointManager.save` + `wait()`, until durable (temp file, fsync, rename, "
                  "directory fsync)", "tf_durable"),
              row("trainforge `Trainer` epoch checkpoint, until durable (`EPOCH_END` → `FIT_END`: payload with RNG, "
                  "config, history + save + wait for the commit)", "trainer_save"),
              f"| raw `torch.load(path, weights_only=True)` "
              f"| {mr([x * 1e3 for x in t['raw_load']], '{:.1f}')} | 1.00 | |",
              f"| trainforge `safe_load` | {mr([x * 1e3 for x in t['tf_load']], '{:.1f}')} "
              f"| {med(t['tf_load']) / med(t['raw_load']):.2f} | |"]
    save_ratio = med(t["tf_save"]) / raw_save
    verdicts.append(f"| (f) checkpoint save ≤ {SAVE_TARGET}× raw `torch.save` (training thread blocked; fsync + "
                    f"rename on the commit thread) | {save_ratio:.2f}× (until durable: "
                    f"{med(t['tf_durable']) / raw_fsync:.2f}× raw save + fsync) | {mark(save_ratio <= SAVE_TARGET)} |")
    # ---- fixed cost
    case = fixed["case"]
    lines += ["", f"## Fixed cost (g): one whole call, {case.preset}, batch {case.batch_size}×{case.seq_len}, "
              f"{case.total_steps} optimizer steps, {fixed['repeats']} repeats", "",
              "| engine | whole call s median (min–max) | over the raw loop s, paired median (min–max) |",
              "|---|---|---|"]
    for e in ENGINES:
        lines.append(f"| {LABELS[e]} | {mr(fixed['whole'][e], '{:.3f}')} | {mr(over_raw(fixed, e), '{:+.3f}')} |")
    tf_fixed = med(over_raw(fixed, "trainforge"))
    verdicts.append(f"| (g) fixed cost of one `train()` ≤ {FIXED_TARGET_S} s over the raw loop (default settings) "
                    f"| {tf_fixed:+.3f} s (HF {med(over_raw(fixed, 'hf')):+.3f} s, Lightning "
                    f"{med(over_raw(fixed, 'lightning')):+.3f} s) | {mark(tf_fixed <= FIXED_TARGET_S)} |")
    more = [f"{res['case'].title.split()[0]} {res['repeats']}" for res in train if res["repeats"] != repeats]
    more_repeats = (f" except {', '.join(more)} (targets that lie within this VM's pair-to-pair spread: "
                    "more pairs, and an even count puts each engine first as often as second)") if more else ""
    notes = [
        "",
        f"{repeats} repeats per engine for (a)–(d){more_repeats}, interleaved (the order reversed on every other "
        "repeat). "
        "Tokens/s: target tokens of the timed steps / their wall time (warm-up steps excluded). × raw, paired: the "
        "median over repeats of the engine's tokens/s / the raw loop's in the same repeat (what the targets use). "
        "ms/step: the timed "
        "window / timed steps. Whole call: model build + engine setup + warm-up + timed steps + teardown (for "
        "trainforge this includes its run directory, metrics CSV, run database and end-of-run plots). Max abs param "
        "diff: the final weights of each engine's first run against the raw loop's (same batches, same optimizer: "
        "only float rounding and clipping kernels differ).",
        "",
        f"Checkpoint (f): {len(ck['times']['raw_save'])} repeats of each save, interleaved (one 22 MB write varies by "
        "±10% from the next on this VM's disk, so (f) takes more repeats than (a)–(d)). "
        "Every save writes a new file (raw: the previous one is deleted first, untimed; trainforge: "
        "a new temporary file, and the previous checkpoint goes when the rename replaces it, on the commit thread, "
        "which the until-durable rows include).",
    ]
    if quick:
        notes.append("QUICK MODE: tiny sizes and 1 repeat; the numbers are not meaningful.")
    summary = ["## Targets", "", "| target | measured | met |", "|---|---|---|", *verdicts, ""]
    return "\n".join(summary + lines + notes), verdicts


def chart(train: list[dict[str, Any]], ev: dict[str, Any], st: dict[str, Any], ck: dict[str, Any], path: Path,
          subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    panels: list[tuple[str, str, dict[str, list[float]]]] = [
        (f"{res['case'].title} ({res['case'].preset}, {res['case'].batch_size}×{res['case'].seq_len})",
         "tokens/s (higher is better)", res["rates"]) for res in train
    ]
    panels.append(("(d) evaluation, forward only", "tokens/s (higher is better)", ev["rates"]))
    for ax, (title, ylabel, values) in zip(axes.flat, panels):
        names = list(ENGINES)
        meds = [med(values[e]) for e in names]
        lo = [m - min(values[e]) for m, e in zip(meds, names)]
        hi = [max(values[e]) - m for m, e in zip(meds, names)]
        bars = ax.bar([LABELS[e].replace(" ", "\n", 1) for e in names], meds, yerr=[lo, hi], capsize=4,
                      color=[COLORS[e] for e in names])
        for bar, m, e in zip(bars, meds, names):
            ax.annotate(f"{m:,.0f}" if m >= 100 else f"{m:.2f}", (bar.get_x() + bar.get_width() / 2, max(values[e])),
                        ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.tick_params(axis="x", labelsize=8)
    ax = axes.flat[4]  # (e): launch -> imports done (dark), then -> first optimizer step
    names = list(ENGINES)
    imported = [med(st["imports"][e]) for e in names]
    first = [med(st["first"][e]) for e in names]
    xlabels = [LABELS[e].replace(" ", "\n", 1) for e in names]
    ax.bar(xlabels, imported, color=[COLORS[e] for e in names])
    ax.bar(xlabels, [f - i for f, i in zip(first, imported)], bottom=imported, color=[COLORS[e] for e in names],
           alpha=0.45,
           yerr=[[f - min(st["first"][e]) for f, e in zip(first, names)],
                 [max(st["first"][e]) - f for f, e in zip(first, names)]], capsize=4)
    for x, (f, i, e) in enumerate(zip(first, imported, names)):
        ax.annotate(f"{f:.2f} ({i:.2f})", (x, max(st["first"][e])), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")
    ax.set_title("(e) python -c to first optimizer step (imports done)")
    ax.set_ylabel("seconds (lower is better)")
    ax.tick_params(axis="x", labelsize=8)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="black", alpha=0.9, label="imports done"),
                       Patch(color="black", alpha=0.3, label="+ setup and first step")], fontsize=8, loc="upper left")
    ax = axes.flat[5]
    t = ck["times"]
    keys = [("raw_save", "torch.save"), ("raw_save_fsync", "torch.save\n+ fsync"),
            ("tf_save", "trainforge\nsave\n(blocked)"), ("tf_durable", "trainforge\nsave+wait\n(durable)"),
            ("trainer_save", "Trainer\nepoch ckpt\n(durable)"), ("raw_load", "torch.load"),
            ("tf_load", "trainforge\nsafe_load")]
    meds = [med(t[k]) * 1e3 for k, _ in keys]
    colors = [COLORS["raw"] if k.startswith("raw") else COLORS["trainforge"] for k, _ in keys]
    ax.bar([label for _, label in keys], meds, color=colors,
           yerr=[[m - min(t[k]) * 1e3 for m, (k, _) in zip(meds, keys)],
                 [max(t[k]) * 1e3 - m for m, (k, _) in zip(meds, keys)]], capsize=4)
    ax.set_title(f"(f) checkpoint, {ck['size_mb']:.1f} MB")
    ax.set_ylabel("ms (lower is better)")
    ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"trainforge vs a raw loop, transformers.Trainer and Lightning (median, min–max)\n{subtitle}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat: checks the script (< 1 minute)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help=f"where peers.md, peers.png and peers.json go (default {DEFAULT_OUT_DIR})")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per engine for (a)-(d); (a) and (b) run twice as many (default 7, quick 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for every engine "
                        "(default: torch's own default)")
    parser.add_argument(DEFAULT_MALLOC_FLAG, action="store_true",
                        help="keep glibc's default heap thresholds (see machine_info.STEADY_MALLOC)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import lightning  # noqa: F401  (imported once, up front: import time is case (e), not part of a training run)
    import transformers

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.ERROR)  # "GPU available", tips: set after import (it sets INFO)
    transformers.logging.set_verbosity_error()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    plan = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 7)
    started = time.perf_counter()
    header = machine(threads) + f"\n- load average before: {load_avg()}"
    print(header, flush=True)

    train_results = []
    for case in plan.train:
        print(f"{case.title}: {case.preset}, batch {case.batch_size}x{case.seq_len}, {case.warmup} warm-up + "
              f"{case.steps} timed steps, {repeats * case.repeat_scale} repeats", flush=True)
        blocks = default_lm_dataset(block_size=case.seq_len, val_fraction=0.0)[0]
        train_results.append(bench_train(case, blocks, repeats, threads))
    case = plan.fixed
    print(f"{case.title}: {case.preset}, batch {case.batch_size}x{case.seq_len}, {case.total_steps} steps, "
          f"{repeats * case.repeat_scale} repeats", flush=True)
    fixed = bench_train(case, default_lm_dataset(block_size=case.seq_len, val_fraction=0.0)[0], repeats, threads)
    print("(d) evaluation", flush=True)
    ev = bench_eval(plan, repeats)
    print("(e) start-up and import", flush=True)
    st = bench_startup(plan, warm=not args.quick)
    print("(f) checkpoint", flush=True)
    ck = bench_checkpoint(plan)
    elapsed = time.perf_counter() - started
    header += (f"; after: {load_avg()} (other processes may share this machine: see the min–max spread)\n"
               f"- total benchmark time {elapsed / 60:.1f} min")
    table, _ = report(train_results, ev, st, ck, fixed, repeats, args.quick)
    command = "python benchmarks/bench_peers.py" + "".join(
        " " + a for a in (sys.argv[1:] if argv is None else argv))
    print()
    print(table)
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "peers.md").write_text(
        f"# trainforge vs a raw loop, transformers.Trainer and Lightning\n\n`{command}`\n\n{header}\n\n{table}\n"
        "\n![chart](peers.png)\n")
    (out_dir / "peers.json").write_text(json.dumps(summarize(train_results, ev, st, ck, fixed), indent=1) + "\n")
    chart(train_results, ev, st, ck, out_dir / "peers.png",
          f"{cpu_name()}, {os.cpu_count()} cores · torch {torch.__version__} · {threads} threads · {command}")
    print(f"\nwritten to {out_dir / 'peers.md'}, {out_dir / 'peers.png'}, {out_dir / 'peers.json'}")
    return 0


if __name__ == "__main__":
    rerun_with_steady_malloc()
    sys.exit(main())
