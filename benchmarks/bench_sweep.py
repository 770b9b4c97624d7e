"""Parallel sweep speed-up: 4 single-threaded trials with ``parallel: 2`` against ``parallel: 1``.

Run (from the repository root)::

    python benchmarks/bench_sweep.py             # ~2 minutes on 2 idle cores; target: >= 1.8x faster
    python benchmarks/bench_sweep.py --quick     # tiny trials, checks the script (speed-up not meaningful)

Each run is a fresh sweep directory (``local`` backend, grid of 4 learning rates, the ``tiny`` GPT on the
embedded corpus, 1 epoch). Workers run trials with ``torch.set_num_threads(1)``. Reported: the wall time of
the trial phase (worker start-up included; the end-of-sweep report excluded) and of the whole ``run_sweep`` call.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from trainforge.sweeps import parse_sweep, run_sweep


def sweep(parallel: int, directory: Path, quick: bool) -> dict:
    return {
        "name": f"bench-p{parallel}",
        "method": "grid",
        "metric": {"name": "val/loss", "goal": "minimize"},
        "parameters": {"learning_rate": {"values": [1e-3, 2e-3, 3e-3, 4e-3]}},
        "parallel": parallel,
        "base_config": {"preset": "tiny", "epochs": 1, "batch_size": 16, "progress_bar": False,
                        "max_val_samples": 32, **({"max_train_samples": 64} if quick else {})},
        "model": {"preset": "tiny"},
        "data": {"max_bytes": 12_000 if quick else 300_000},
        "output_dir": str(directory / f"p{parallel}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        for parallel in (1, 2):
            spec = parse_sweep(sweep(parallel, Path(tmp), args.quick))
            started = time.perf_counter()
            result = run_sweep(spec, log=lambda _: None)
            total = time.perf_counter() - started
            assert result.counts() == {"completed": 4}, result.counts()
            trial_s = sum(t.duration_s or 0 for t in result.trials)
            times[parallel] = (result.run_s, total)
            print(f"parallel {parallel}: trial phase {result.run_s:6.1f} s   whole sweep {total:6.1f} s   "
                  f"(sum of trial durations {trial_s:.1f} s)")
    speedup = times[1][0] / times[2][0]
    print(f"speed-up of parallel 2 over parallel 1 (trial phase): {speedup:.2f}x  (target >= 1.8x on 2 cores)")
    print(f"speed-up (whole sweep, report included): {times[1][1] / times[2][1]:.2f}x")


if __name__ == "__main__":
    main()
