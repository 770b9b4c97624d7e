"""use_wandb=True logs to a real W&B run (offline): config, step and epoch metrics, the final summary."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import lm_task, quiet_config, tiny_gpt
from tests.wandb_records import items_of, read_wandb_records
from trainforge import Trainer


def test_training_with_wandb_writes_a_real_offline_run(lm_blocks, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    model, cfg = tiny_gpt()
    config = quiet_config(epochs=2, use_wandb=True, wandb_project="tf-project", run_name="wb-run", notes="n1",
                          tags=["a"], log_every_n_steps=1)
    results = Trainer(model, cfg, config, lm_task()).train(lm_blocks[:40], lm_blocks[40:])

    (log,) = Path(results["run_dir"]).glob("wandb/offline-run-*/run-*.wandb")
    records = read_wandb_records(log)
    kinds: dict[str, list] = {}
    for rec in records:
        kinds.setdefault(rec.WhichOneof("record_type"), []).append(rec)
    run = kinds["run"][0].run
    assert (run.project, run.display_name, run.notes) == ("tf-project", "wb-run", "n1")
    config_items = items_of(run.config.update)
    for rec in kinds.get("config", []):
        config_items.update(items_of(rec.config.update))
    assert config_items["training"]["learning_rate"] == 1e-2
    assert config_items["task"]["vocab_size"] == 32 and config_items["model"]["d_model"] == 32

    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}
               for rec in kinds["history"]]
    steps = [h for h in history if "grad_norm" in h]
    assert len(steps) == results["global_step"]  # one row per optimizer step at log_every_n_steps=1
    epochs = [h for h in history if "epoch" in h]
    assert [h["epoch"] for h in epochs] == [1, 2]
    assert epochs[-1]["val/loss"] == results["metrics_summary"]["val/loss"].iloc[-1]
    summary = {}
    for rec in kinds.get("summary", []):
        summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.summary.update})
    assert summary["best_epoch"] == results["best_epoch"]
    assert summary["final_loss"] == results["final_loss"]
