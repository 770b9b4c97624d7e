"""A classification run with user metrics (a torchmetrics F1 and a hand-written F1), launched by torchrun or as
one process; also imported by the tests for the same model, data and hand computation.

Writes from rank 0 into ``--out``: ``final.pt`` (the final weights) and ``results.json`` (the epoch rows, best epoch,
world size, and ``trainer.evaluate(val)`` after training).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor, nn

CLASSES = 3


def make_data(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Images ``[n, 1, 4, 4]`` whose class is learnable from a noisy linear rule, and their labels ``[n]``."""
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(16, CLASSES, generator=torch.Generator().manual_seed(123))
    x = torch.randn(n, 1, 4, 4, generator=g)
    y = (x.reshape(n, 16) @ teacher + 1.5 * torch.randn(n, CLASSES, generator=g)).argmax(-1)
    return x, y


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, CLASSES))


def hand_f1(pred_ids: Tensor, target: Tensor, classes: int = CLASSES) -> float:
    """Macro F1 written out: mean over classes of 2·TP / (2·TP + FP + FN) (a class never seen nor predicted is 0,
    as torchmetrics' default ``zero_division=0``)."""
    scores = []
    for c in range(classes):
        tp = int(((pred_ids == c) & (target == c)).sum())
        fp = int(((pred_ids == c) & (target != c)).sum())
        fn = int(((pred_ids != c) & (target == c)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(scores) / classes


class HandF1:
    """A plain metric object (no torchmetrics): macro F1 over everything it was given since ``reset``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.preds: list[Tensor] = []
        self.targets: list[Tensor] = []

    def update(self, preds: Tensor, target: Tensor) -> None:
        self.preds.append(preds.argmax(-1).cpu())
        self.targets.append(target.cpu())

    def compute(self) -> float:
        return hand_f1(torch.cat(self.preds), torch.cat(self.targets))


def make_trainer(out: Path, epochs: int = 4, shuffle: bool = True):  # -> Trainer
    from torchmetrics.classification import MulticlassF1Score

    from trainforge import TaskSpec, Trainer, TrainingConfig

    cfg = TrainingConfig(epochs=epochs, batch_size=8, learning_rate=0.05, warmup_steps=0, shuffle=shuffle,
                         output_dir=str(out / "run"), monitor="val/f1", monitor_mode="max", progress_bar=False,
                         track_runs=False, plots=False, export_bundle=False, seed=0)
    task = TaskSpec.vision_classification(name="toy", num_classes=CLASSES, image_size=4, num_channels=1)
    metrics = {"f1": MulticlassF1Score(num_classes=CLASSES, average="macro"), "hand_f1": HandF1()}
    return Trainer(make_model(), None, cfg, task, metrics=metrics)


def out_dir() -> Path:
    """The ``--out`` directory of a torchrun'd test script (created; every rank gets the same)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def main() -> None:
    out = out_dir()
    import torch.distributed as dist

    from trainforge.distributed.env import shutdown

    trainer = make_trainer(out)
    results = trainer.train(make_data(96, seed=0), make_data(37, seed=1))  # 37: shards of unequal size
    evaluated = trainer.evaluate(make_data(37, seed=1))
    rank = dist.get_rank() if dist.is_initialized() else 0
    if rank == 0:
        torch.save(results["final_model_state"], out / "final.pt")
        (out / "results.json").write_text(json.dumps({
            "history": results["metrics_summary"].to_dict("records"),
            "best_epoch": results["best_epoch"], "world_size": results["world_size"], "evaluate": evaluated}))
    shutdown()  # every rank waits for the others, then leaves the process group


if __name__ == "__main__":
    main()
