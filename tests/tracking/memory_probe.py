"""Measure a training run's peak memory on CPU and print it next to trainforge's estimate (one JSON line).

Run in a fresh interpreter (the test does): ``python tests/tracking/memory_probe.py PRESET BATCH [SEQ]``.
Peak RSS comes from Linux's ``VmHWM``, reset (``/proc/self/clear_refs`` ← 5) after a warm-up run that loads
every lazily initialised piece (autograd engine, optimizer, SDPA kernels, pandas), so the measured number is
what this training run adds: its model, gradients, optimizer state and activations.
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
from pathlib import Path

import torch


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _run(preset: str, batch: int, seq: int | None, out: Path, steps: int) -> dict:
    from trainforge import TaskSpec, Trainer, TrainingConfig
    from trainforge.models import build_model

    overrides = {"max_seq_len": seq} if seq else {}
    model, cfg = build_model(preset, **overrides)
    torch.manual_seed(0)
    data = torch.randint(0, cfg.vocab_size, (batch * steps, cfg.max_seq_len))
    task = TaskSpec.language_modeling(name="lm", vocab_size=cfg.vocab_size, max_seq_len=cfg.max_seq_len)
    config = TrainingConfig(epochs=1, batch_size=batch, progress_bar=False, track_runs=False, device="cpu",
                            precision="fp32", log_every_n_steps=1, output_dir=str(out), shuffle=False)
    results = Trainer(model, cfg, config, task).train(data)
    del model, data
    return results


def main() -> None:
    preset, batch = sys.argv[1], int(sys.argv[2])
    seq = int(sys.argv[3]) if len(sys.argv) > 3 else None
    torch.set_num_threads(1)
    import pandas  # noqa: F401  (imported by results; loaded before the measurement)

    with tempfile.TemporaryDirectory() as tmp:
        _run("bench_tiny", 2, None, Path(tmp) / "warmup", steps=2)  # lazy initialisation, outside the measurement
        from trainforge.tracking.run import wait_for_plots

        wait_for_plots()  # the warm-up's plots (matplotlib) are drawn by a thread: done before measuring
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        base = _status("VmRSS")
        results = _run(preset, batch, seq, Path(tmp) / "run", steps=3)
        peak = _status("VmHWM")
    est = results["memory_estimate"]
    print(json.dumps({"preset": preset, "batch": batch, "seq": est["seq_len"], "measured_mb": (peak - base) / 2**20,
                      "estimate_mb": est["total_mb"], "estimate": est}))


if __name__ == "__main__":
    main()
