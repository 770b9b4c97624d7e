"""Parallel sweep speed-up: 4 single-threaded trials with ``parallel: 2`` against ``parallel: 1``.

Run (from the repository root)::

    python benchmarks/bench_sweep.py             # ~1.5 minutes on 2 idle cores; target: >= 1.8x
    python benchmarks/bench_sweep.py --quick     # tiny trials, checks the script (speed-up not meaningful)
    python benchmarks/bench_sweep.py --workers exec --trial-plots --max-bytes 300000 --epochs 1   # stop 10

Each run is a fresh sweep directory (``local`` backend, grid of 4 learning rates, the ``tiny`` GPT on the embedded
corpus, 2 epochs of 1 MB: about 14 s on one thread of a 2-core EPYC). Workers run trials with
``torch.set_num_threads(1)``; trials write no per-run plots (``trial_plots: false``, the sweep default). Reported:
the wall time of the trial phase (worker start-up included; the end-of-sweep report excluded) and of the whole
``run_sweep`` call, and the fixed cost per worker: the trial phase of ``parallel: 1`` minus the sum of its trials'
durations (start-up, imports before the first claim) plus the first trial's extra time over the others (imports on
first use, e.g. ``torch._dynamo`` when the optimizer is built). With fixed cost ``S`` per worker and ``T`` per
trial, the speed-up is ``(S + 4T) / (S + 2T)``: ``S`` is paid once in both runs (the two workers pay theirs at the
same time), so it is what keeps the speed-up under 2.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from trainforge.sweeps import parse_sweep, run_sweep


def sweep(parallel: int, directory: Path, quick: bool, max_bytes: int = 1_000_000, trial_plots: bool = False,
          epochs: int = 2) -> dict:
    return {
        "name": f"bench-p{parallel}",
        "method": "grid",
        "metric": {"name": "val/loss", "goal": "minimize"},
        "parameters": {"learning_rate": {"values": [1e-3, 2e-3, 3e-3, 4e-3]}},
        "parallel": parallel,
        "base_config": {"preset": "tiny", "epochs": 1 if quick else epochs, "batch_size": 16, "progress_bar": False,
                        "max_val_samples": 32, **({"max_train_samples": 64} if quick else {})},
        "model": {"preset": "tiny"},
        "data": {"max_bytes": 12_000 if quick else max_bytes},
        "output_dir": str(directory / f"p{parallel}"),
        "trial_plots": trial_plots,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--max-bytes", type=int, default=1_000_000,
                        help="corpus bytes (the embedded corpus has about 1.1 MB)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial")
    parser.add_argument("--trial-plots", action="store_true", help="each trial writes plots/*.png (off by default)")
    parser.add_argument("--workers", choices=("auto", "fork", "exec"), default="auto",
                        help="how workers start (sets $TRAINFORGE_SWEEP_WORKERS)")
    args = parser.parse_args()
    if args.workers != "auto":
        os.environ["TRAINFORGE_SWEEP_WORKERS"] = args.workers
    from trainforge.sweeps.local import start_method

    print(f"workers: {start_method()}   trial plots: {args.trial_plots}   corpus bytes: {args.max_bytes}   "
          f"epochs: {args.epochs}")
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        for parallel in (1, 2):
            spec = parse_sweep(sweep(parallel, Path(tmp), args.quick, args.max_bytes, args.trial_plots, args.epochs))
            started = time.perf_counter()
            result = run_sweep(spec, log=lambda _: None)
            total = time.perf_counter() - started
            assert result.counts() == {"completed": 4}, result.counts()
            durations = [t.duration_s or 0.0 for t in sorted(result.trials, key=lambda t: t.started_at or 0.0)]
            times[parallel] = (result.run_s, total)
            print(f"parallel {parallel}: trial phase {result.run_s:6.1f} s   whole sweep {total:6.1f} s   "
                  f"(trials {', '.join(f'{d:.1f}' for d in durations)} s; sum {sum(durations):.1f} s)")
            if parallel == 1:
                first_extra = durations[0] - min(durations[1:])
                startup = result.run_s - sum(durations)
                print(f"  fixed cost per worker ~ {startup + first_extra:.1f} s (start-up and coordination "
                      f"{startup:.1f} s, first trial's extra {first_extra:.1f} s); per trial "
                      f"~ {min(durations[1:]):.1f} s")
    speedup = times[1][0] / times[2][0]
    print(f"speed-up of parallel 2 over parallel 1 (trial phase): {speedup:.2f}x  (target >= 1.8x on 2 cores)")
    print(f"speed-up (whole sweep, report included): {times[1][1] / times[2][1]:.2f}x")


if __name__ == "__main__":
    main()
