"""Per-step cost of the NaN guard on the tiny GPT (CPU): ``python tests/reliability/bench_nan_guard.py``.

Trains the same 1-epoch run with ``nan_guard`` on and off, interleaved, and prints the median time per optimizer
step of each (``training_time_s / global_step``, so the epoch-end snapshot is included).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.helpers import lm_task, quiet_config, tiny_gpt  # noqa: E402
from trainforge import Trainer  # noqa: E402


def per_step(guard: bool, data: torch.Tensor, clip: float | None) -> float:
    model, cfg = tiny_gpt()
    config = quiet_config(epochs=1, batch_size=8, nan_guard=guard, log_every_n_steps=10_000, max_grad_norm=clip,
                          output_dir="/tmp/bench_nan_guard_run")
    results = Trainer(model, cfg, config, lm_task()).train(data)
    return results["training_time_s"] / results["global_step"]


def main() -> None:
    torch.set_num_threads(1)
    data = torch.randint(0, 32, (2400, 16), generator=torch.Generator().manual_seed(0))  # 300 steps
    for clip in (1.0, None):
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(7):
            for guard in (False, True):
                times[guard].append(per_step(guard, data, clip))
        off, on = statistics.median(times[False]), statistics.median(times[True])
        print(f"max_grad_norm={clip}: guard off {off * 1e6:.0f} us/step, on {on * 1e6:.0f} us/step, "
              f"cost {(on - off) * 1e6:+.0f} us/step ({(on / off - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
