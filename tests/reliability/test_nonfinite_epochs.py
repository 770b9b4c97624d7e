"""Non-finite epochs and the monitored metric: NaN is shown as NaN and is never "best"; ``monitor`` is checked.

A real tiny GPT is trained; NaN is injected by a model that turns its logits NaN during chosen epochs (in training
or in validation), told the epoch by a callback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from tests.helpers import lm_task, quiet_config, tiny_gpt
from tests.wandb_records import read_wandb_records
from trainforge import ConfigError, Trainer
from trainforge.callbacks import EarlyStopping
from trainforge.checkpoint.io import safe_load
from trainforge.tracking.db import RunDB
from trainforge.trainer.monitor import Monitor


class NanEpochs(nn.Module):
    """The tiny GPT, with NaN logits in the training (``train``) or validation (``val``) forwards of the chosen
    1-based epochs. It is passed as a callback too, to learn the epoch."""

    def __init__(self, train: set[int] = frozenset(), val: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        super().__init__()
        self.gpt, self.config = tiny_gpt(seed=1)
        self.train_epochs, self.val_epochs, self.epoch = set(train), set(val), 0

    def on_epoch_start(self, state) -> None:
        self.epoch = state.epoch + 1

    def forward(self, input_ids):
        logits = self.gpt(input_ids)
        if self.epoch in (self.train_epochs if self.training else self.val_epochs):
            return logits * float("nan")
        return logits


class Saved:
    """Records (kind of file, epoch) for every checkpoint the run writes."""

    def __init__(self) -> None:
        self.files: list[tuple[str, int]] = []

    def on_checkpoint_saved(self, state) -> None:
        self.files.append((Path(state.checkpoint_path).stem.split("_")[0], state.epoch))


def _train(model: NanEpochs, data, val=None, callbacks=(), **overrides):
    config = quiet_config(**{"epochs": 3, "batch_size": 4, "shuffle": False, **overrides})
    return Trainer(model, model.config, config, lm_task(), callbacks=[model, *callbacks]).train(data, val)


def test_an_epoch_without_a_finite_step_logs_nan_and_is_never_best(lm_blocks, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    saved = Saved()
    # Every step of epoch 2 is NaN and skipped (a long streak allowed: no rollback); train/loss is monitored.
    results = _train(NanEpochs(train={2}), lm_blocks[:40], callbacks=[saved], epochs=2, nan_max_consecutive=100,
                     checkpoint_dir="ck", run_name="nan-epoch", use_wandb=True, log_every_n_steps=5)
    assert results["monitor"] == "train/loss"
    assert results["skipped_steps"] == 10 and results["nan_rollbacks"] == 0
    first, second = results["loss_history"]
    assert math.isfinite(first) and math.isnan(second)  # not 0.0 (0 / max(0, 1)), which would have been "best"
    assert results["best_epoch"] == 1 and results["best_metric"] == first
    assert ("best", 1) in saved.files and ("best", 2) not in saved.files
    best = safe_load(Path("ck") / "best.pt")
    assert best["state"]["epoch"] == 1 and best["state"]["best_epoch"] == 1
    assert results["metrics_summary"]["non_finite"].tolist()[-1] == "train/loss"

    run_dir = Path(results["run_dir"])
    csv = pd.read_csv(run_dir / "metrics.csv")
    assert math.isfinite(csv["train/loss"][0]) and math.isnan(csv["train/loss"][1])
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    assert [math.isnan(s["train/loss"]) for s in steps] == [False, False, True, True]  # steps 5, 10 | 15, 20
    db_rows = RunDB(run_dir.parent / "trainforge_runs.db").run("nan-epoch")["epochs"]
    assert math.isfinite(db_rows[0]["train/loss"]) and math.isnan(db_rows[1]["train/loss"])
    assert db_rows[1]["non_finite"] == "train/loss"
    (log,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}
               for rec in read_wandb_records(log) if rec.WhichOneof("record_type") == "history"]
    epochs = [h for h in history if "epoch" in h]
    assert math.isfinite(epochs[0]["train/loss"]) and math.isnan(epochs[1]["train/loss"])
    assert "epoch 2/2 | train/loss NaN | non_finite train/loss |" in capsys.readouterr().out


def test_a_nan_validation_epoch_is_never_best_and_counts_as_no_improvement(lm_blocks):
    # Epoch 1's validation is NaN, then the run improves: best.pt and early stopping follow the finite epochs.
    saved = Saved()
    results = _train(NanEpochs(val={1}), lm_blocks[:40], lm_blocks[40:], callbacks=[saved], epochs=4,
                     early_stopping_patience=2, checkpoint_dir="ck")
    val = results["val_loss_history"]
    assert math.isnan(val[0]) and all(math.isfinite(v) for v in val[1:]) and val[1] > val[2] > val[3]
    assert results["epochs_completed"] == 4 and results["stop_reason"] is None  # not stopped as "not improving"
    assert results["best_epoch"] == 4 and results["best_metric"] == val[3]
    assert [e for kind, e in saved.files if kind == "best"] == [2, 3, 4]
    assert results["metrics_summary"]["non_finite"].tolist()[0] == "val/loss"

    # A NaN validation between finite ones counts as an epoch without improvement for early stopping.
    stopped = _train(NanEpochs(val={2}), lm_blocks[:40], lm_blocks[40:], epochs=4, early_stopping_patience=1)
    assert stopped["epochs_completed"] == 2 and stopped["stop_reason"].startswith("early stopping: val/loss did not")
    assert stopped["best_epoch"] == 1


def test_a_monitor_typo_is_refused_before_step_0_with_a_suggestion(lm_blocks):
    model, cfg = tiny_gpt()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ConfigError, match=r"monitor: 'val/los' is not a metric this run logs.*did you mean "
                                          r"'val/loss'\? Use one of: 'train/loss', 'val/loss', 'val/perplexity'"):
        Trainer(model, cfg, quiet_config(monitor="val/los", output_dir="run"), lm_task()).train(lm_blocks[:40],
                                                                                               lm_blocks[40:])
    assert not Path("run").exists()  # nothing was written: the check comes before the run starts
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ConfigError, match=r"monitor: 'val/accuracy' .* Fix: pass val_data"):
        Trainer(model, cfg, quiet_config(monitor="val/accuracy"), lm_task()).train(lm_blocks[:40])


def test_the_monitor_rule_with_min_delta_and_non_finite_values():
    lower = Monitor("val/loss", "min", min_delta=0.1)
    assert lower.improved(None, 5.0) and lower.improved(5.0, 4.8) and not lower.improved(5.0, 4.95)
    assert not lower.improved(None, math.nan) and not lower.improved(5.0, math.inf)
    assert lower.improved(math.nan, 5.0)  # a best stored as NaN by an older version is beaten by any finite value
    higher = Monitor("val/accuracy", "max")
    assert higher.improved(0.5, 0.6) and not higher.improved(0.5, 0.5) and not higher.improved(0.5, -math.inf)
    stopper = EarlyStopping(patience=5, monitor=lower)
    assert (stopper.monitor, stopper.min_delta, stopper.mode) == ("val/loss", 0.1, "min")


def test_the_lightning_path_uses_the_same_monitor(lm_blocks):
    pytest.importorskip("lightning")
    from trainforge.lightning.coordinator import TrainingCoordinator

    model, _ = tiny_gpt()
    with pytest.raises(ConfigError, match=r"'val/los' is not a metric .* did you mean 'val/loss'"):
        TrainingCoordinator(quiet_config(monitor="val/los", epochs=1), lm_task(), logger=False).train(
            model, train_data=lm_blocks[:40], val_data=lm_blocks[40:])
