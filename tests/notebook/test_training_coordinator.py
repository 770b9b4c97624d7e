"""``TrainingCoordinator``: a real Lightning ``Trainer`` with trainforge's loss, metrics and optimizer settings."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch

pytest.importorskip("lightning")

from tests.helpers import lm_task, quiet_config, tiny_gpt  # noqa: E402
from trainforge import Trainer  # noqa: E402
from trainforge.data.lightning_module import SimpleDataModule  # noqa: E402
from trainforge.lightning import TrainingCoordinator  # noqa: E402

QUICK_REFERENCE_KEYS = {"loss_history", "metrics_summary", "best_epoch", "checkpoint_paths", "final_model_state"}


def test_quick_reference_verification_snippet_prints_the_documented_class(tmp_path) -> None:
    from tests.notebook.kernel import REPO

    code = "from utils.training.training_core import TrainingCoordinator\nprint(TrainingCoordinator)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "<class 'utils.training.training_core.TrainingCoordinator'>"
    from utils.training.training_core import TrainingCoordinator as Documented

    assert issubclass(Documented, TrainingCoordinator)


def test_coordinator_trains_with_simple_data_module_and_matches_the_trainer(lm_blocks) -> None:
    task = lm_task()
    cfg = quiet_config(epochs=2, batch_size=8, shuffle=False, device="cpu", max_grad_norm=1.0)
    train, val = lm_blocks[:40], lm_blocks[40:]

    model, model_config = tiny_gpt()
    module = SimpleDataModule(train, val, task, batch_size=8, shuffle=False)
    results = TrainingCoordinator(cfg, task).train(model, datamodule=module)

    assert results.keys() >= QUICK_REFERENCE_KEYS
    df = results["metrics_summary"]
    assert isinstance(df, pd.DataFrame) and df["epoch"].tolist() == [1, 2]
    assert {"train/loss", "val/loss", "val/perplexity", "val/accuracy", "lr"} <= set(df.columns)
    assert len(results["loss_history"]) == 2 and results["loss_history"][1] < results["loss_history"][0]
    assert results["best_epoch"] in (1, 2) and results["backend"] == "lightning"
    assert results["global_step"] == 10 and results["epochs_completed"] == 2

    # The same data order, loss, AdamW groups, schedule and clipping as trainforge's own loop: same weights.
    reference_model, _ = tiny_gpt()
    reference = Trainer(reference_model, model_config, cfg, task).train(train, val)
    for key, value in reference["final_model_state"].items():
        torch.testing.assert_close(results["final_model_state"][key], value, rtol=0, atol=2e-4)  # Adam amplifies float-order noise
    assert results["loss_history"] == pytest.approx(reference["loss_history"], rel=1e-5)
    assert results["val_loss_history"] == pytest.approx(reference["val_loss_history"], rel=1e-5)


def test_coordinator_takes_raw_data_and_saves_lightning_checkpoints(lm_blocks, tmp_path) -> None:
    task = lm_task()
    cfg = quiet_config(epochs=1, batch_size=8, device="cpu", checkpoint_dir=str(tmp_path / "ck"))
    model, _ = tiny_gpt()
    results = TrainingCoordinator(cfg).train(model, train_data=lm_blocks, task_spec=task)
    assert results["checkpoint_paths"] and results["checkpoint_paths"][0].endswith(".ckpt")
    assert results["val_loss_history"] == [] and results["best_epoch"] == 1  # no validation: train/loss monitored
