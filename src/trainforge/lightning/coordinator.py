"""``TrainingCoordinator``: train a user model with a ``TaskSpec`` through a real ``lightning.Trainer``.

For Lightning users (callbacks, loggers, strategies of their own). The model is wrapped in
:class:`~trainforge.lightning.module.TaskLightningModule`, so the loss, metrics, optimizer and schedule are
trainforge's, and ``train`` returns the same results dict as ``trainforge.Trainer.train``. In a notebook the same
guardrails apply: multi-process strategies are refused unless ``ALLOW_NOTEBOOK_DDP=1``, and with several GPUs
visible one is used (and said so).

How the ``TrainingConfig`` maps (:mod:`trainforge.lightning.fields` lists what is honoured):

* epochs, steps, accumulation, clipping, precision, device, strategy, seed, determinism, progress bar and
  ``log_every_n_steps`` → ``lightning.Trainer`` options; optimizer, schedule, loss, metrics, early stopping and the
  monitored metric → :class:`TaskLightningModule`; ``compile_mode`` → ``torch.compile`` of the forward.
* ``validation_split``, ``max_train_samples``, ``max_val_samples``, ``eval_batch_size``, ``batch_size``,
  ``num_workers``, ``shuffle`` → the data module built from ``train_data``/``val_data`` (a datamodule of your own
  keeps its own loaders; the first four are then refused).
* ``output_dir``/``run_name`` → the run directory with the Trainer's run files (config, task, model config,
  ``metrics.csv``, plots) and the runs-database row (``track_runs``); ``checkpoint_dir``, ``checkpoint_frequency``,
  ``checkpoint_every_n_steps``, ``keep_last_n``, ``save_best``, ``on_checkpoint_error`` →
  :class:`~trainforge.lightning.run_files.RunFiles` (``epoch_N.ckpt`` 1-based, ``best.ckpt``); ``use_wandb``,
  ``wandb_project``/``wandb_entity``/``notes``/``tags`` and ``loggers`` → Lightning's ``WandbLogger``,
  ``TensorBoardLogger``, ``MLFlowLogger``; ``export_bundle`` → the export bundle after fit.
* Anything else set to a non-default value (resume, the NaN guard's settings) is refused by name before fitting,
  in one ``ConfigError``. The NaN guard (on by default for ``Trainer``) does not exist on the Lightning path.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

try:
    import lightning as L
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("TrainingCoordinator needs PyTorch Lightning: pip install 'trainforge[lightning]' "
                      "(or use trainforge.Trainer, which needs no Lightning)") from exc

from trainforge.checkpoint.io import canonical_state_dict
from trainforge.checkpoint.rng import seed_everything
from trainforge.config import TrainingConfig
from trainforge.distributed.env import DistEnv
from trainforge.errors import ConfigError
from trainforge.lightning.fields import check_fields
from trainforge.lightning.loggers import lightning_loggers
from trainforge.lightning.module import TaskLightningModule
from trainforge.lightning.run_files import RunFiles
from trainforge.notebook.guardrails import check_not_data_parallel, check_notebook_strategy, in_notebook, visible_gpus
from trainforge.tasks import TaskSpec
from trainforge.trainer.build import wrap_model
from trainforge.trainer.precision import resolve_device, resolve_precision
from trainforge.trainer.results import build_results

_LIGHTNING_PRECISION = {"fp32": "32-true", "bf16": "bf16-true", "fp16": "16-true", "bf16-mixed": "bf16-mixed",
                        "fp16-mixed": "16-mixed"}


class TrainingCoordinator:
    """Trains through ``lightning.Trainer`` with trainforge's task semantics.

    Args:
        training_config: how to train (epochs, lr, batch size, accumulation, clipping, precision, seed, ...);
            defaults to ``TrainingConfig()``.
        task_spec: the task (may also be given to :meth:`train`).
        accelerator, devices, strategy: passed to ``lightning.Trainer`` (``None``: Lightning's defaults; in a
            notebook ``devices`` becomes 1). A multi-process ``strategy`` in a notebook needs
            ``ALLOW_NOTEBOOK_DDP=1``.
        callbacks, logger: Lightning callbacks and logger(s), used with the loggers the config asks for
            (default: none besides those; the results dict and the run directory have the metrics).
        **trainer_kwargs: any other ``lightning.Trainer`` argument.

    Example::

        coordinator = TrainingCoordinator(TrainingConfig(epochs=2, batch_size=8), task_spec)
        results = coordinator.train(model, datamodule=SimpleDataModule(train, val, task_spec, batch_size=8))
    """

    def __init__(self, training_config: TrainingConfig | None = None, task_spec: TaskSpec | None = None, *,
                 accelerator: str | None = None, devices: Any = None, strategy: Any = None,
                 callbacks: list[Any] | None = None, logger: Any = False, **trainer_kwargs: Any) -> None:
        if training_config is not None and not isinstance(training_config, TrainingConfig):
            raise ConfigError([f"training_config: expected a TrainingConfig, got {type(training_config).__qualname__}"
                               ". Fix: build one with TrainingConfig(...) or TrainingConfigBuilder."],
                              what="TrainingCoordinator")
        self.training_config = training_config if training_config is not None else TrainingConfig()
        self.task_spec = task_spec
        self.accelerator = accelerator
        self.devices = devices
        self.strategy = strategy
        self.callbacks = list(callbacks or [])
        self.logger = logger
        self.trainer_kwargs = trainer_kwargs
        self.trainer: L.Trainer | None = None
        self.module: TaskLightningModule | None = None

    def train(self, model: nn.Module, datamodule: L.LightningDataModule | None = None, *, train_data: Any = None,
              val_data: Any = None, task_spec: TaskSpec | None = None, model_config: Any = None) -> dict[str, Any]:
        """Fit ``model`` on ``datamodule`` (e.g. ``SimpleDataModule``) or on ``train_data``/``val_data`` (any form
        ``Trainer.train`` takes; wrapped in a ``SimpleDataModule``). Returns the ``Trainer.train`` results dict.

        ``model_config`` (the architecture config) is saved with the run files and the export bundle.
        """
        cfg = self.training_config
        cfg.validate()
        task = task_spec or self.task_spec or getattr(datamodule, "task_spec", None)
        problems = []
        if not isinstance(model, nn.Module):
            problems.append(f"model: expected a torch.nn.Module, got {type(model).__qualname__}.")
        elif (data_parallel := check_not_data_parallel(model)) is not None:
            problems.append(data_parallel)
        if not isinstance(task, TaskSpec):
            problems.append("task_spec: missing. Fix: TrainingCoordinator(config, task_spec) or train(..., task_spec=...)"
                            " (a SimpleDataModule's own task_spec is used when given).")
        if datamodule is None and train_data is None:
            problems.append("data: pass datamodule=SimpleDataModule(...) or train_data=... (and val_data=...).")
        if isinstance(val_data, Mapping):  # Lightning logs one validation set under val/...
            problems.append(f"val_data: named validation sets (a dict, got the names {list(val_data)!r}) are a "
                            "trainforge.Trainer feature; the Lightning path validates one set. Fix: pass one set, "
                            "e.g. val_data=val_data[name], or train with trainforge.Trainer.")
        if problems:
            raise ConfigError(problems, what="TrainingCoordinator.train")
        assert isinstance(task, TaskSpec)
        check_fields(cfg, datamodule_given=datamodule is not None)  # before anything is built or written
        strategy = self.strategy if self.strategy is not None else (cfg.strategy if cfg.strategy in ("ddp", "fsdp")
                                                                    else None)
        check_notebook_strategy(strategy, what="TrainingCoordinator")
        devices = self._devices(strategy)
        if datamodule is None:
            datamodule = _datamodule(cfg, task, train_data, val_data)
        model_config = model_config if model_config is not None else getattr(model, "config", None)

        seed_everything(cfg.seed)
        device = resolve_device(cfg.device)
        forward_model = wrap_model(model, cfg, DistEnv(), device) if cfg.compile_mode is not None else None
        module = TaskLightningModule(model, task, cfg, forward_model=forward_model)
        # unique like the Trainer's names: two runs started in one second must not share a run directory
        run_name = cfg.run_name or f"lightning-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        run_dir = Path(cfg.output_dir) if cfg.output_dir else Path("runs") / run_name
        loggers = lightning_loggers(cfg, run_name, run_dir)
        if self.logger not in (None, False, True):
            loggers = [*(self.logger if isinstance(self.logger, (list, tuple)) else [self.logger]), *loggers]
        records, tracker = self._records(cfg, task, model_config, run_name, run_dir)
        run_files = RunFiles(cfg, records)
        precision = resolve_precision(cfg.precision, cfg.use_amp, device)
        kwargs = self._trainer_kwargs(cfg, device, precision, devices, strategy, [*self.callbacks, run_files],
                                      loggers or (self.logger if self.logger is True else False), run_dir)
        trainer = L.Trainer(**{k: v for k, v in kwargs.items() if v is not None})
        self.trainer, self.module = trainer, module
        started = time.perf_counter()
        try:
            trainer.fit(module, datamodule=datamodule)
        except BaseException as exc:
            _close(records, loggers)
            if tracker is not None:
                from trainforge.tracking.run import exit_status

                tracker.finish(exit_status(exc), {"epochs_completed": len(module.history),
                                                  "global_step": int(trainer.global_step),
                                                  "best_epoch": module.best_epoch, "best_metric": module.best_metric},
                               error=f"{type(exc).__name__}: {exc}")
            raise
        elapsed = time.perf_counter() - started

        state = module.state  # epoch rows, best epoch and an early stop's reason, as the Trainer's loop keeps them
        state.epoch, state.global_step = len(state.history), int(trainer.global_step)
        if trainer.should_stop and len(state.history) < cfg.epochs and state.stop_reason is None:
            state.stop_reason = "early_stopping"  # (a Lightning callback of the user's stopped the run)
        results = build_results(state, model, checkpoint_dir=None, run_dir=run_dir, training_time_s=elapsed,
                                extras={"precision": precision, "loss_mode": module.adapter.mode,
                                        "device": str(trainer.strategy.root_device), "world_size": trainer.world_size,
                                        "run_name": run_name, "backend": "lightning",
                                        "lightning_version": L.__version__, "compile_mode": cfg.compile_mode,
                                        "compiled": forward_model is not None and forward_model is not model,
                                        "checkpoint_errors": list(run_files.errors)})
        results["final_model_state"] = canonical_state_dict(results["final_model_state"])
        results["checkpoint_paths"] = run_files.paths  # this run's files only, never others in the folder
        results["best_checkpoint"] = str(run_files.best) if run_files.best is not None and run_files.best.exists() \
            else None
        results["last_checkpoint"] = results["checkpoint_paths"][-1] if results["checkpoint_paths"] else None
        results["loggers"] = [type(lg).__name__ for lg in loggers]
        results["wandb_run_dir"] = _wandb_dir(loggers)
        if cfg.export_bundle and trainer.is_global_zero:
            from trainforge.export.after_training import export_after_training

            results.update(export_after_training(model, task, cfg, run_name, model_config=model_config,
                                                 tokenizer=getattr(datamodule, "tokenizer", None)))
        _close(records, loggers)
        if trainer.is_global_zero:
            from trainforge.tracking.run import finish_run

            finish_run(tracker, results, status="finished", plots=cfg.plots)
        self.results = results
        return results

    def _trainer_kwargs(self, cfg: TrainingConfig, device: Any, precision: str, devices: Any, strategy: Any,
                        callbacks: list[Any], logger: Any, run_dir: Path) -> dict[str, Any]:
        """``lightning.Trainer`` arguments from the config; the Coordinator's own ``trainer_kwargs`` win."""
        kwargs: dict[str, Any] = {
            "max_epochs": cfg.epochs, "max_steps": cfg.max_steps if cfg.max_steps is not None else -1,
            "accumulate_grad_batches": cfg.gradient_accumulation_steps,
            "gradient_clip_val": cfg.max_grad_norm or None, "precision": _LIGHTNING_PRECISION.get(precision, "32-true"),
            "accelerator": self.accelerator or ("cpu" if device.type == "cpu" else "auto"),
            "devices": devices, "callbacks": callbacks, "logger": logger,
            "enable_checkpointing": True,  # RunFiles is the checkpoint callback (1-based names, this run's files)
            "enable_progress_bar": cfg.progress_bar, "enable_model_summary": False, "num_sanity_val_steps": 0,
            "default_root_dir": str(run_dir), "log_every_n_steps": cfg.log_every_n_steps,
            "deterministic": cfg.deterministic or None,
        }
        if strategy is not None:
            kwargs["strategy"] = strategy
        kwargs.update(self.trainer_kwargs)
        return kwargs

    def _records(self, cfg: TrainingConfig, task: TaskSpec, model_config: Any, run_name: str,
                 run_dir: Path) -> tuple[list[Any], Any]:
        """The run directory's files (config, task, model config; ``metrics.csv``) and the runs-database row, as
        a ``trainforge.Trainer`` run writes them (main process only)."""
        if not _is_global_zero():
            return [], None
        from trainforge._version import __version__
        from trainforge.checkpoint.ownership import claim_directories, new_run_id, write_run_record
        from trainforge.logging.csv_logger import CSVLogger
        from trainforge.trainer.resume import config_dict
        from trainforge.trainer.subscribers import write_run_files

        # One run per run directory, as on the Trainer path: another run's records stop this one before fitting
        # (overwrite=True removes them first). Its .ckpt files never mix: checkpoint_paths lists only this run's.
        run_id = new_run_id()
        claim_directories(None, run_dir, run_id=run_id, resumed=False, may_start_over=False, overwrite=cfg.overwrite)
        write_run_files(run_dir, cfg, task, model_config)
        write_run_record(run_dir, run_id, run_name)
        records: list[Any] = [CSVLogger(run_dir)]
        tracker = None
        if cfg.track_runs:
            from trainforge.tracking.run import start_run

            tracker = start_run(run_name, run_dir, config=cfg.to_dict(), task_spec=task.to_dict(),
                                model_config=config_dict(model_config), version=__version__)
            records.append(tracker)
        return records, tracker

    def _devices(self, strategy: Any) -> Any:
        """In a notebook with several GPUs visible, train on one (a kernel is one process) and say so."""
        if self.devices is not None or not in_notebook() or strategy is not None:
            return self.devices
        count = visible_gpus()
        if count > 1:
            print(f"[trainforge] {count} GPUs are visible; a notebook trains on one: devices=1. To train on all "
                  f"{count}, run a script with `trainforge train --nproc {count}` or Lightning's DDP in a terminal.",
                  flush=True)
            return 1
        return None


def _datamodule(cfg: TrainingConfig, task: TaskSpec, train_data: Any, val_data: Any) -> L.LightningDataModule:
    """A ``SimpleDataModule`` over the data, with the config's split, sample caps and batch sizes applied as
    ``trainforge.Trainer`` applies them."""
    from torch.utils.data import DataLoader

    from trainforge.data.inputs import as_dataset, limit_samples, split_dataset
    from trainforge.data.lightning_module import SimpleDataModule

    train = as_dataset(train_data, task, "train_data")
    val = as_dataset(val_data, task, "val_data") if val_data is not None else None
    if val is None and cfg.validation_split > 0 and not isinstance(train, DataLoader):
        train, val = split_dataset(train, cfg.validation_split, cfg.seed)
    if not isinstance(train, DataLoader):
        train = limit_samples(train, cfg.max_train_samples)
    if val is not None and not isinstance(val, DataLoader):
        val = limit_samples(val, cfg.max_val_samples)
    module = SimpleDataModule(train, val, task, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                              seed=cfg.seed, shuffle=cfg.shuffle)
    if cfg.eval_batch_size is not None and val is not None and not isinstance(val, DataLoader):
        module.val_dataset = DataLoader(val, batch_size=cfg.eval_batch_size, shuffle=False,
                                        collate_fn=module.collate_fn, num_workers=cfg.num_workers)
    return module


def _is_global_zero() -> bool:
    """Rank 0 of a launched multi-process job, or the only process (before Lightning sets up its strategy)."""
    import os

    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0"


def _wandb_dir(loggers: list[Any]) -> str | None:
    """The W&B run's local directory (for offline runs: what ``wandb sync`` uploads)."""
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            return str(Path(lg.experiment.dir).parent)
    return None


def _close(records: list[Any], loggers: list[Any]) -> None:
    """Flush the run's records and end the W&B run, so that a second run in this process starts its own."""
    for record in records:
        record.close()
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger" and lg._experiment is not None:
            lg.experiment.finish()
