"""GPU check of telemetry and the memory estimate: ``python benchmarks/gpu_telemetry_check.py`` on a CUDA machine.

Trains a 25M-parameter GPT (8 layers, d_model 512, seq 256, batch 64, bf16-mixed) for 40 steps with the
TensorBoard logger and prints the results' telemetry (tokens/s, MFU from the peak-FLOPs table, peak CUDA memory),
the memory estimate, the measured ``torch.cuda.max_memory_allocated`` and the last step record.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from trainforge import TaskSpec, Trainer, TrainingConfig  # noqa: E402
from trainforge.models.gpt import build_model  # noqa: E402


def main() -> None:
    out = os.environ.get("OUT", ".")
    model, cfg = build_model("bench", n_layer=8, d_model=512, n_head=8, max_seq_len=256)
    data = torch.randint(0, 256, (64 * 40, 256))
    task = TaskSpec.language_modeling(name="lm", vocab_size=256, max_seq_len=256)
    config = TrainingConfig(epochs=1, batch_size=64, progress_bar=False, log_every_n_steps=10, loggers=["tensorboard"],
                            output_dir=f"{out}/runs/gpu", run_name="gpu", precision="bf16-mixed")
    results = Trainer(model, cfg, config, task).train(data)
    print(json.dumps({"telemetry": results["telemetry"], "memory_estimate": results["memory_estimate"],
                      "measured_cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20,
                      "device": torch.cuda.get_device_name()}, indent=1))
    print(Path(f"{out}/runs/gpu/steps.jsonl").read_text().splitlines()[-1])


if __name__ == "__main__":
    main()
