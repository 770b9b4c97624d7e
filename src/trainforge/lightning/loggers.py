"""Lightning's own loggers from a ``TrainingConfig``: ``use_wandb`` (or ``"wandb"`` in ``loggers``) → Lightning's
``WandbLogger``; ``"tensorboard"`` → ``TensorBoardLogger``; ``"mlflow"`` → ``MLFlowLogger``. They receive what the
LightningModule logs (``train/loss`` per step, ``val/*`` per epoch) plus the resolved config, in the same places a
``trainforge.Trainer`` run puts them (W&B and TensorBoard under the run directory, MLflow in ``<run dir
parent>/mlruns``). Each backend's package is imported only when it is asked for."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from trainforge.config import TrainingConfig

__all__ = ["lightning_loggers"]

DEFAULT_PROJECT = "trainforge"  # the project/experiment when wandb_project is None (as for the Trainer)


def _require(package: str, extra: str, field: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise ImportError(f"{field} needs the '{package}' package: pip install 'trainforge[{extra}]' (or turn it "
                          "off; metrics are always in results['metrics_summary'] and the run directory's "
                          "metrics.csv)")


def lightning_loggers(cfg: TrainingConfig, run_name: str, run_dir: Path) -> list[Any]:
    """The Lightning loggers ``cfg`` asks for (an empty list when none)."""
    names = set(cfg.loggers) | ({"wandb"} if cfg.use_wandb else set())
    out: list[Any] = []
    if "wandb" in names:
        _require("wandb", "wandb", "use_wandb=True")
        from lightning.pytorch.loggers import WandbLogger

        # WANDB_MODE=offline (or `wandb offline`) keeps the run on disk: wandb reads it from the environment.
        # An absolute directory: wandb's service process outlives a run and has its own working directory.
        out.append(WandbLogger(name=run_name, project=cfg.wandb_project or DEFAULT_PROJECT,
                               save_dir=str(Path(run_dir).resolve()),
                               entity=cfg.wandb_entity, notes=cfg.notes, tags=list(cfg.tags) or None,
                               config=cfg.to_dict()))
    if "tensorboard" in names:
        if importlib.util.find_spec("tensorboard") is None:
            _require("tensorboardX", "tensorboard", "loggers=['tensorboard']")
        from lightning.pytorch.loggers import TensorBoardLogger

        tensorboard = TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="")
        tensorboard.log_hyperparams(cfg.to_dict())
        out.append(tensorboard)
    if "mlflow" in names:
        _require("mlflow", "mlflow", "loggers=['mlflow']")
        from lightning.pytorch.loggers import MLFlowLogger

        from trainforge.logging.mlflow_logger import default_tracking_uri

        mlflow = MLFlowLogger(experiment_name=cfg.wandb_project or DEFAULT_PROJECT, run_name=run_name,
                              tracking_uri=default_tracking_uri(run_dir), tags={t: "1" for t in cfg.tags} or None)
        mlflow.log_hyperparams(cfg.to_dict())
        out.append(mlflow)
    return out
