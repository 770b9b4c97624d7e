"""``Trainer.evaluate`` and ``Trainer.predict``: the model's current weights on some data, outside ``train``.

Both build their loader the way ``train`` builds the validation loader (any data form, the task's collator,
``eval_batch_size``) and never shuffle; ``evaluate`` runs the epoch-end validation code itself
(:func:`trainforge.trainer.evaluate.evaluate`), so its numbers are the epoch rows' for the same weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset

from trainforge.errors import ConfigError, DataError

if TYPE_CHECKING:
    from trainforge.config import TrainingConfig
    from trainforge.distributed.env import DistEnv
    from trainforge.tasks import TaskSpec
    from trainforge.tasks.adapter import ModelAdapter

__all__ = ["evaluate_data", "predict_data"]

OUTPUTS = ("logits", "ids")


def evaluate_data(model: nn.Module, cfg: TrainingConfig, task: TaskSpec, metrics: Mapping[str, Any],
                  data: Any) -> dict[str, float]:
    """``{"val/<metric>": value}`` for ``model`` on ``data`` (see ``Trainer.evaluate``); for a dict of named sets
    ``{"val/<set>/<metric>": value}``, each set evaluated alone, as in ``train``."""
    from trainforge.trainer.evaluate import evaluate
    from trainforge.trainer.loop import _to_device
    from trainforge.trainer.user_metrics import UserMetrics
    from trainforge.trainer.val_sets import UNNAMED, metric_key, set_names

    model, device, autocast, dist_env = _setup(model, cfg)
    out: dict[str, float] = {}
    for set_name in set_names(data):
        what = "data" if set_name == UNNAMED else f"data[{set_name!r}]"
        loader = _loader_for(cfg, task, data if set_name == UNNAMED else data[set_name], what, dist_env, shard=True)
        first = next(iter(loader), None)
        if first is None:
            raise DataError(f"evaluate: {what} produced no batches. Fix: pass at least one sample.")
        adapter = _probed_adapter(model, task, _to_device(first, device), autocast, labelled=True)
        user_metrics = UserMetrics(metrics, task) if metrics else None
        values = evaluate(model, loader, task, adapter, lambda b: _to_device(b, device), autocast,
                          dist_env.sum if dist_env.enabled else None, user_metrics)
        out.update({metric_key(set_name, name): value for name, value in values.items()})
    return out


@torch.no_grad()
def predict_data(model: nn.Module, cfg: TrainingConfig, task: TaskSpec, data: Any,
                 output: str = "logits") -> Tensor | list[Tensor]:
    """The model's logits (or their argmax) on ``data``, in data order (see ``Trainer.predict``)."""
    from trainforge.trainer.loop import _to_device

    if output not in OUTPUTS:
        raise ConfigError([f"output: expected one of {', '.join(map(repr, OUTPUTS))}, got {output!r}. Fix: "
                           "output='logits' for the raw scores, output='ids' for class ids / token ids."],
                          what="Trainer.predict")
    if isinstance(data, Tensor) and task.task_type != "language_modeling":
        data = [{task.input_field: row} for row in data]  # inputs alone: predict needs no labels
    model, device, autocast, dist_env = _setup(model, cfg)
    loader = _loader_for(cfg, task, data, "data", dist_env, shard=False)
    adapter: ModelAdapter | None = None
    chunks: list[Tensor] = []
    was_training = model.training
    model.eval()
    try:
        for raw in loader:
            batch = _to_device(raw, device)
            labels = _labels_if_any(task, batch)
            if adapter is None:
                adapter = _probed_adapter(model, task, batch, autocast, labelled=labels is not None)
            with autocast():
                out = adapter.forward(model, batch, labels)
            if out.logits is None:
                raise DataError("predict: the model returned a loss but no logits, so there is nothing to predict. "
                                "Fix: return the logits from forward().")
            logits = out.logits.detach().float()
            chunks.append((logits.argmax(-1) if output == "ids" else logits).cpu())
    finally:
        model.train(was_training)
    if not chunks:
        raise DataError("predict: data produced no batches. Fix: pass at least one sample.")
    if all(c.shape[1:] == chunks[0].shape[1:] for c in chunks):
        return torch.cat(chunks)
    return [sample for chunk in chunks for sample in chunk]  # e.g. padded sequences of different lengths


def _setup(model: nn.Module, cfg: TrainingConfig) -> tuple[nn.Module, torch.device, Any, DistEnv]:
    """The plain model on the run's device (moved there as ``train`` does), its autocast, and the process group."""
    from trainforge.distributed.env import from_environment
    from trainforge.notebook.guardrails import notebook_device
    from trainforge.trainer.loaders import device_for
    from trainforge.trainer.precision import autocast_factory, resolve_precision

    cfg.validate()
    dist_env = from_environment(cfg.strategy)
    device = device_for(notebook_device(cfg.device, say=False), dist_env)
    model = model.to(device)
    precision = resolve_precision(cfg.precision, cfg.use_amp, device)
    return model, device, autocast_factory(precision, device), dist_env


def _loader_for(cfg: TrainingConfig, task: TaskSpec, data: Any, what: str, dist_env: DistEnv, *, shard: bool) -> Any:
    """A loader over ``data`` in data order: ``train``'s validation loader (``shard``: each process its share, as
    validation does), or a given DataLoader (rebuilt without its sampler when it would shuffle a sized dataset)."""
    from trainforge.data.collators import get_collator
    from trainforge.data.inputs import as_dataset, limit_samples
    from trainforge.distributed.sampling import EvalShardSampler
    from trainforge.trainer.loaders import make_loader

    dataset = as_dataset(data, task, what)
    if isinstance(dataset, DataLoader):
        given = dataset
        if isinstance(given.dataset, IterableDataset) or isinstance(given.sampler, torch.utils.data.SequentialSampler):
            return given
        return DataLoader(given.dataset, batch_size=given.batch_size or 1, collate_fn=given.collate_fn,
                          num_workers=given.num_workers)
    if shard:
        dataset = limit_samples(dataset, cfg.max_val_samples)  # as the epoch-end validation
    sampler = None
    if shard and dist_env.enabled and not isinstance(dataset, IterableDataset):
        sampler = EvalShardSampler(len(dataset), dist_env.rank, dist_env.world_size)  # type: ignore[arg-type]
    return make_loader(dataset, cfg.eval_batch_size or cfg.batch_size, sampler, get_collator(task), cfg.num_workers,
                   cfg.seed, task)


def _labels_if_any(task: Any, batch: Mapping[str, Tensor]) -> Tensor | None:
    """The batch's labels (built from the inputs for causal LM), or None for unlabelled data."""
    try:
        return task.targets(batch)  # type: ignore[no-any-return]
    except (DataError, ConfigError, KeyError):
        return None


def _probed_adapter(model: nn.Module, task: TaskSpec, batch: Mapping[str, Tensor], autocast: Any,
                    *, labelled: bool) -> ModelAdapter:
    """The adapter ``train`` would use for this model, its calling mode decided from one batch."""
    from trainforge.tasks.adapter import ModelAdapter

    adapter = ModelAdapter(model, task)
    if labelled:
        with autocast():
            adapter.probe(model, batch, task.targets(batch))
    return adapter
