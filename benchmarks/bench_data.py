"""Data-pipeline cost: the share of step time spent waiting for data, and collation throughput.

Run (from the repository root)::

    python benchmarks/bench_data.py            # ~1 minute on a laptop CPU
    python benchmarks/bench_data.py --quick    # a few seconds (checks the script)

* Data wait: the ``tiny`` training preset and the ``tiny`` GPT on the embedded corpus, fed by
  ``UniversalDataModule`` with ``num_workers`` 0 and 2. The loader's iterator is timed (time inside ``next()``)
  over the window from the end of the first (warm-up) step to the end of the last one; the share is
  data-wait / window. Target: under 2%.
* Collation: samples/s of the built-in collators on realistic batches (causal LM with padding, packed LM,
  classification, seq2seq, vision), the median of 5 repeats.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import torch

from trainforge import TaskSpec, Trainer, TrainingConfig
from trainforge.config import get_preset
from trainforge.data.collators import get_collator
from trainforge.data.corpus import default_lm_dataset
from trainforge.data.module import ResumableDataLoader, UniversalDataModule
from trainforge.models import build_model


class _Clock:
    def __init__(self) -> None:
        self.wait = 0.0
        self.window_start: float | None = None
        self.window_end = 0.0
        self.steps = 0

    def on_step_end(self, state: Any) -> None:
        now = time.perf_counter()
        self.steps += 1
        if self.window_start is None:
            self.window_start, self.wait = now, 0.0  # the first step (and its batch) is warm-up
        self.window_end = now


class _TimedIter:
    def __init__(self, it: Iterator[Any], clock: _Clock) -> None:
        self.it, self.clock = it, clock

    def __iter__(self) -> _TimedIter:
        return self

    def __next__(self) -> Any:
        started = time.perf_counter()
        try:
            return next(self.it)
        finally:
            self.clock.wait += time.perf_counter() - started


def data_wait(num_workers: int, steps: int) -> dict[str, float]:
    model, model_config = build_model("tiny")
    block = model_config.max_seq_len
    train, val = default_lm_dataset(block_size=block, max_bytes=400_000)
    task = TaskSpec.language_modeling(name="bench", vocab_size=model_config.vocab_size, max_seq_len=block)
    cfg = TrainingConfig(**{**get_preset("tiny"), "epochs": 1, "max_steps": steps, "progress_bar": False,
                            "num_workers": num_workers, "log_every_n_steps": 10_000})
    clock = _Clock()
    module = UniversalDataModule(train, None, task, batch_size=cfg.batch_size, num_workers=num_workers,
                                 validation_split=0)
    loader = module.train_dataloader()
    original = ResumableDataLoader.__iter__

    def timed(self: ResumableDataLoader) -> Iterator[Any]:
        return _TimedIter(original(self), clock)

    loader.__class__ = type("_Timed", (ResumableDataLoader,), {"__iter__": timed})
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        cfg = TrainingConfig(**{**cfg.to_dict(), "output_dir": tmp})
        Trainer(model, model_config, cfg, task, callbacks=[clock]).train(loader)
    window = clock.window_end - (clock.window_start or 0.0)
    return {"steps": clock.steps - 1, "step_ms": 1000 * window / max(clock.steps - 1, 1),
            "wait_ms": 1000 * clock.wait / max(clock.steps - 1, 1), "share": clock.wait / max(window, 1e-9)}


def collation(batch: int = 32, repeats: int = 5, rounds: int = 50) -> list[tuple[str, float]]:
    g = torch.Generator().manual_seed(0)

    def lengths(lo: int, hi: int) -> list[int]:
        return torch.randint(lo, hi, (batch,), generator=g).tolist()

    lm = TaskSpec.language_modeling(name="lm", vocab_size=50257, max_seq_len=256, pad_token_id=0, eos_token_id=1)
    cls = TaskSpec.classification(name="c", num_classes=4, vocab_size=30522, max_seq_len=256, pad_token_id=0)
    s2s = TaskSpec.seq2seq(name="s", vocab_size=32128, max_seq_len=256, pad_token_id=0)
    vis = TaskSpec.vision_classification(name="v", num_classes=10, image_size=32)
    cases = [
        ("causal_lm (pad, 64-256 tok)", get_collator(lm),
         [{"input_ids": torch.randint(2, 50257, (n,), generator=g)} for n in lengths(64, 256)]),
        ("causal_lm (equal 256 tok)", get_collator(lm),
         [{"input_ids": torch.randint(2, 50257, (256,), generator=g)} for _ in range(batch)]),
        ("packed_lm (64-256 tok)", get_collator(lm, "packed_lm"),
         [{"input_ids": torch.randint(2, 50257, (n,), generator=g)} for n in lengths(64, 256)]),
        ("classification (token lists)", get_collator(cls),
         [{"input_ids": torch.randint(2, 30522, (n,), generator=g).tolist(), "labels": 1} for n in lengths(16, 128)]),
        ("seq2seq", get_collator(s2s),
         [{"input_ids": torch.randint(2, 32128, (n,), generator=g), "labels": torch.randint(2, 32128, (n // 2,))}
          for n in lengths(32, 256)]),
        ("vision uint8 HWC 32x32", get_collator(vis),
         [{"pixel_values": torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8), "labels": 3} for _ in range(batch)]),
    ]
    out = []
    for name, fn, samples in cases:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(rounds):
                fn(samples)
            times.append(time.perf_counter() - started)
        out.append((name, batch * rounds / statistics.median(times)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = 12 if args.quick else 120
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| num_workers | steps | step ms | data wait ms/step | data wait share |")
    print("|---|---|---|---|---|")
    for workers in (0, 2):
        r = data_wait(workers, steps)
        print(f"| {workers} | {r['steps']:.0f} | {r['step_ms']:.2f} | {r['wait_ms']:.3f} | {100 * r['share']:.2f}% |")
    print()
    print("| collator (batch 32) | samples/s |")
    print("|---|---|")
    for name, rate in collation(rounds=5 if args.quick else 50, repeats=2 if args.quick else 5):
        print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
