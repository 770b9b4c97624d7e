"""Named validation sets and mid-epoch validation under torchrun (or in one process): the classification run of
``metrics_script.py`` with ``val_data={"a": ..., "b": ...}`` (each set sharded over the ranks by its own
``EvalShardSampler``) and ``eval_every_n_steps=3``.

Writes from rank 0 into ``--out``: ``final.pt``, ``at_step_<N>.pt`` (the weights of each mid-epoch validation) and
``results.json`` (epoch rows, mid-epoch rows, world size, and ``trainer.evaluate`` of the dict after training).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from tests.distributed.metrics_script import CLASSES, HandF1, make_data, make_model, out_dir

SETS = {"a": (37, 1), "b": (21, 2)}  # name: (samples, seed); 37 and 21 give the two ranks unequal shards


def val_sets() -> dict[str, Any]:
    return {name: make_data(n, seed=seed) for name, (n, seed) in SETS.items()}


def make_trainer(out: Path, **extra: Any):  # -> Trainer
    from trainforge import TaskSpec, Trainer, TrainingConfig

    cfg = TrainingConfig(epochs=2, batch_size=8, learning_rate=0.05, warmup_steps=0, output_dir=str(out / "run"),
                         progress_bar=False, track_runs=False, plots=False, seed=0, **extra)
    task = TaskSpec.vision_classification(name="toy", num_classes=CLASSES, image_size=4, num_channels=1)
    return Trainer(make_model(), None, cfg, task, metrics={"hand_f1": HandF1()})


class KeepWeights:
    def __init__(self, trainer: Any, out: Path, is_main: bool) -> None:
        self.trainer, self.out, self.is_main = trainer, out, is_main

    def on_eval_end(self, state: Any) -> None:
        if state.last_metrics.get("mid_epoch") and self.is_main:
            torch.save(self.trainer.model.state_dict(), self.out / f"at_step_{state.global_step}.pt")


def main() -> None:
    out = out_dir()

    from trainforge.distributed.env import shutdown

    trainer = make_trainer(out, eval_every_n_steps=3)
    rank = int(os.environ.get("RANK", "0"))
    trainer.callbacks.append(KeepWeights(trainer, out, rank == 0))
    results = trainer.train(make_data(96, seed=0), val_sets())
    evaluated = trainer.evaluate(val_sets())
    if rank == 0:
        torch.save(results["final_model_state"], out / "final.pt")
        (out / "results.json").write_text(json.dumps({
            "history": results["metrics_summary"].to_dict("records"), "eval_history": results["eval_history"],
            "monitor": results["monitor"], "world_size": results["world_size"], "evaluate": evaluated}))
    shutdown()  # every rank waits for the others, then leaves the process group


if __name__ == "__main__":
    main()
