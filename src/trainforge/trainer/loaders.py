"""The run's device and data loaders, from the config: shared by ``train`` (``build.py``) and by ``evaluate`` /
``predict`` (``offline.py``), so the three load data the same way."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from trainforge.config import TrainingConfig
from trainforge.data.collators import get_collator
from trainforge.data.inputs import as_dataset, limit_samples, split_dataset
from trainforge.data.module import resume_handle
from trainforge.data.sampler import ResumableSampler
from trainforge.data.streaming import ResumableIterable
from trainforge.data.tensor_loader import TensorBatchLoader, finishes_batches, is_tensor_backed
from trainforge.distributed.env import DistEnv
from trainforge.tasks import TaskSpec
from trainforge.trainer import val_sets
from trainforge.trainer.loop import Loader
from trainforge.trainer.precision import resolve_device

__all__ = ["Loaders", "build_loaders", "device_for", "make_loader", "steps_per_epoch", "total_steps"]

# train loader, its resumable sampler (the data position), samples per batch, {validation set name: loader}
Loaders = tuple[Loader, ResumableSampler | ResumableIterable | None, int, dict[str, Loader]]


def device_for(name: str, dist_env: DistEnv) -> torch.device:
    """The device named in the config; under torchrun on GPUs, this process's GPU."""
    device = resolve_device(name)
    if device.type == "cuda" and dist_env.enabled:  # modulo: ranks may share a GPU (gloo, tests)
        return torch.device("cuda", dist_env.local_rank % max(torch.cuda.device_count(), 1))
    return device


def make_loader(dataset: Dataset[Any], batch_size: int, sampler: Sampler[int] | None, collate: Any,
                num_workers: int, seed: int, task: TaskSpec) -> DataLoader[Any] | TensorBatchLoader:
    """A loader over ``dataset`` in ``sampler``'s order: in-memory tensors in one process skip DataLoader."""
    if num_workers == 0 and is_tensor_backed(dataset):  # same batches, without DataLoader plumbing
        return TensorBatchLoader(dataset, batch_size, sampler, collate if finishes_batches(task) else None)
    # The loader's own generator keeps its per-iterator seed draw off the global RNG (exact resume).
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                      num_workers=num_workers, generator=generator, persistent_workers=False)


def build_loaders(cfg: TrainingConfig, task: TaskSpec, train_data: Any, val_data: Any, dist_env: DistEnv) -> Loaders:
    """The train loader (with the sampler that makes its position resumable) and the validation loaders, one per
    validation set (``trainer/val_sets.py``)."""
    train = as_dataset(train_data, task, "train_data")
    val = val_sets.val_datasets(val_data, task) if val_data is not None else None  # {name: set}
    if val is None and cfg.validation_split > 0 and not isinstance(train, DataLoader):
        train, split = split_dataset(train, cfg.validation_split, cfg.seed)
        val = {val_sets.UNNAMED: split}
    collate = get_collator(task)  # the task's built-in collator from the registry

    sampler: ResumableSampler | ResumableIterable | None = None
    samples_per_batch = cfg.batch_size
    if isinstance(train, DataLoader):
        train_loader: Loader = train
        handle = resume_handle(train)  # a UniversalDataModule loader: resume by arithmetic on its sampler
        if handle is not None:
            sampler, samples_per_batch = handle
    else:
        train = limit_samples(train, cfg.max_train_samples)
        if isinstance(train, IterableDataset):
            # rank/worker sharding + resume by arithmetic (skips without collating)
            train = sampler = ResumableIterable(train, cfg.batch_size, rank=dist_env.rank,
                                                world_size=dist_env.world_size)
            train_loader = make_loader(train, cfg.batch_size, None, collate, cfg.num_workers, cfg.seed, task)
        else:
            sampler = ResumableSampler(len(train), cfg.seed, cfg.shuffle, dist_env.rank,  # type: ignore[arg-type]
                                       dist_env.world_size)
            train_loader = make_loader(train, cfg.batch_size, sampler, collate, cfg.num_workers, cfg.seed, task)
    def make_val(dataset: Dataset[Any], val_sampler: Sampler[int] | None) -> Loader:
        return make_loader(dataset, cfg.eval_batch_size or cfg.batch_size, val_sampler, collate, cfg.num_workers,
                           cfg.seed, task)

    val_loaders = val_sets.val_loaders(val, cfg, dist_env, make_val) if val is not None else {}
    return train_loader, sampler, samples_per_batch, val_loaders


def steps_per_epoch(loader: Loader, accumulation: int) -> int | None:
    """Optimizer steps in one epoch; None for an iterable dataset of unknown length."""
    try:
        n = len(loader)
    except TypeError:  # an iterable dataset of unknown length
        return None
    return -(-n // accumulation)


def total_steps(cfg: TrainingConfig, per_epoch: int | None) -> int | None:
    """The schedule's length: epochs x steps per epoch, capped by ``max_steps`` (None: unknown)."""
    if per_epoch is None:
        if cfg.max_steps is None and cfg.lr_schedule != "constant":
            warnings.warn("The training data has no length and max_steps is not set: the learning rate stays "
                          "constant after warmup. Fix: set max_steps for a decaying schedule.", stacklevel=4)
        return cfg.max_steps
    total = cfg.epochs * per_epoch
    return min(total, cfg.max_steps) if cfg.max_steps is not None else total
