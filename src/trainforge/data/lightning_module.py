"""``SimpleDataModule``: a real ``lightning.LightningDataModule`` over pre-tokenised datasets (``lightning`` extra).

For Lightning users. It builds its loaders with the same collator registry as :class:`UniversalDataModule`; for
automatic splits, exact resume and worker-count-independent batches use ``UniversalDataModule`` instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler

try:
    import lightning as L
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test without the extra
    raise ImportError(
        "SimpleDataModule needs PyTorch Lightning: pip install 'trainforge[lightning]' "
        "(or use trainforge.data.UniversalDataModule, which needs no Lightning)"
    ) from exc

from trainforge.data.collate import Collator
from trainforge.data.collators import get_collator
from trainforge.data.inputs import as_dataset
from trainforge.errors import ConfigError


class SimpleDataModule(L.LightningDataModule):
    """Args: ``train_dataset``, ``val_dataset`` (optional), ``task_spec``, ``batch_size``, ``num_workers``,
    ``tokenizer`` (its pad id fills the TaskSpec's when unset; saved into ``hparams``-free attribute
    ``self.tokenizer``), ``collator`` (registered name or callable), ``seed`` (shuffle order)."""

    def __init__(self, train_dataset: Any, val_dataset: Any = None, task_spec: Any = None, batch_size: int = 32,
                 num_workers: int = 0, tokenizer: Any = None, collator: str | Collator | None = None,
                 seed: int = 42, shuffle: bool = True) -> None:
        super().__init__()
        from trainforge.tasks import TaskSpec

        if not isinstance(task_spec, TaskSpec):
            raise ConfigError([f"task_spec: expected a TaskSpec, got {type(task_spec).__qualname__}"],
                              what="SimpleDataModule")
        if task_spec.pad_token_id is None and getattr(tokenizer, "pad_token_id", None) is not None \
                and task_spec.task_type != "vision_classification":
            task_spec = dataclasses.replace(task_spec, pad_token_id=int(tokenizer.pad_token_id))
        self.task_spec = task_spec
        self.train_dataset = as_dataset(train_dataset, task_spec, "train_dataset")
        self.val_dataset = as_dataset(val_dataset, task_spec, "val_dataset") if val_dataset is not None else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.tokenizer = tokenizer
        self.seed = seed
        self.shuffle = shuffle
        self.collate_fn = get_collator(task_spec, collator)

    def _loader(self, dataset: Any, shuffle: bool) -> DataLoader[Any]:
        if isinstance(dataset, DataLoader):
            return dataset
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        shuffle = shuffle and not isinstance(dataset, IterableDataset)
        sampler: Sampler[int] | None = None
        if not shuffle and not isinstance(dataset, IterableDataset) and _world_size() > 1:
            # Lightning shards a training loader with a *shuffling* DistributedSampler unless it has one already:
            # shuffle=False keeps the data order (rank r reads samples r, r + world, ...).
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(dataset, shuffle=False)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, sampler=sampler,
                          collate_fn=self.collate_fn, num_workers=self.num_workers, generator=generator)

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.train_dataset, self.shuffle)

    def val_dataloader(self) -> Any:
        return self._loader(self.val_dataset, False) if self.val_dataset is not None else []


def _world_size() -> int:
    """The processes of the initialised process group (1 without one)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


__all__ = ["SimpleDataModule"]
