"""``Trainer``: checks its arguments; ``train`` is build (``build.py``) → fit (``loop.py``) → finish (``finish.py``);
``evaluate`` and ``predict`` are in ``offline.py``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainforge.config import TrainingConfig
from trainforge.errors import ConfigError, TrainforgeError
from trainforge.notebook.guardrails import check_not_data_parallel
from trainforge.tasks import TaskSpec
from trainforge.trainer.build import build_run
from trainforge.trainer.events import Event
from trainforge.trainer.finish import fail, finish
from trainforge.trainer.loop import fit
from trainforge.trainer.optim import OptimizerArg, SchedulerFactory
from trainforge.trainer.subscribers import publish
from trainforge.trainer.user_metrics import check_metrics


class Trainer:
    """Trains a plain ``nn.Module`` on a task.

    Args:
        model: the model to train (any ``nn.Module``; see ``tasks.adapter`` for the forwards it adapts to).
        config: the model's own architecture config (dataclass, dict, Hugging Face config or None); stored
            with checkpoints and exports.
        training_config: how to train; defaults to ``TrainingConfig()``.
        task_spec: what the task is (loss, metrics, fields), e.g. ``TaskSpec.language_modeling(...)``.
        callbacks: extra observers with ``on_<event>(state)`` methods.
        optimizer: your own optimizer instead of ``training_config.optimizer``: an instance built on the model's
            parameters, or a factory ``params -> Optimizer`` (called with the trainable parameters).
        scheduler: your own learning-rate schedule instead of the config's: a factory ``optimizer -> LRScheduler``,
            stepped once per optimizer step. Both are saved in checkpoints and resumed exactly.
        metrics: your own validation metrics, ``{name: metric}``: torchmetrics ``Metric`` objects or any object with
            ``update(preds, target)`` / ``compute()`` / ``reset()``; logged as ``val/<name>`` and usable as
            ``monitor`` (what ``update`` receives, and the rule in distributed runs: ``trainer/user_metrics.py``).
    """

    def __init__(
        self,
        model: nn.Module,
        config: Any = None,
        training_config: TrainingConfig | None = None,
        task_spec: TaskSpec | None = None,
        *,
        callbacks: Sequence[Any] = (),
        optimizer: OptimizerArg = None,
        scheduler: SchedulerFactory = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(config, TrainingConfig) and (training_config is None or isinstance(training_config, TaskSpec)):
            raise ConfigError(
                ["Trainer arguments are shifted: the 2nd argument is the model's architecture config and the 3rd "
                 "the TrainingConfig, got a TrainingConfig as 2nd. Fix: Trainer(model, model_config, "
                 "training_config, task_spec), or pass model_config=None."],
                what="Trainer",
            )
        problems = []
        if not isinstance(model, nn.Module):
            problems.append(f"model: expected a torch.nn.Module, got {type(model).__qualname__}. "
                            "Fix: pass the model instance (not its class or a state dict).")
        if (data_parallel := check_not_data_parallel(model)) is not None:
            problems.append(data_parallel)
        if training_config is not None and not isinstance(training_config, TrainingConfig):
            problems.append(f"training_config: expected a TrainingConfig, got {type(training_config).__qualname__}. "
                            "Fix: build one with TrainingConfig(...) or TrainingConfigBuilder.")
        if not isinstance(task_spec, TaskSpec):
            problems.append(f"task_spec: expected a TaskSpec, got {type(task_spec).__qualname__}. "
                            "Fix: e.g. TaskSpec.language_modeling(name='lm', vocab_size=..., max_seq_len=...).")
        problems += _extension_problems(optimizer, scheduler)
        problems += check_metrics(metrics, task_spec if isinstance(task_spec, TaskSpec) else None)
        if problems:
            raise ConfigError(problems, what="Trainer")
        assert isinstance(task_spec, TaskSpec)
        self.model = model
        self.model_config = config
        self.training_config = training_config if training_config is not None else TrainingConfig()
        self.task_spec = task_spec
        self.callbacks = list(callbacks)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.metrics = dict(metrics or {})
        _check_model_config(config, task_spec)

    # ------------------------------------------------------------------ train
    def train(self, train_data: Any, val_data: Any = None, resume_from: str | Path | None = None) -> dict[str, Any]:
        """Train and return the results dict (``loss_history``, ``metrics_summary``, ``best_epoch``,
        ``checkpoint_paths``, ``final_model_state`` and extras).

        Args:
            train_data: a Dataset, DataLoader, HF Dataset, tensor [N, T], list of samples or (inputs, labels).
            val_data: the same forms, or None (then ``validation_split`` may carve one from train_data).
            resume_from: ``"auto"`` (newest checkpoint in ``checkpoint_dir``) or a checkpoint path; overrides
                ``training_config.resume_from_checkpoint``.
        """
        run = build_run(self.model, self.model_config, self.training_config, self.task_spec,
                        callbacks=self.callbacks, optimizer_arg=self.optimizer, scheduler_arg=self.scheduler,
                        metrics=self.metrics, train_data=train_data, val_data=val_data, resume_from=resume_from)
        try:
            publish(run, Event.FIT_START)  # run files, the runs-database row, the config and header lines
            started = time.perf_counter()
            with run.parts.preemption or contextlib.nullcontext():  # SIGTERM/SIGINT: stop at a step boundary
                fit(run)
        except BaseException as exc:
            fail(run, exc)  # the logs closed, the row marked failed, callbacks told; re-raised
        self.results = finish(run, time.perf_counter() - started)  # results, then export, summary, plots, row
        return self.results

    # ------------------------------------------------------ evaluate, predict
    def evaluate(self, data: Any) -> dict[str, float]:
        """The validation metrics of the model's current weights on ``data`` (any form ``val_data`` accepts):
        ``{"val/loss": ..., "val/perplexity": ..., "val/<your metric>": ...}``, the keys of the epoch rows, from
        the code that validates at each epoch's end. Under torchrun each process evaluates its shard and the
        metrics are reduced over all of them."""
        from trainforge.trainer.offline import evaluate_data

        return evaluate_data(self.model, self.training_config, self.task_spec, self.metrics, data)

    def predict(self, data: Any, output: str = "logits") -> Any:
        """The model's outputs on ``data`` in data order (never shuffled, whatever the config says).

        Args:
            data: any form ``val_data`` accepts; labels are not needed.
            output: ``"logits"`` (the raw logits) or ``"ids"`` (their argmax: class ids, or token ids per position).

        Returns one tensor ``[N, ...]`` (on the CPU) when every batch has the same shape after the first dimension,
        else a list with one tensor per sample (e.g. padded token sequences of different lengths). Under torchrun
        every process predicts all of ``data``.
        """
        from trainforge.trainer.offline import predict_data

        return predict_data(self.model, self.training_config, self.task_spec, data, output)


# ---------------------------------------------------------------- helpers
def _config_value(config: Any, key: str) -> Any:
    if isinstance(config, dict):
        return config.get(key)
    return getattr(config, key, None)


def _extension_problems(optimizer: Any, scheduler: Any) -> list[str]:
    """The ``optimizer`` / ``scheduler`` arguments have a usable type (what they build is checked in train)."""
    problems = []
    if optimizer is not None and not (isinstance(optimizer, torch.optim.Optimizer) or callable(optimizer)):
        hint = (f" To choose one by name, use TrainingConfig(optimizer={optimizer!r})." if isinstance(optimizer, str)
                else "")
        problems.append(f"optimizer: expected a torch.optim.Optimizer or a factory params -> Optimizer, got "
                        f"{type(optimizer).__qualname__}.{hint} Fix: e.g. optimizer=lambda params: "
                        "torch.optim.SGD(params, lr=0.1, momentum=0.9).")
    if scheduler is not None and (not callable(scheduler) or (not isinstance(scheduler, type)
                                                               and hasattr(scheduler, "get_last_lr"))):
        problems.append(f"scheduler: expected a factory optimizer -> LRScheduler, got {type(scheduler).__qualname__}. "
                        "Fix: pass a function that builds it on the optimizer it is given (the trainer builds the "
                        "optimizer), e.g. scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 100).")
    return problems


def _check_model_config(config: Any, task: TaskSpec) -> None:
    if config is None or task.vocab_size is None:
        return
    model_vocab = _config_value(config, "vocab_size")
    if isinstance(model_vocab, int) and model_vocab != task.vocab_size:
        raise ConfigError(
            [f"vocab_size: the model config says {model_vocab} but the TaskSpec says {task.vocab_size!r}. "
             "Fix: use the same vocabulary size in both (the TaskSpec's must match the model's output layer)."],
            what="Trainer",
        )


__all__ = ["Trainer", "TrainforgeError"]
