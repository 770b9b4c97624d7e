"""``TrainingConfig(eval_every_n_steps=N)``: validation mid-epoch, its rows everywhere, best.pt and early stopping on
them, exact resume across them."""

from __future__ import annotations

import copy
import json
import math
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import IterableDataset

from tests.helpers import lm_task, quiet_config, tiny_gpt
from tests.trainer import eval_steps_child as child
from trainforge import Trainer
from trainforge.tracking.db import RunDB
from trainforge.trainer.monitor import Monitor


class WeightsAtEval:
    """Keeps a copy of the model's weights at each mid-epoch validation (the weights its row is of)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.by_step = model, {}

    def on_eval_end(self, state) -> None:
        if state.last_metrics.get("mid_epoch"):
            self.by_step[state.global_step] = copy.deepcopy(self.model.state_dict())


def _evaluate_at(weights, data) -> dict[str, float]:
    model, cfg = tiny_gpt()
    model.load_state_dict(weights)
    return Trainer(model, cfg, quiet_config(), lm_task()).evaluate(data)


def _val_of(row: dict) -> dict:
    return {k: v for k, v in row.items() if k.startswith("val/")}


def test_mid_epoch_rows_reach_steps_jsonl_wandb_and_the_database_with_evaluate_values(lm_blocks, monkeypatch,
                                                                                      tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    model, cfg = tiny_gpt()
    keep = WeightsAtEval(model)
    # 40 samples / batch 8 = 5 steps per epoch: evaluations at steps 2, 4 | 6, 8 (5 and 10 are epoch ends, validated
    # there anyway)
    config = quiet_config(epochs=2, eval_every_n_steps=2, log_every_n_steps=3, use_wandb=True,
                          output_dir=str(tmp_path / "runs" / "mid"), run_name="mid")
    trainer = Trainer(model, cfg, config, lm_task(), callbacks=[keep])
    results = trainer.train(lm_blocks[:40], lm_blocks[40:])

    rows = results["eval_history"]
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert [r["epoch"] for r in rows] == [1, 1, 2, 2]
    assert [r["epoch_progress"] for r in rows] == [0.4, 0.8, 0.2, 0.6]
    assert all(r["mid_epoch"] is True for r in rows)
    for row in rows:  # each row is the evaluation of the weights at its step
        assert _val_of(row) == _evaluate_at(keep.by_step[row["step"]], lm_blocks[40:])
        assert set(_val_of(row)) == {"val/loss", "val/perplexity", "val/accuracy"}
    assert [r["step"] for r in results["metrics_summary"].to_dict("records")] == [5, 10]  # epoch rows unchanged

    run_dir = Path(results["run_dir"])
    lines = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    assert [line for line in lines if line.get("mid_epoch")] == rows

    from tests.wandb_records import read_wandb_records

    (log,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    history = {}
    for rec in read_wandb_records(log):
        if rec.WhichOneof("record_type") == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}
            history.setdefault(items["_step"], {}).update(items)
    for row in rows:
        assert {k: history[row["step"]][k] for k in _val_of(row)} == _val_of(row)
        assert history[row["step"]]["mid_epoch"] is True

    db_rows = RunDB(tmp_path / "runs" / "trainforge_runs.db").run("mid")["evals"]
    assert db_rows == rows
    assert RunDB(tmp_path / "runs" / "trainforge_runs.db").evals("mid")["step"].tolist() == [2, 4, 6, 8]


def test_validation_does_not_change_training(lm_blocks):
    def run(**extra):
        model, cfg = tiny_gpt(dropout=0.1, seed=1)  # dropout: the RNG must be untouched by validation
        return Trainer(model, cfg, quiet_config(epochs=2, batch_size=4, **extra), lm_task()).train(
            lm_blocks[:40], lm_blocks[40:])

    plain, validated = run(), run(eval_every_n_steps=1)
    assert len(validated["eval_history"]) == 18  # every step but the two epoch ends
    assert plain["loss_history"] == validated["loss_history"]
    for key, value in plain["final_model_state"].items():
        assert torch.equal(value, validated["final_model_state"][key]), key


def _diverging_run(lm_blocks, directory: str, callbacks=(), resume=None, **extra):
    """Trained on the repeating pattern, validated on uniform noise: the model grows confident in the pattern, so
    the validation loss gets worse, and the best evaluation comes early (mid-epoch)."""
    model, cfg = tiny_gpt(dropout=0.1)  # dropout: a resume must restore the RNG exactly
    noise = torch.randint(0, 32, (16, 16), generator=torch.Generator().manual_seed(5))
    config = quiet_config(epochs=2, eval_every_n_steps=1, checkpoint_dir=directory, learning_rate=3e-2, **extra)
    trainer = Trainer(model, cfg, config, lm_task(), callbacks=list(callbacks))
    return model, trainer.train(lm_blocks[:40], noise, resume_from=resume)


def test_best_checkpoint_follows_a_mid_epoch_best(lm_blocks):
    model, results = _diverging_run(lm_blocks, "ck")
    evaluations = sorted([*results["eval_history"], *results["metrics_summary"].to_dict("records")],
                         key=lambda r: r["step"])
    monitor, best = Monitor("val/loss"), None
    for row in evaluations:  # the one rule, over every evaluation in order
        if monitor.improved(None if best is None else best["val/loss"], row["val/loss"]):
            best = row
    assert best is not None and best.get("mid_epoch")  # the case this test is about
    assert (results["best_metric"], results["best_step"], results["best_epoch"]) == (
        best["val/loss"], best["step"], best["epoch"])
    saved = torch.load(Path("ck") / "best.pt", weights_only=False)
    assert saved["state"]["global_step"] == best["step"]
    assert saved["state"]["batches_in_epoch"] > 0  # a mid-epoch (step) checkpoint
    assert not list(Path("ck").glob("step_*.pt"))  # only best.pt: no periodic step checkpoints were asked for
    model, _ = tiny_gpt(dropout=0.1)
    model.load_state_dict(saved["model"])
    noise = torch.randint(0, 32, (16, 16), generator=torch.Generator().manual_seed(5))
    assert Trainer(model, None, quiet_config(), lm_task()).evaluate(noise)["val/loss"] == best["val/loss"]
    # best.pt is a full mid-epoch checkpoint: a run resumed from it ends like the uninterrupted one
    Path("again").mkdir()
    shutil.copy(Path("ck") / "best.pt", Path("again") / "best.pt")
    _, resumed = _diverging_run(lm_blocks, "again", resume=str(Path("again") / "best.pt"))
    assert resumed["eval_history"] == results["eval_history"] and resumed["best_step"] == results["best_step"]
    for key, value in results["final_model_state"].items():
        assert torch.equal(resumed["final_model_state"][key], value), key


def test_early_stopping_counts_mid_epoch_evaluations(lm_blocks):
    _, results = _diverging_run(lm_blocks, "ck", early_stopping_patience=2)
    rows = results["eval_history"]
    # the first point where two evaluations in a row did not improve, by the one rule
    monitor, best, bad, stop = Monitor("val/loss"), None, 0, None
    for row in rows:
        if monitor.improved(best, row["val/loss"]):
            best, bad = row["val/loss"], 0
        else:
            bad += 1
            if bad == 2:
                stop = row["step"]
                break
    assert stop is not None and stop < 5  # stopped mid-epoch 1 (5 steps per epoch): the case under test
    assert results["global_step"] == stop and rows[-1]["step"] == stop
    assert results["epochs_completed"] == 0
    assert results["stop_reason"].startswith("early stopping: val/loss did not improve")
    assert (Path("ck") / f"step_{stop:08d}.pt").exists()  # the stop is resumable


def test_a_run_killed_between_two_mid_epoch_evaluations_resumes_bitwise(tmp_path):
    script = Path(child.__file__)
    env_path = str(Path(__file__).resolve().parents[2] / "src")
    killed = subprocess.run([sys.executable, str(script), str(tmp_path / "a"), "5"], capture_output=True, text=True,
                            timeout=180, env={**__import__("os").environ, "PYTHONPATH": env_path})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    ck = tmp_path / "a" / "ck"
    # killed at step 5: after the evaluation of step 3 and the checkpoint of step 4, before the evaluation of step 6
    assert (ck / "step_00000004.pt").exists() and not (ck / "step_00000006.pt").exists()
    assert torch.load(ck / "step_00000004.pt", weights_only=False)["state"]["eval_history"][-1]["step"] == 3

    resumed = child.outcome(child.train(tmp_path / "a"))
    full = child.outcome(child.train(tmp_path / "b"))
    assert [r["step"] for r in full["eval_history"]] == [3, 6, 9, 12, 15, 18]
    for key in ("history", "eval_history", "best", "stop_reason"):
        assert resumed[key] == full[key], key
    for name in ("weights", "best_weights"):
        assert resumed[name].keys() == full[name].keys()
        for key, value in full[name].items():
            assert torch.equal(resumed[name][key], value), (name, key)


class Stream(IterableDataset):
    """Token blocks of unknown length (no ``__len__``)."""

    def __init__(self, blocks: torch.Tensor) -> None:
        self.blocks = blocks

    def __iter__(self):
        yield from self.blocks


@pytest.mark.filterwarnings("ignore:The training data has no length")  # (the constant learning rate is fine here)
@pytest.mark.parametrize("n, evaluated_at", [(40, [2, 4]), (48, [2, 4, 6])])
def test_a_one_epoch_stream_is_validated_several_times(lm_blocks, n, evaluated_at):
    from trainforge.callbacks.early_stopping import EarlyStopping

    model, cfg = tiny_gpt()
    config = quiet_config(epochs=1, eval_every_n_steps=2, max_steps=None)
    patience = EarlyStopping(patience=10, monitor="val/loss")
    trainer = Trainer(model, cfg, config, lm_task(), callbacks=[patience])
    results = trainer.train(Stream(lm_blocks[:n]), lm_blocks[40:])
    rows = results["eval_history"]
    assert [r["step"] for r in rows] == evaluated_at
    # early stopping counted each evaluation once (the epoch end at an evaluation step is that same evaluation)
    evaluations = list(rows)
    if n // 8 not in evaluated_at:  # the epoch end is a validation of its own
        evaluations += results["metrics_summary"].to_dict("records")
    monitor, best, bad = Monitor("val/loss"), None, 0
    for row in evaluations:
        if monitor.improved(best, row["val/loss"]):
            best, bad = row["val/loss"], 0
        else:
            bad += 1
    assert (patience.best, patience.bad_epochs) == (best, bad)
    assert all("epoch_progress" not in r for r in rows)  # the stream's length is unknown
    (epoch,) = results["metrics_summary"].to_dict("records")
    assert epoch["step"] == n // 8
    # the epoch row is the final weights' validation (when the stream ended at an evaluation step, that one's)
    assert _val_of(epoch) == trainer.evaluate(lm_blocks[40:])
    assert math.isfinite(epoch["val/loss"])


def test_bad_eval_every_n_steps_is_refused_with_the_fix():
    from trainforge.config import TrainingConfig
    from trainforge.errors import ConfigError

    with pytest.raises(ConfigError, match=r"eval_every_n_steps: must be at least 1 or None, got 0"):
        TrainingConfig(eval_every_n_steps=0)


def test_the_lightning_path_refuses_eval_every_n_steps_by_name(lm_blocks, tmp_path):
    pytest.importorskip("lightning")
    from trainforge.errors import ConfigError
    from trainforge.lightning import TrainingCoordinator

    model, _ = tiny_gpt()
    cfg = quiet_config(epochs=1, device="cpu", eval_every_n_steps=2, output_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"eval_every_n_steps=2: not applied by TrainingCoordinator"):
        TrainingCoordinator(cfg, lm_task()).train(model, train_data=lm_blocks[:40], val_data=lm_blocks[40:])
    assert not (tmp_path / "run").exists()


def test_the_lightning_path_refuses_named_validation_sets_by_name(lm_blocks, tmp_path):
    pytest.importorskip("lightning")
    from trainforge.errors import ConfigError
    from trainforge.lightning import TrainingCoordinator

    model, _ = tiny_gpt()
    cfg = quiet_config(epochs=1, device="cpu", output_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"val_data: named validation sets .*\['wiki', 'code'\].*Fix: pass one set"):
        TrainingCoordinator(cfg, lm_task()).train(model, train_data=lm_blocks[:40],
                                                  val_data={"wiki": lm_blocks[40:44], "code": lm_blocks[44:]})
    assert not (tmp_path / "run").exists()


def test_tensorboard_and_mlflow_put_mid_epoch_values_in_the_epoch_rows_series(lm_blocks, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    model, cfg = tiny_gpt()
    config = quiet_config(eval_every_n_steps=2, loggers=["tensorboard", "mlflow"], run_name="both",
                          output_dir="runs/both")
    results = Trainer(model, cfg, config, lm_task()).train(lm_blocks[:40], lm_blocks[40:])
    mid = {r["step"]: r["val/loss"] for r in results["eval_history"]}
    ends = {r["step"]: r["val/loss"] for r in results["metrics_summary"].to_dict("records")}
    expected = sorted({**mid, **ends}.items())  # one val/loss series: steps 2, 4, 5 (epoch 1), 6, 8, 10 (epoch 2)
    assert [s for s, _ in expected] == [2, 4, 5, 6, 8, 10]

    (events,) = Path("runs/both/tensorboard").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("val/loss")] == [(s, pytest.approx(v, rel=1e-6)) for s, v in expected]
    assert "epoch/val/loss" not in acc.Tags()["scalars"] and "mid_epoch" not in acc.Tags()["scalars"]

    client = MlflowClient(tracking_uri=f"file:{Path('runs/mlruns').resolve()}")
    (run,) = client.search_runs([client.get_experiment_by_name("trainforge").experiment_id])
    history = client.get_metric_history(run.info.run_id, "val/loss")
    assert sorted((m.step, m.value) for m in history) == [(s, pytest.approx(v)) for s, v in expected]
