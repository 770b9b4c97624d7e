"""The sweep in W&B's documentation searches ``optimizer: {values: [adam, sgd]}``: it validates and runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from trainforge.sweeps import load_sweep, run_sweep

# W&B's "Define a sweep configuration" example (docs.wandb.ai/models/sweeps/define-sweep-configuration), as written
# there but for the metric, named as trainforge logs it. Its `program: train.py` is the user's training script, run
# with the agent's `--key=value` arguments (trainforge's script-trial contract, sweeps/script.py).
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

# The user's train.py, as W&B's docs shape it (argparse over the swept keys), training a tiny GPT with trainforge and
# its optimizer by name; it reports its epoch rows as JSON lines (report_metrics).
TRAIN_PY = """\
import argparse, os
import torch
from trainforge import TaskSpec, Trainer, TrainingConfig
from trainforge.models import GPT, GPTConfig
from trainforge.sweeps import report_metrics

parser = argparse.ArgumentParser()
parser.add_argument("--learning_rate", type=float)
parser.add_argument("--batch_size", type=int)
parser.add_argument("--epochs", type=int)
parser.add_argument("--optimizer")
args = parser.parse_args()
torch.manual_seed(0)
data = torch.randint(0, 32, (96, 16), generator=torch.Generator().manual_seed(0))
model = GPT(GPTConfig(vocab_size=32, max_seq_len=16, n_layer=1, n_head=2, d_model=32))
config = TrainingConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                        optimizer=args.optimizer, validation_split=0.25, progress_bar=False, track_runs=False,
                        plots=False, output_dir=os.path.join(os.environ["TRAINFORGE_TRIAL_DIR"], "run"))
task = TaskSpec.language_modeling(name="lm", vocab_size=32, max_seq_len=16)
report_metrics(Trainer(model, model.config, config, task).train(data))
"""


def test_the_wandb_documented_sweep_over_optimizers_validates_and_runs():
    Path("sweep.yaml").write_text(WANDB_DOC_SWEEP)
    Path("train.py").write_text(TRAIN_PY)
    spec = load_sweep("sweep.yaml")
    assert spec.method == "optuna" and spec.parameters["optimizer"].values == ["adam", "sgd"]
    result = run_sweep("sweep.yaml")
    table = pd.read_csv(Path(spec.output_dir) / "results.csv")
    assert len(table) == 3 and set(table["status"]) == {"completed"}, table
    assert set(table["optimizer"]) == {"adam", "sgd"}
    for row in table.itertuples():  # each trial trained with the optimizer it drew
        assert f"optimizer: {row.optimizer}\n" in (Path(row.run_dir) / "run" / "config.yaml").read_text()
    assert result.best is not None
