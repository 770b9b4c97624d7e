"""``TrainingCoordinator`` honours every ``TrainingConfig`` field that has a meaning in Lightning (each checked in
its output here) and refuses the rest by name, before fitting; its checkpoints are named 1-based and
``checkpoint_paths`` lists only this run's files."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

pytest.importorskip("lightning")

from tests.helpers import lm_task, quiet_config, tiny_gpt  # noqa: E402
from trainforge import Trainer  # noqa: E402
from trainforge.data.lightning_module import SimpleDataModule  # noqa: E402
from trainforge.errors import ConfigError  # noqa: E402
from trainforge.lightning import TrainingCoordinator  # noqa: E402
from trainforge.tracking.db import RunDB  # noqa: E402


@pytest.fixture
def offline_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var, sub in (("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config"), ("WANDB_DATA_DIR", "data")):
        monkeypatch.setenv(var, str(tmp_path / f"wandb_{sub}"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return tmp_path


def _wandb_records(run_dir: Path, timeout_s: float = 60.0) -> dict[str, list[Any]]:
    from tests.wandb_records import read_wandb_records

    # finish() returns once wandb's service has the exit record; on a busy machine its log file may appear a
    # moment later (the service writes through a buffer), so wait for it (a bound only to catch a hang).
    deadline = time.monotonic() + timeout_s
    while not (logs := list(run_dir.glob("run-*.wandb"))) and time.monotonic() < deadline:
        time.sleep(0.2)
    (log,) = logs
    by_type: dict[str, list[Any]] = {}
    for rec in read_wandb_records(log):
        by_type.setdefault(rec.WhichOneof("record_type"), []).append(rec)
    return by_type


def test_run_fields_data_fields_wandb_and_export_are_honoured(lm_blocks, offline_wandb: Path) -> None:
    from tests.wandb_records import items_of

    # validation_split, max_train_samples, max_val_samples and eval_batch_size shape the data as Trainer's do.
    data_fields = dict(validation_split=0.25, max_train_samples=24, max_val_samples=8, eval_batch_size=4)
    cfg = quiet_config(epochs=2, device="cpu", shuffle=False, **data_fields, run_name="coord",
                       output_dir="out/coord-run", use_wandb=True, wandb_project="coord-proj", notes="a note",
                       tags=["lightning"], loggers=["tensorboard"], export_bundle=True, export_formats=["safetensors"], export_dir="bundles")
    model, model_config = tiny_gpt()
    results = TrainingCoordinator(cfg, lm_task()).train(model, train_data=lm_blocks, model_config=model_config)

    reference_model, _ = tiny_gpt()
    reference_cfg = quiet_config(epochs=2, device="cpu", shuffle=False, **data_fields, track_runs=False, plots=False)
    reference = Trainer(reference_model, model_config, reference_cfg, lm_task()).train(lm_blocks)
    # 48 blocks: 12 split off for validation (8 used), 24 of the other 36 trained on -> 3 steps per epoch.
    assert results["global_step"] == reference["global_step"] == 6
    assert results["val_loss_history"] == pytest.approx(reference["val_loss_history"], rel=1e-5)
    assert results["loss_history"] == pytest.approx(reference["loss_history"], rel=1e-5)

    # output_dir is the run directory, with the Trainer's run files; the runs database has the finished run.
    run_dir = Path("out/coord-run")
    assert results["run_dir"] == str(run_dir) and results["run_name"] == "coord"
    assert {"config.yaml", "task_spec.json", "model_config.json", "metrics.csv"} <= {p.name for p in run_dir.iterdir()}
    assert pd.read_csv(run_dir / "metrics.csv")["epoch"].tolist() == [1, 2]
    run = RunDB(Path("out/trainforge_runs.db")).run("coord")
    assert run["status"] == "finished" and run["epochs_completed"] == 2 and run["config"]["validation_split"] == 0.25
    assert [row["epoch"] for row in run["epochs"]] == [1, 2]

    # export_bundle after fit, through the project's bundle code.
    assert results["export_status"] == "ok" and results["export_dir"] == str(Path("bundles/coord"))
    manifest = json.loads(Path("bundles/coord/manifest.json").read_text())
    assert manifest["ok"] == ["safetensors"] and manifest["run_name"] == "coord"
    assert json.loads(Path("bundles/coord/model_config.json").read_text())["d_model"] == 32

    # use_wandb / wandb_project / notes / tags: Lightning's WandbLogger, offline, under the run directory.
    assert results["loggers"] == ["WandbLogger", "TensorBoardLogger"]
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))  # loggers=["tensorboard"]
    wandb_dir = Path(results["wandb_run_dir"])
    assert wandb_dir.parent == run_dir.resolve() / "wandb" and wandb_dir.name.startswith("offline-run-")
    records = _wandb_records(wandb_dir)
    wandb_run = records["run"][0].run
    assert (wandb_run.project, wandb_run.display_name, wandb_run.notes, list(wandb_run.tags)) == (
        "coord-proj", "coord", "a note", ["lightning"])
    config = items_of(wandb_run.config.update)
    for rec in records.get("config", []):
        config.update(items_of(rec.config.update))
    assert config["learning_rate"] == cfg.learning_rate and config["max_train_samples"] == 24
    history = [items_of(rec.history.item) for rec in records["history"]]
    assert any("train/loss" in h for h in history) and any("val/loss" in h for h in history)
    assert "exit" in records  # the W&B run was finished: a second train() starts its own


def test_checkpoints_are_one_based_rotated_and_only_this_runs(lm_blocks, tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    ck.mkdir()
    other = [ck / "lightning-epoch_0.ckpt", ck / "epoch_9.ckpt"]  # another run's files in the same folder
    for path in other:
        path.write_bytes(b"not ours")
    cfg = quiet_config(epochs=3, device="cpu", shuffle=False, checkpoint_dir=str(ck), keep_last_n=2,
                       checkpoint_every_n_steps=7, track_runs=False, plots=False)
    module = SimpleDataModule(lm_blocks[:40], lm_blocks[40:], lm_task(), batch_size=8, shuffle=False)
    model, _ = tiny_gpt()
    results = TrainingCoordinator(cfg, lm_task()).train(model, datamodule=module)

    # 5 steps per epoch; written in order: epoch_1 (step 5), step_7, epoch_2 (10), step_14, epoch_3 (15), and
    # best.ckpt whenever val/loss improved. keep_last_n=2 keeps the two newest periodic files; best is never rotated.
    names = [Path(p).name for p in results["checkpoint_paths"]]
    assert names == ["step_00000014.ckpt", "epoch_3.ckpt", "best.ckpt"]
    assert not (ck / "epoch_1.ckpt").exists() and not (ck / "step_00000007.ckpt").exists()
    assert all(p.read_bytes() == b"not ours" for p in other)  # untouched, and not listed
    assert results["last_checkpoint"] == str(ck / "best.ckpt") and results["best_checkpoint"] == str(ck / "best.ckpt")

    # epoch_N.ckpt holds the state after N completed epochs (Lightning counts its own epoch field from 0).
    epoch3 = torch.load(ck / "epoch_3.ckpt", map_location="cpu", weights_only=False)
    assert (epoch3["epoch"], epoch3["global_step"]) == (2, 15)
    assert torch.load(ck / "step_00000014.ckpt", map_location="cpu", weights_only=False)["global_step"] == 14
    best = torch.load(ck / "best.ckpt", map_location="cpu", weights_only=False)
    assert best["epoch"] + 1 == results["best_epoch"]
    assert results["metrics_summary"]["epoch"].tolist() == [1, 2, 3]


def test_compile_mode_runs_the_compiled_forward(tmp_path: Path) -> None:
    data = torch.randint(0, 32, (16, 16), generator=torch.Generator().manual_seed(0))
    task = lm_task()

    def run(compile_mode: str | None) -> tuple[TrainingCoordinator, dict[str, Any]]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Embedding(32, 16), torch.nn.Linear(16, 32))  # compiles in seconds
        cfg = quiet_config(epochs=1, device="cpu", shuffle=False, compile_mode=compile_mode, track_runs=False,
                           plots=False)
        coordinator = TrainingCoordinator(cfg, task)
        return coordinator, coordinator.train(model, train_data=data)

    compiled, results = run("default")
    assert results["compiled"] and results["compile_mode"] == "default"
    assert type(compiled.module.forward_model).__name__ == "OptimizedModule"
    assert set(results["final_model_state"]) == {"0.weight", "1.weight", "1.bias"}  # plain keys, no _orig_mod.
    eager, reference = run(None)
    assert not reference["compiled"] and eager.module.forward_model is eager.module.model
    assert results["loss_history"] == pytest.approx(reference["loss_history"], rel=1e-4)


def test_fields_without_a_lightning_meaning_are_refused_by_name_before_fitting(lm_blocks, tmp_path: Path) -> None:
    cfg = quiet_config(epochs=1, device="cpu", checkpoint_dir=str(tmp_path / "ck"), output_dir=str(tmp_path / "run"),
                       resume_from_checkpoint="auto", nan_guard=False, nan_max_consecutive=5, nan_lr_factor=None,
                       nan_max_rollbacks=4, validation_split=0.1, max_train_samples=16, max_val_samples=4,
                       eval_batch_size=2)
    module = SimpleDataModule(lm_blocks[:40], lm_blocks[40:], lm_task(), batch_size=8)
    model, _ = tiny_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError) as info:
        TrainingCoordinator(cfg, lm_task()).train(model, datamodule=module)
    message = str(info.value)
    assert message.startswith("TrainingCoordinator has 9 problems:")
    assert "resume_from_checkpoint='auto': not applied by TrainingCoordinator: the Lightning path does not " \
           "resume a run" in message
    assert "nan_guard=False: not applied by TrainingCoordinator: Lightning has no step guard" in message
    for field, value in (("nan_max_consecutive", "5"), ("nan_lr_factor", "None"), ("nan_max_rollbacks", "4")):
        assert f"{field}={value}: not applied by TrainingCoordinator: it configures trainforge's NaN guard" in message
    for field, value in (("validation_split", "0.1"), ("max_train_samples", "16"), ("max_val_samples", "4"),
                         ("eval_batch_size", "2")):
        assert f"{field}={value}: a LightningDataModule builds its own data loaders" in message
    assert "Fix: pass the data as train_data=/val_data=" in message
    # Refused before anything was built or written: no run directory, no checkpoint folder, the model unchanged.
    assert not (tmp_path / "run").exists() and not (tmp_path / "ck").exists()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_second_run_into_the_same_run_directory_is_refused_unless_overwrite(tmp_path: Path) -> None:
    data = torch.randint(0, 32, (16, 16), generator=torch.Generator().manual_seed(0))

    def run(**fields: Any) -> dict[str, Any]:
        cfg = quiet_config(epochs=1, device="cpu", output_dir=str(tmp_path / "run"), track_runs=False, plots=False,
                           **fields)
        model = torch.nn.Sequential(torch.nn.Embedding(32, 16), torch.nn.Linear(16, 32))
        return TrainingCoordinator(cfg, lm_task()).train(model, train_data=data)

    run()
    first_id = json.loads((tmp_path / "run" / "run.json").read_text())["run_id"]
    with pytest.raises(ConfigError, match="already holds another run.*overwrite=True"):
        run()
    run(overwrite=True)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["run_id"] != first_id


def test_optimizer_by_name_is_honoured_on_the_lightning_path(tmp_path: Path) -> None:
    data = torch.randint(0, 32, (16, 16), generator=torch.Generator().manual_seed(0))
    cfg = quiet_config(epochs=1, device="cpu", shuffle=False, optimizer="sgd", optimizer_kwargs={"momentum": 0.5},
                       track_runs=False, plots=False)
    coordinator = TrainingCoordinator(cfg, lm_task())
    model = torch.nn.Sequential(torch.nn.Embedding(32, 16), torch.nn.Linear(16, 32))
    coordinator.train(model, train_data=data)
    (optimizer,) = coordinator.module.trainer.optimizers
    assert isinstance(optimizer, torch.optim.SGD)
    assert all(group["momentum"] == 0.5 for group in optimizer.param_groups)
