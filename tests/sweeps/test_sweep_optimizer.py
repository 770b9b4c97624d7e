"""The sweep in W&B's documentation searches ``optimizer: {values: [adam, sgd]}``: it validates and runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.sweeps.sweep_helpers import FAST_DATA, FAST_MODEL
from trainforge.sweeps import load_sweep, run_sweep

# W&B's "Define a sweep configuration" example (docs.wandb.ai/models/sweeps/define-sweep-configuration), as written
# there but for: the metric, named as trainforge logs it; the sizes, cut so that it runs in seconds on a CPU; and
# model/data, which pick the tiny model and corpus slice of the other sweep tests (seed: a draw that tries both).
WANDB_DOC_SWEEP = """\
program: train.py
name: sweepdemo
method: bayes
metric:
  goal: minimize
  name: val/loss
parameters:
  learning_rate:
    min: 0.0001
    max: 0.1
  batch_size:
    values: [16, 32]
  epochs:
    values: [1]
  optimizer:
    values: ["adam", "sgd"]
run_cap: 3
seed: 2
"""


def test_the_wandb_documented_sweep_over_optimizers_validates_and_runs():
    Path("sweep.yaml").write_text(WANDB_DOC_SWEEP + f"model: {FAST_MODEL}\ndata: {FAST_DATA}\n"
                                  "base_config: {preset: tiny, max_train_samples: 48, max_val_samples: 16, "
                                  "progress_bar: false}\n")
    spec = load_sweep("sweep.yaml")
    assert spec.method == "optuna" and spec.parameters["optimizer"].values == ["adam", "sgd"]
    result = run_sweep("sweep.yaml")
    table = pd.read_csv(Path(spec.output_dir) / "results.csv")
    assert len(table) == 3 and set(table["status"]) == {"completed"}, table
    assert set(table["optimizer"]) == {"adam", "sgd"}
    for row in table.itertuples():  # each trial trained with the optimizer it drew
        assert f"optimizer: {row.optimizer}\n" in (Path(row.run_dir) / "config.yaml").read_text()
    assert result.best is not None
