"""TensorBoard, MLflow and W&B artefacts read back from what they wrote; only rank 0 writes; lazy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import lm_task, quiet_config, tiny_gpt
from tests.wandb_records import items_of, read_wandb_records
from trainforge import Trainer
from trainforge.logging import build_loggers


@pytest.fixture
def offline_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _train(lm_blocks, **overrides) -> dict[str, Any]:
    model, cfg = tiny_gpt()
    config = quiet_config(run_name="multi", output_dir="runs/multi", **overrides)
    return Trainer(model, cfg, config, lm_task()).train(lm_blocks[:40], lm_blocks[40:])


def test_tensorboard_event_files_read_back_with_tensorboards_reader(lm_blocks) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results = _train(lm_blocks, loggers=["tensorboard"])
    files = list(Path("runs/multi/tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    acc = EventAccumulator(str(files[0]))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "lr", "grad_norm", "tokens_per_s", "samples_per_s", "peak_mem_mb", "val/loss",
            "val/perplexity", "epoch/train/loss", "epoch/lr"} <= tags
    steps = [json.loads(line) for line in Path("runs/multi/steps.jsonl").read_text().splitlines()]
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [s["step"] for s in steps]
    assert [e.value for e in loss] == pytest.approx([s["train/loss"] for s in steps], rel=1e-6)
    val = acc.Scalars("val/loss")
    assert [e.step for e in val] == [5, 10]
    assert [e.value for e in val] == pytest.approx(results["val_loss_history"], rel=1e-6)
    assert [e.value for e in acc.Scalars("epoch/train/loss")] == pytest.approx(results["loss_history"], rel=1e-6)
    assert set(acc.Tags()["tensors"]) >= {"config/text_summary", "summary/text_summary"}


def test_mlflow_file_store_read_back_with_mlflow_client(lm_blocks, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = _train(lm_blocks, loggers=["mlflow"], tags=["smoke"])
    from mlflow.tracking import MlflowClient

    store = Path("runs/mlruns").resolve()
    assert store.is_dir()
    client = MlflowClient(tracking_uri=f"file:{store}")
    exp = client.get_experiment_by_name("trainforge")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "multi"
    assert run.data.params["training.learning_rate"] == "0.01" and run.data.params["task.name"] == "lm"
    assert run.data.tags["tag.smoke"] == "1"
    assert run.data.tags["trainforge.run_dir"] == str(Path("runs/multi").resolve())
    history = client.get_metric_history(run.info.run_id, "val/loss")
    assert [m.step for m in history] == [5, 10]
    assert [m.value for m in history] == pytest.approx(results["val_loss_history"])
    epoch_loss = client.get_metric_history(run.info.run_id, "epoch/train/loss")
    assert [m.value for m in epoch_loss] == pytest.approx(results["loss_history"])
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 5
    assert run.data.metrics["summary/best_epoch"] == results["best_epoch"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "summary.json"} <= artifacts
    local = client.download_artifacts(run.info.run_id, "config.json", "dl")
    assert json.loads(Path(local).read_text())["training"]["run_name"] == "multi"


def test_mlflow_two_runs_in_one_store_keep_their_own_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each logger remembers its own run's directory (a speed-up of the file store): interleaved runs in one
    process and one store must still land in their own run."""
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from mlflow.tracking import MlflowClient

    from trainforge.logging.mlflow_logger import MLflowLogger

    uri = f"file:{tmp_path / 'mlruns'}"
    a = MLflowLogger(tmp_path / "a", run_name="a", tracking_uri=uri)
    b = MLflowLogger(tmp_path / "b", run_name="b", tracking_uri=uri)
    for step in range(1, 4):
        a.log_step({"train/loss": float(step)}, step)
        b.log_step({"train/loss": 10.0 * step}, step)
        b.log_step({"lr": 0.5}, step)
    for logger in (a, b):
        logger.log_summary({"global_step": 3})
        logger.close()
    client = MlflowClient(tracking_uri=uri)
    assert [m.value for m in client.get_metric_history(a.run_id, "train/loss")] == [1.0, 2.0, 3.0]
    assert [m.value for m in client.get_metric_history(b.run_id, "train/loss")] == [10.0, 20.0, 30.0]
    assert client.get_metric_history(a.run_id, "lr") == [] and len(client.get_metric_history(b.run_id, "lr")) == 3


def test_wandb_gets_model_and_config_artifacts_and_a_summary_table(lm_blocks, offline_wandb) -> None:
    results = _train(lm_blocks, use_wandb=True, checkpoint_dir="ck")
    (log,) = Path("runs/multi/wandb").glob("offline-run-*/run-*.wandb")
    records = read_wandb_records(log)
    artifacts = {r.artifact.type: r.artifact for r in records if r.WhichOneof("record_type") == "artifact"}
    assert {"config", "model"} <= set(artifacts)
    assert {e.path for e in artifacts["config"].manifest.contents} == {"config.yaml", "task_spec.json",
                                                                       "model_config.json"}
    assert [e.path for e in artifacts["model"].manifest.contents] == ["best.pt"]
    assert artifacts["model"].name == "multi-model"
    summary: dict[str, Any] = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update(items_of(r.summary.update))
    table = summary["epochs"]
    assert table["_type"] == "table-file" and table["nrows"] == 2
    table_file = log.parent / "files" / table["path"]
    data = json.loads(table_file.read_text())
    epoch_col = data["columns"].index("epoch")
    loss_col = data["columns"].index("train/loss")
    assert [row[epoch_col] for row in data["data"]] == [1, 2]
    assert [row[loss_col] for row in data["data"]] == pytest.approx(results["loss_history"])
    assert summary["best_epoch"] == results["best_epoch"]


def test_loggers_config_accepts_wandb_by_name(lm_blocks, offline_wandb) -> None:
    _train(lm_blocks, loggers=["wandb", "csv"])
    assert list(Path("runs/multi/wandb").glob("offline-run-*/run-*.wandb"))


def test_non_zero_ranks_write_nothing(tmp_path: Path, offline_wandb) -> None:
    run_dir = tmp_path / "rank1"
    multi = build_loggers(run_dir=str(run_dir), total_epochs=1, use_wandb=True, wandb_project=None,
                          wandb_entity=None, run_name="r1", notes=None, tags=None, is_main_process=False,
                          loggers=["tensorboard", "mlflow", "wandb"])
    multi.log_config({"a": 1})
    multi.log_step({"train/loss": 1.0}, 1)
    multi.log_epoch({"epoch": 1, "train/loss": 1.0}, 1)
    multi.log_summary({"best_epoch": 1})
    multi.close()
    assert not run_dir.exists() and not (tmp_path / "mlruns").exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("wandb")] == []


def test_rank_1_training_writes_no_files_and_no_database(lm_blocks, monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-main process of a (simulated) 2-process run: its trainer writes nothing at all."""
    import trainforge.trainer.build as trainer_module
    from trainforge.distributed.env import DistEnv

    real = trainer_module.from_environment

    def rank_one(strategy: str) -> DistEnv:
        env = real(strategy)
        return _FakeRank1(env)

    monkeypatch.setattr(trainer_module, "from_environment", rank_one)
    model, cfg = tiny_gpt()
    Trainer(model, cfg, quiet_config(run_name="r1", loggers=["tensorboard", "mlflow"]), lm_task()).train(lm_blocks[:40])
    assert [p for p in Path(".").rglob("*") if p.is_file()] == []


class _FakeRank1:
    """The single-process environment, except that it says it is not the main process."""

    def __init__(self, env: Any) -> None:
        self._env = env

    @property
    def is_main(self) -> bool:
        return False

    @property
    def rank(self) -> int:
        return 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


def test_unknown_logger_is_a_config_error() -> None:
    from trainforge.config import TrainingConfig
    from trainforge.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean 'tensorboard'"):
        TrainingConfig(loggers=["tensorbord"])


def test_optional_backends_are_not_imported_by_trainforge() -> None:
    code = ("import sys, json, torch; base = set(sys.modules); import trainforge, trainforge.logging, "
            "trainforge.tracking; from trainforge import Trainer; "
            "print(json.dumps(sorted(m for m in set(sys.modules) - base)))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}).stdout
    added = set(json.loads(out.splitlines()[-1]))
    roots = {m.split(".")[0] for m in added}
    assert not roots & {"wandb", "tensorboard", "mlflow", "matplotlib", "pandas", "sqlite3", "_sqlite3"}, roots
    assert not added & {"trainforge.tracking.db", "trainforge.tracking.plots", "trainforge.logging.wandb_logger",
                        "trainforge.logging.tensorboard_logger", "trainforge.logging.mlflow_logger"}
