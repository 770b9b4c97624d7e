"""``TrainingCoordinator``: train a user model with a ``TaskSpec`` through a real ``lightning.Trainer``.

For Lightning users (callbacks, loggers, strategies of their own). The model is wrapped in
:class:`~trainforge.lightning.module.TaskLightningModule`, so the loss, metrics, optimizer and schedule are
trainforge's, and ``train`` returns the same results dict as ``trainforge.Trainer.train``. In a notebook the same
guardrails apply: multi-process strategies are refused unless ``ALLOW_NOTEBOOK_DDP=1``, and with several GPUs
visible one is used (and said so).
"""

from __future__ import annotations

import time
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
from trainforge.errors import ConfigError
from trainforge.lightning.module import TaskLightningModule
from trainforge.notebook.guardrails import check_not_data_parallel, check_notebook_strategy, in_notebook, visible_gpus
from trainforge.tasks import TaskSpec
from trainforge.trainer.precision import resolve_device, resolve_precision
from trainforge.trainer.results import build_results
from trainforge.trainer.state import TrainState

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
        callbacks, logger: Lightning callbacks and logger (default: no logger, the results dict has the metrics).
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
        ``Trainer.train`` takes; wrapped in a ``SimpleDataModule``). Returns the ``Trainer.train`` results dict."""
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
        if problems:
            raise ConfigError(problems, what="TrainingCoordinator.train")
        assert isinstance(task, TaskSpec)
        strategy = self.strategy if self.strategy is not None else (cfg.strategy if cfg.strategy in ("ddp", "fsdp")
                                                                    else None)
        check_notebook_strategy(strategy, what="TrainingCoordinator")
        devices = self._devices(strategy)
        if datamodule is None:
            from trainforge.data.lightning_module import SimpleDataModule

            datamodule = SimpleDataModule(train_data, val_data, task, batch_size=cfg.batch_size,
                                          num_workers=cfg.num_workers, seed=cfg.seed, shuffle=cfg.shuffle)

        seed_everything(cfg.seed)
        module = TaskLightningModule(model, task, cfg)
        run_name = cfg.run_name or f"lightning-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(cfg.output_dir) if cfg.output_dir else Path("runs") / run_name
        callbacks = list(self.callbacks)
        checkpoint_cb = None
        if cfg.checkpoint_dir:
            from lightning.pytorch.callbacks import ModelCheckpoint

            checkpoint_cb = ModelCheckpoint(dirpath=cfg.checkpoint_dir, filename="lightning-epoch_{epoch}",
                                            every_n_epochs=cfg.checkpoint_frequency, save_top_k=-1,
                                            auto_insert_metric_name=False)
            callbacks.append(checkpoint_cb)
        device = resolve_device(cfg.device)
        precision = resolve_precision(cfg.precision, cfg.use_amp, device)
        kwargs: dict[str, Any] = {
            "max_epochs": cfg.epochs, "max_steps": cfg.max_steps if cfg.max_steps is not None else -1,
            "accumulate_grad_batches": cfg.gradient_accumulation_steps,
            "gradient_clip_val": cfg.max_grad_norm or None, "precision": _LIGHTNING_PRECISION.get(precision, "32-true"),
            "accelerator": self.accelerator or ("cpu" if device.type == "cpu" else "auto"),
            "devices": devices, "callbacks": callbacks, "logger": self.logger,
            "enable_checkpointing": checkpoint_cb is not None, "enable_progress_bar": cfg.progress_bar,
            "enable_model_summary": False, "num_sanity_val_steps": 0, "default_root_dir": str(run_dir),
            "log_every_n_steps": cfg.log_every_n_steps, "deterministic": cfg.deterministic or None,
        }
        if strategy is not None:
            kwargs["strategy"] = strategy
        kwargs.update(self.trainer_kwargs)
        trainer = L.Trainer(**{k: v for k, v in kwargs.items() if v is not None})
        self.trainer, self.module = trainer, module
        started = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        elapsed = time.perf_counter() - started

        state = TrainState(epoch=len(module.history), global_step=int(trainer.global_step), history=module.history,
                           best_metric=module.best_metric, best_epoch=module.best_epoch)
        if trainer.should_stop and len(module.history) < cfg.epochs:
            state.stop_reason = "early_stopping"
        results = build_results(state, model, checkpoint_dir=None, run_dir=run_dir, training_time_s=elapsed,
                                extras={"precision": precision, "loss_mode": module.adapter.mode,
                                        "device": str(trainer.strategy.root_device), "world_size": trainer.world_size,
                                        "run_name": run_name, "backend": "lightning",
                                        "lightning_version": L.__version__})
        results["final_model_state"] = canonical_state_dict(results["final_model_state"])
        if checkpoint_cb is not None:
            results["checkpoint_paths"] = sorted(str(p) for p in Path(cfg.checkpoint_dir or ".").glob("*.ckpt"))
        self.results = results
        return results

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
