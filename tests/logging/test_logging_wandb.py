"""WandbLogger against the real ``wandb`` package in offline mode (no network), read back from disk."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.wandb_records import items_of, read_wandb_records
from trainforge.logging import build_loggers


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Offline, silent W&B with every file under tmp_path."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb_data"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return tmp_path


def test_offline_run_records_config_history_summary(offline: Path) -> None:
    from trainforge.logging.wandb_logger import WandbLogger

    run_dir = offline / "run"
    lg = WandbLogger(
        project="tf-test",
        run_name="tiny-offline",
        notes="a note",
        tags=["test", "cpu"],
        run_dir=run_dir,
        config={"lr": 1e-3, "model": {"d_model": 8}},
    )
    lg.log_config({"task": {"name": "lm", "vocab_size": 32}, "epochs": 2})
    lg.log_step({"train/loss": 3.0, "lr": 1e-3}, step=1)
    lg.log_step({"train/loss": 2.5, "lr": 9e-4}, step=2)
    lg.log_epoch({"epoch": 1, "train/loss": 2.75, "val/loss": 2.9, "val/perplexity": 18.2}, step=2)
    lg.log_step({"train/loss": 2.0, "lr": 5e-4}, step=4)
    lg.log_epoch({"epoch": 2, "train/loss": 2.1, "val/loss": 2.3}, step=4)
    lg.log_summary({"best_epoch": 2, "final_loss": 2.1, "run_dir": run_dir, "loss_history": [2.75, 2.1]})
    lg.close()
    lg.close()  # finish only once

    wandb_run_dir = lg.run_dir_path
    assert wandb_run_dir.parent == run_dir / "wandb"
    assert wandb_run_dir.name.startswith("offline-run-")
    assert lg.run_url is None
    log_files = list(wandb_run_dir.glob("run-*.wandb"))
    assert len(log_files) == 1

    records = read_wandb_records(log_files[0])
    by_type: dict[str, list[Any]] = {}
    for rec in records:
        by_type.setdefault(rec.WhichOneof("record_type"), []).append(rec)

    run = by_type["run"][0].run
    assert (run.project, run.display_name, run.notes, list(run.tags)) == (
        "tf-test",
        "tiny-offline",
        "a note",
        ["test", "cpu"],
    )
    config = items_of(run.config.update)
    for rec in by_type.get("config", []):
        config.update(items_of(rec.config.update))
    assert config["lr"] == 1e-3 and config["model"] == {"d_model": 8}
    assert config["task"] == {"name": "lm", "vocab_size": 32} and config["epochs"] == 2

    history = [items_of(rec.history.item) for rec in by_type["history"]]
    assert [h["_step"] for h in history] == [1, 2, 4]
    # The epoch row is logged at the step of the epoch's last step log, so W&B merges the two.
    assert history[1]["train/loss"] == 2.75 and history[1]["lr"] == 9e-4 and history[1]["val/perplexity"] == 18.2
    assert history[2]["epoch"] == 2 and history[2]["val/loss"] == 2.3

    summary: dict[str, Any] = {}
    for rec in by_type["summary"]:
        summary.update(items_of(rec.summary.update))
    assert summary["best_epoch"] == 2 and summary["final_loss"] == 2.1
    assert summary["run_dir"] == str(run_dir)  # paths are stringified
    assert "loss_history" not in summary  # only scalars go to the summary
    assert summary["val/loss"] == 2.3  # the last history values are in the summary too
    assert "exit" in by_type  # the run was finished

    # Older wandb versions (Python backend) also wrote these files in offline mode; wandb-core does not.
    summary_file = wandb_run_dir / "files" / "wandb-summary.json"
    if summary_file.exists():
        assert json.loads(summary_file.read_text())["best_epoch"] == 2
    config_file = wandb_run_dir / "files" / "config.yaml"
    if config_file.exists():
        assert "d_model" in config_file.read_text()


def test_two_trainings_in_one_process_get_two_runs(offline: Path) -> None:
    dirs = []
    for i in range(2):
        multi = build_loggers(
            run_dir=str(offline / f"run{i}"),
            total_epochs=1,
            use_wandb=True,
            wandb_project=None,
            wandb_entity=None,
            run_name=f"r{i}",
            notes=None,
            tags=None,
            console=False,
        )
        from trainforge.logging.wandb_logger import WandbLogger

        wb = multi.find(WandbLogger)
        assert wb is not None
        multi.log_step({"train/loss": float(i)}, step=1)
        multi.log_epoch({"epoch": 1, "train/loss": float(i)}, step=1)
        multi.close()
        dirs.append(wb.run_dir_path)
        records = read_wandb_records(next(wb.run_dir_path.glob("run-*.wandb")))
        runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        assert runs[0].project == "trainforge" and runs[0].display_name == f"r{i}"
        assert (offline / f"run{i}" / "metrics.csv").exists()
    assert dirs[0] != dirs[1]
    assert all(d.is_dir() for d in dirs)


def test_missing_wandb_raises_import_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from trainforge.logging.wandb_logger import WandbLogger

    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'trainforge\[wandb\]'.*use_wandb=False.*metrics\.csv") as info:
        WandbLogger(project="p", run_dir=tmp_path)
    assert isinstance(info.value.__cause__, ImportError)
    with pytest.raises(ImportError, match=r"trainforge\[wandb\]"):
        build_loggers(
            run_dir=str(tmp_path),
            total_epochs=1,
            use_wandb=True,
            wandb_project=None,
            wandb_entity=None,
            run_name=None,
            notes=None,
            tags=None,
        )
