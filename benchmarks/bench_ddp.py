"""Throughput of DDP on CPU: 2 gloo processes (torchrun) against 1 process, the same global batch.

Run (from the repository root)::

    python benchmarks/bench_ddp.py                 # writes benchmarks/results/ddp.md (about a minute)
    python benchmarks/bench_ddp.py --strategy fsdp # the same for FSDP: benchmarks/results/fsdp.md
    python benchmarks/bench_ddp.py --quick         # seconds, tiny sizes; prints only (checks the script)

What is measured: ``Trainer`` on the GPT ``--model`` preset over the embedded byte corpus, ``--epochs`` epochs, a
global batch of ``--global-batch`` blocks (1 process: batch G; 2 processes: batch G/2 each, so both runs take the
same optimizer steps on the same samples). Tokens/s is trained target tokens (all-reduced over ranks) per second
of the *last* epoch (the first includes warm-up), as the ``tokens_per_s`` column of the results. Every process
gets ``OMP_NUM_THREADS=--threads`` (default 1), so 2 processes use 2 cores and 1 process one: the question is what
a second process (core) buys once gradients are all-reduced every step. Repeats alternate 1 and 2 processes; the
median is reported. Start-up (interpreter, imports, process group) is outside the window and reported apart as the
wall time of the whole command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def worker(args: argparse.Namespace) -> None:
    from trainforge import TaskSpec, Trainer, TrainingConfig
    from trainforge.config import get_preset
    from trainforge.data.corpus import default_lm_dataset
    from trainforge.distributed import shutdown
    from trainforge.models import build_model

    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.manual_seed(0)
    model, mc = build_model(args.model)
    train, _ = default_lm_dataset(block_size=mc.max_seq_len, max_bytes=args.max_bytes)
    train = train[: len(train) // args.global_batch * args.global_batch]
    task = TaskSpec.language_modeling(name="bench", vocab_size=mc.vocab_size, max_seq_len=mc.max_seq_len)
    cfg = TrainingConfig.from_dict({**get_preset("tiny"), "batch_size": args.global_batch // world,
                                    "epochs": args.epochs, "progress_bar": False, "log_every_n_steps": 10_000,
                                    "strategy": args.strategy,
                                    "output_dir": str(Path(args.out).with_suffix(".run"))})
    results = Trainer(model, mc, cfg, task).train(train)
    if int(os.environ.get("RANK", "0")) == 0:
        row = results["metrics_summary"].iloc[-1]
        Path(args.out).write_text(json.dumps({"tokens_per_s": float(row["tokens_per_s"]), "world": world,
                                              "steps": results["global_step"], "samples": len(train)}))
    shutdown()


def run_once(nproc: int, args: argparse.Namespace, out: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = str(args.threads)
    common = ["--worker", "--out", str(out), "--model", args.model, "--max-bytes", str(args.max_bytes),
              "--global-batch", str(args.global_batch), "--epochs", str(args.epochs), "--strategy", args.strategy]
    if nproc == 1:
        cmd = [sys.executable, __file__, *common]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               __file__, *common]
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    data: dict[str, float] = json.loads(out.read_text())
    data["wall_s"] = time.perf_counter() - started
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--max-bytes", type=int, default=400_000)
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--strategy", default="ddp", choices=("ddp", "fsdp"), help="what the 2 processes run")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        args.max_bytes, args.repeats = 40_000, 1
    runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for nproc in ((1, 2) if r % 2 == 0 else (2, 1)):
                runs[nproc].append(run_once(nproc, args, Path(tmp) / f"r{r}-p{nproc}.json"))
    med = {n: statistics.median(x["tokens_per_s"] for x in rs) for n, rs in runs.items()}
    wall = {n: statistics.median(x["wall_s"] for x in rs) for n, rs in runs.items()}
    lines = [
        f"# {args.strategy.upper()} on CPU: 2 processes vs 1 (benchmarks/bench_ddp.py)",
        "",
        f"Command: `python benchmarks/bench_ddp.py{' --quick' if args.quick else ''}"
        f"{' --strategy fsdp' if args.strategy == 'fsdp' else ''}` | model preset `{args.model}`, "
        f"global batch {args.global_batch}, {runs[1][0]['samples']} blocks, {args.epochs} epochs "
        f"({runs[1][0]['steps']} optimizer steps), OMP_NUM_THREADS={args.threads} per process, "
        f"median of {args.repeats}.",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs (shared), "
        f"torch {torch.__version__}, gloo backend.",
        "",
        "| processes | tokens/s (last epoch) | speed-up | wall time of the command (s) |",
        "|---|---|---|---|",
    ]
    for n in (1, 2):
        lines.append(f"| {n} | {med[n]:,.0f} | {med[n] / med[1]:.2f}x | {wall[n]:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        out = Path(__file__).with_name("results") / f"{args.strategy}.md"
        out.write_text(text)
        print(f"written to {out}")


if __name__ == "__main__":
    main()
