"""The fixed cost of one ``Trainer.train()`` call over a raw PyTorch loop doing the same steps, default settings.

    python benchmarks/bench_train_fixed_cost.py [--repeats 9] [--out benchmarks/results/train_fixed_cost.md]

Per repeat, in one process and interleaved (the machine may be shared; neighbours' load hits all three alike):
``raw`` (forward, loss, backward, clip, AdamW step by hand), ``train()`` with the default settings (plots on), and
``train(plots=False)``. The tiny GPT trains 2 optimizer steps, so the time is almost all fixed cost. Reported:
medians, and train() minus raw. The end-of-run plots are drawn by a background thread since the engine change:
the call returns before they are written; between repeats the script waits for them (outside the timed region) so
one call's drawing does not overlap the next call's timing. A first call of each kind warms imports up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trainforge import TaskSpec, Trainer, TrainingConfig  # noqa: E402
from trainforge.models import GPT, GPTConfig  # noqa: E402

VOCAB, SEQ, N = 64, 32, 16


def _model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=VOCAB, max_seq_len=SEQ, n_layer=1, n_head=2, d_model=32))


def _data() -> torch.Tensor:
    return torch.randint(0, VOCAB, (N, SEQ), generator=torch.Generator().manual_seed(0))


def raw_loop(data: torch.Tensor) -> float:
    started = time.perf_counter()
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, foreach=True)
    for i in range(0, N, 8):  # batch 8: 2 steps, as train() below
        batch = data[i:i + 8]
        logits = model(batch)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def train_call(data: torch.Tensor, out: Path, plots: bool) -> float:
    task = TaskSpec.language_modeling(name="lm", vocab_size=VOCAB, max_seq_len=SEQ)
    started = time.perf_counter()
    model = _model()
    cfg = TrainingConfig(epochs=1, output_dir=str(out), plots=plots, progress_bar=False)
    results = Trainer(model, None, cfg, task).train(data)
    elapsed = time.perf_counter() - started
    _ = list(results.get("plot_paths") or [])  # waits for background plots (untimed), so calls do not overlap
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", default=None, help="write a markdown table here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = _data()
    times: dict[str, list[float]] = {"raw": [], "train": [], "train_noplots": []}
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        raw_loop(data), train_call(data, Path("warm-a"), True), train_call(data, Path("warm-b"), False)
        for r in range(args.repeats):
            times["raw"].append(raw_loop(data))
            times["train"].append(train_call(data, Path(f"a{r}"), True))
            times["train_noplots"].append(train_call(data, Path(f"b{r}"), False))
    med = {k: statistics.median(v) for k, v in times.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"train() fixed cost, tiny GPT, 2 steps, CPU 1 thread, {args.repeats} interleaved repeats "
        f"(load average at the end: {load:.1f} on {os.cpu_count()} cores)",
        "",
        "| | median s | over raw s |",
        "|---|---|---|",
        f"| raw loop | {med['raw']:.3f} | - |",
        f"| train(), default settings (plots on) | {med['train']:.3f} | {med['train'] - med['raw']:.3f} |",
        f"| train(plots=False) | {med['train_noplots']:.3f} | {med['train_noplots'] - med['raw']:.3f} |",
        "",
        f"plots on the caller's path: {med['train'] - med['train_noplots']:+.3f} s (train minus train(plots=False))",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
