"""One process of a 2-process ``torchrun`` run of ``TrainingCoordinator`` with Lightning's DDP (gloo, CPU).

    torchrun --standalone --nproc_per_node=2 tests/distributed/lightning_ddp_script.py --out DIR

Trains the tiny GPT on ``lightning_ddp_rows()`` (batch 4 per rank, accumulation 2); rank 0 writes ``final.pt`` and
``results.json`` into DIR. ``test_lightning_ddp.py`` compares them with one process of ``trainforge.Trainer``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: tests.helpers

from tests.helpers import PAD, lm_task, padded_lm_rows, quiet_config, tiny_gpt  # noqa: E402

N = 20


def lightning_ddp_rows() -> torch.Tensor:
    """Rank 0 (even rows under a DistributedSampler without shuffle) holds short rows where rank 1 holds long ones
    and the other way round every 8 rows: target counts differ between the ranks and between micro-batches."""
    i = torch.arange(N)
    return padded_lm_rows(N, pad=PAD, short=((i // 8) % 2 == 0) ^ (i % 2 == 1))


def config(out: Path, **overrides):
    return quiet_config(epochs=2, gradient_accumulation_steps=2, shuffle=False, device="cpu", learning_rate=1e-3,
                        max_grad_norm=1.0, output_dir=str(out / "run"), track_runs=False, **overrides)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from trainforge.lightning import TrainingCoordinator

    model, _ = tiny_gpt()
    cfg = config(args.out, batch_size=4, strategy="ddp")
    results = TrainingCoordinator(cfg, lm_task(pad_token_id=PAD), accelerator="cpu", devices=2).train(
        model, train_data=lightning_ddp_rows())
    if results["world_size"] == 2 and torch.distributed.get_rank() == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        torch.save(results["final_model_state"], args.out / "final.pt")
        keep = ("world_size", "global_step", "loss_history", "backend")
        (args.out / "results.json").write_text(json.dumps({k: results[k] for k in keep}))


if __name__ == "__main__":
    main()
