"""A real tiny GPT trained for real: the results dict, the run directory, the epoch numbering."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer


def test_results_have_the_quick_reference_keys_and_epochs_are_one_based(lm_blocks):
    model, cfg = tiny_gpt()
    config = quiet_config(epochs=3, checkpoint_dir="ckpt", checkpoint_frequency=2)
    results = Trainer(model, cfg, config, lm_task()).train(lm_blocks[:40], lm_blocks[40:])

    assert len(results["loss_history"]) == 3 and all(isinstance(x, float) for x in results["loss_history"])
    assert results["loss_history"][-1] < results["loss_history"][0]  # it learned something
    df = results["metrics_summary"]
    assert isinstance(df, pd.DataFrame)
    assert list(df["epoch"]) == [1, 2, 3]
    for column in ("train/loss", "val/loss", "val/perplexity", "val/accuracy", "lr", "epoch_time_s", "tokens_per_s"):
        assert column in df.columns
    assert torch.isclose(torch.tensor(df["val/perplexity"].iloc[-1]), torch.tensor(df["val/loss"].iloc[-1]).exp())
    best = results["best_epoch"]
    assert best == int(df["val/loss"].idxmin()) + 1
    # epoch_2 (frequency) and epoch_3 (the final epoch, always) plus best.pt; best_epoch names a file.
    names = sorted(Path(p).name for p in results["checkpoint_paths"])
    assert names == ["best.pt", "epoch_2.pt", "epoch_3.pt"]
    assert results["best_checkpoint"].endswith("best.pt")
    best_state = torch.load(results["best_checkpoint"], weights_only=True)["state"]
    assert best_state["epoch"] == best
    assert set(results["final_model_state"]) == set(model.state_dict())
    assert all(v.device.type == "cpu" for v in results["final_model_state"].values())
    assert results["attention_implementation"] == "sdpa"
    assert results["precision"] == "fp32"


def test_run_directory_holds_config_metrics_and_summary(lm_blocks):
    model, cfg = tiny_gpt()
    results = Trainer(model, cfg, quiet_config(run_name="my-run"), lm_task()).train(lm_blocks)
    run_dir = Path(results["run_dir"])
    assert run_dir == Path("runs/my-run")
    assert (run_dir / "config.yaml").is_file()
    assert json.loads((run_dir / "task_spec.json").read_text())["vocab_size"] == 32
    assert json.loads((run_dir / "model_config.json").read_text())["d_model"] == 32
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch") and len(rows) == 3
    # No validation data: best epoch is chosen by train/loss.
    assert results["best_epoch"] == results["loss_history"].index(min(results["loss_history"])) + 1


def test_no_checkpoint_files_without_checkpoint_dir(lm_blocks):
    model, cfg = tiny_gpt()
    results = Trainer(model, cfg, quiet_config(epochs=1), lm_task()).train(lm_blocks)
    assert results["checkpoint_paths"] == []
    assert not list(Path(".").glob("**/*.pt"))


def test_validation_split_is_seeded_and_used(lm_blocks):
    model, cfg = tiny_gpt()
    results = Trainer(model, cfg, quiet_config(epochs=1, validation_split=0.25), lm_task()).train(lm_blocks)
    assert "val/loss" in results["metrics_summary"].columns


def test_max_steps_caps_training(lm_blocks):
    model, cfg = tiny_gpt()
    results = Trainer(model, cfg, quiet_config(epochs=5, max_steps=3), lm_task()).train(lm_blocks)
    assert results["global_step"] == 3
    assert len(results["loss_history"]) == 1


def test_early_stopping_stops_and_reports(lm_blocks):
    model, cfg = tiny_gpt()
    # lr 0 makes val/loss constant, so no epoch improves on the first.
    config = quiet_config(epochs=10, learning_rate=1e-12, early_stopping_patience=2)
    results = Trainer(model, cfg, config, lm_task()).train(lm_blocks[:40], lm_blocks[40:])
    assert results["epochs_completed"] == 3
    assert "early stopping" in results["stop_reason"]


def test_callbacks_see_events_in_order_and_can_stop(lm_blocks):
    from trainforge import Event

    seen: list[str] = []

    class Recorder:
        def __getattr__(self, name):
            if name.startswith("on_"):
                return lambda state: seen.append(name[3:])
            raise AttributeError(name)

    class StopAfterFirstEpoch:
        def on_epoch_end(self, state):
            state.request_stop("enough")

    model, cfg = tiny_gpt()
    config = quiet_config(epochs=3, batch_size=24, checkpoint_dir="c")
    results = Trainer(model, cfg, config, lm_task(), callbacks=[Recorder(), StopAfterFirstEpoch()]).train(
        lm_blocks[:40], lm_blocks[40:]
    )
    assert results["epochs_completed"] == 1 and results["stop_reason"] == "enough"
    assert seen[:4] == ["fit_start", "epoch_start", "step_end", "step_end"]
    assert seen[4:] == ["eval_end", "epoch_end", "checkpoint_saved", "checkpoint_saved", "fit_end"]
    assert {e.value for e in Event} >= set(seen)
