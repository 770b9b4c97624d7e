"""``UniversalDataModule``: any dataset form in, reproducible and resumable DataLoaders out (no Lightning needed).

* Inputs: torch ``Dataset`` (map-style or iterable), Hugging Face ``datasets.Dataset``, a tensor ``[N, T]``,
  lists of tensors / token lists / dicts / ``(input, label)`` tuples, ``(inputs, labels)`` tuples, raw strings
  with a ``tokenizer``.
* No ``val_data``: a seeded split (``validation_split``, default 0.1 for map-style data) — every sample lands in
  exactly one part.
* Reproducibility: epoch ``e`` visits ``epoch_permutation(n, seed, e)``; the batches are the same across runs and
  for any ``num_workers`` (indices are drawn in the main process; worker RNGs are seeded from (seed, epoch,
  worker id), so random augmentations repeat too).
* Resume: the training loader's sampler is a :class:`ResumableSampler` (an iterable dataset is wrapped in
  :class:`ResumableIterable`); the Trainer positions it by arithmetic — see :func:`resume_handle`.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from trainforge.data.collate import Collator
from trainforge.data.collators import get_collator
from trainforge.data.inputs import IterableSamples, as_dataset, limit_samples, normalise_sample, split_dataset
from trainforge.data.sampler import ResumableSampler
from trainforge.data.streaming import ResumableIterable
from trainforge.errors import ConfigError, DataError, DataTypeError

_UNSET: Any = object()


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers, the same on every machine and interpreter."""
    value = 0x9E3779B97F4A7C15
    for p in parts:
        value = (value * 6364136223846793005 + int(p) + 1442695040888963407) % (2**63 - 1)
    return value


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed python, numpy and torch in a worker from the loader's per-epoch base seed."""
    seed = torch.initial_seed() % (2**32)  # DataLoader sets it to base_seed + worker_id
    random.seed(seed)
    np.random.seed(seed)
    del worker_id


class ResumableDataLoader(DataLoader[Any]):
    """A DataLoader whose worker seeds are a function of (seed, epoch): reseeded at the start of each iteration."""

    seed: int = 0
    tokenizer: Any = None
    samples_per_batch: int = 1

    def _position(self) -> Any:
        return self.sampler if isinstance(self.sampler, ResumableSampler) else self.dataset

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        if self.generator is not None:
            epoch = getattr(self._position(), "epoch", 0)
            self.generator.manual_seed(_mix(self.seed, epoch))
        return super().__iter__()


def resume_handle(loader: Any) -> tuple[Any, int] | None:
    """For a DataLoader built by trainforge: ``(position, samples_per_batch)`` where ``position`` has
    ``set_epoch(e)``, ``set_start(k)``, ``state_dict()``, ``num_samples`` and ``world_size`` (a
    :class:`ResumableSampler` or a :class:`ResumableIterable`); ``None`` for any other loader."""
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        return None
    if isinstance(loader.sampler, ResumableSampler):
        return loader.sampler, int(loader.batch_size)
    if isinstance(loader.dataset, ResumableIterable):
        return loader.dataset, int(loader.batch_size)
    return None


def _dist_defaults(rank: int | None, world_size: int | None) -> tuple[int, int]:
    world = world_size if world_size is not None else int(os.environ.get("WORLD_SIZE", "1"))
    r = rank if rank is not None else int(os.environ.get("RANK", "0"))
    if world < 1 or not 0 <= r < world:
        raise ConfigError([f"rank={r} and world_size={world} do not fit: need world_size >= 1 and "
                           "0 <= rank < world_size"], what="UniversalDataModule")
    return r, world


class _Tokenized(Dataset[dict[str, Any]]):
    """Raw strings (or dicts with a text field and no input ids) tokenised on access."""

    def __init__(self, base: Any, tokenizer: Any, text_field: str, input_field: str, add_eos: bool) -> None:
        self.base, self.tokenizer, self.text_field, self.input_field = base, tokenizer, text_field, input_field
        self.add_eos = add_eos

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return tokenize_sample(self.base[index], self.tokenizer, self.text_field, self.input_field, self.add_eos)


def tokenize_sample(item: Any, tokenizer: Any, text_field: str, input_field: str, add_eos: bool) -> Any:
    from trainforge.data.tokenizers import encode_text

    if isinstance(item, str):
        return {input_field: encode_text(tokenizer, item, add_eos=add_eos)}
    if isinstance(item, Mapping) and input_field not in item and isinstance(item.get(text_field), str):
        out = {k: v for k, v in item.items() if k != text_field}
        out[input_field] = encode_text(tokenizer, item[text_field], add_eos=add_eos)
        return out
    return item


def _first_item(data: Any) -> Any:
    try:
        if isinstance(data, (list, tuple)) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
            return data[0] if len(data) else None
    except (KeyError, IndexError, TypeError):
        return None
    return None


class UniversalDataModule:
    """Reproducible, resumable DataLoaders for any dataset form.

    Args:
        train_data (alias ``train_dataset``): the training data, any accepted form.
        val_data (alias ``val_dataset``): validation data, or None for a seeded split of ``train_data``.
        task_spec: the ``TaskSpec`` (fields, pad id, ignore index, collator choice).
        batch_size: samples per batch (``eval_batch_size`` for validation, default the same).
        num_workers: DataLoader worker processes; batches are identical for any value.
        seed: base seed of the split, the per-epoch order and the worker seeds.
        collator: a registered collator name (``"causal_lm"``, ``"packed_lm"``, ...), a collate function, or None
            for the task's built-in; ``collator_options`` are passed to a named one.
        validation_split: fraction held out when ``val_data`` is None (default 0.1; 0 disables; iterable data
            cannot be split).
        shuffle: shuffle the training order each epoch (validation is never shuffled).
        tokenizer: tokenises raw strings (or a ``text_field``); its pad id fills the TaskSpec's when unset.
        rank, world_size: distributed share (default from ``RANK``/``WORLD_SIZE``).
        max_train_samples, max_val_samples: keep only the first N samples.
    """

    def __init__(
        self,
        train_data: Any = None,
        val_data: Any = None,
        task_spec: Any = None,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 42,
        collator: str | Collator | None = None,
        validation_split: float | None = _UNSET,
        *,
        train_dataset: Any = None,
        val_dataset: Any = None,
        shuffle: bool = True,
        drop_last: bool = False,
        eval_batch_size: int | None = None,
        tokenizer: Any = None,
        text_field: str = "text",
        add_eos: bool = False,
        collator_options: Mapping[str, Any] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        max_train_samples: int | None = None,
        max_val_samples: int | None = None,
    ) -> None:
        from trainforge.tasks import TaskSpec

        problems: list[str] = []
        if train_data is not None and train_dataset is not None:
            problems.append("pass the training data once: train_data= or train_dataset=, not both")
        if val_data is not None and val_dataset is not None:
            problems.append("pass the validation data once: val_data= or val_dataset=, not both")
        train_data = train_data if train_data is not None else train_dataset
        val_data = val_data if val_data is not None else val_dataset
        if train_data is None:
            problems.append("train_data is required (also accepted as train_dataset=)")
        if not isinstance(task_spec, TaskSpec):
            problems.append(f"task_spec: expected a TaskSpec, got {type(task_spec).__qualname__}. Fix: e.g. "
                            "TaskSpec.language_modeling(name='lm', vocab_size=..., max_seq_len=...)")
        for name, value in (("batch_size", batch_size), ("num_workers", num_workers)):
            low = 1 if name == "batch_size" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(f"{name} must be an int >= {low}, got {value!r}")
        if eval_batch_size is not None and (not isinstance(eval_batch_size, int) or eval_batch_size < 1):
            problems.append(f"eval_batch_size must be an int >= 1 or None, got {eval_batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            problems.append(f"seed must be an int, got {seed!r}")
        explicit_split = validation_split is not _UNSET and validation_split is not None
        split = float(validation_split) if explicit_split and validation_split is not None else 0.1
        if not 0.0 <= split < 1.0:
            problems.append(f"validation_split must be in [0, 1), got {validation_split!r}")
        if isinstance(train_data, DataLoader) or isinstance(val_data, DataLoader):
            problems.append("got a DataLoader: UniversalDataModule builds the loaders itself. Fix: pass the "
                            "dataset (loader.dataset), or give your DataLoader straight to trainer.train()")
        if problems:
            raise ConfigError(problems, what="UniversalDataModule")
        assert isinstance(task_spec, TaskSpec)
        if task_spec.pad_token_id is None and getattr(tokenizer, "pad_token_id", None) is not None \
                and task_spec.task_type != "vision_classification":
            task_spec = dataclasses.replace(task_spec, pad_token_id=int(tokenizer.pad_token_id))
        self.task_spec = task_spec
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.tokenizer = tokenizer
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.rank, self.world_size = _dist_defaults(rank, world_size)
        self.collate_fn = get_collator(task_spec, collator, **dict(collator_options or {}))

        train = self._dataset(train_data, "train_data", text_field, add_eos)
        val = self._dataset(val_data, "val_data", text_field, add_eos) if val_data is not None else None
        if val is None and split > 0:
            if isinstance(train, IterableDataset):
                if explicit_split:
                    raise DataError("validation_split needs map-style data (with __len__), got an iterable dataset. "
                                    "Fix: pass val_data explicitly, or set validation_split=0.")
            else:
                if len(train) < 2:  # type: ignore[arg-type]
                    if explicit_split:
                        raise DataError(f"validation_split={split} needs at least 2 samples, got {len(train)}. "  # type: ignore[arg-type]
                                        "Fix: pass more data or val_data, or set validation_split=0.")
                else:
                    train, val = split_dataset(train, split, seed)
        self.train_dataset = limit_samples(train, max_train_samples)
        self.val_dataset = limit_samples(val, max_val_samples) if val is not None else None
        self.train_sampler: ResumableSampler | None = None

    # ---------------------------------------------------------------- datasets
    def _dataset(self, data: Any, name: str, text_field: str, add_eos: bool) -> Dataset[Any]:
        task = self.task_spec
        if isinstance(data, ResumableIterable):
            data.batch_size, data.rank, data.world_size = self.batch_size, self.rank, self.world_size
            return data
        if isinstance(data, IterableDataset) or (
            hasattr(data, "__iter__") and not hasattr(data, "__len__") and not isinstance(data, (str, bytes, Mapping))
        ):
            tok, field = self.tokenizer, task.input_field

            def transform(item: Any) -> Any:
                if tok is not None:
                    item = tokenize_sample(item, tok, text_field, field, add_eos)
                return normalise_sample(item, task)

            stream = ResumableIterable(data, self.batch_size, transform, self.rank, self.world_size)
            return stream if name == "train_data" else IterableSamples(stream, task)
        first = _first_item(data)
        needs_tokens = isinstance(first, str) or (isinstance(first, Mapping) and task.input_field not in first
                                                   and isinstance(first.get(text_field), str))
        if needs_tokens:
            if self.tokenizer is None:
                raise DataError(f"{name} holds raw text ({text_field!r} strings) but no tokenizer was given. Fix: "
                                "UniversalDataModule(..., tokenizer=ByteTokenizer()) or pass token ids.")
            if isinstance(data, (str, bytes)):
                raise DataTypeError(f"{name} is a single string; pass a list of texts or use read_text_blocks().")
            return _Tokenized(list(data) if isinstance(data, tuple) else data, self.tokenizer, text_field,
                              task.input_field, add_eos)
        ds = as_dataset(data, task, name)
        assert not isinstance(ds, DataLoader)
        return ds

    # ---------------------------------------------------------------- loaders
    def _loader(self, dataset: Dataset[Any], batch_size: int, sampler: Any, drop_last: bool) -> ResumableDataLoader:
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        loader = ResumableDataLoader(
            dataset, batch_size=batch_size, sampler=sampler, collate_fn=self.collate_fn,
            num_workers=self.num_workers, generator=generator, worker_init_fn=seed_worker,
            pin_memory=self.pin_memory, persistent_workers=self.persistent_workers, drop_last=drop_last,
        )
        loader.seed = self.seed
        loader.tokenizer = self.tokenizer
        loader.samples_per_batch = batch_size
        return loader

    def train_dataloader(self) -> ResumableDataLoader:
        """The training loader: a fresh seeded permutation each epoch (``sampler.set_epoch``), resumable."""
        ds = self.train_dataset
        if isinstance(ds, IterableDataset):
            return self._loader(ds, self.batch_size, None, self.drop_last)
        if self.train_sampler is None:
            self.train_sampler = ResumableSampler(len(ds), self.seed, self.shuffle, self.rank,  # type: ignore[arg-type]
                                                  self.world_size)
        return self._loader(ds, self.batch_size, self.train_sampler, self.drop_last)

    def val_dataloader(self) -> ResumableDataLoader | None:
        """The validation loader (dataset order; sharded across ranks when distributed), or None."""
        ds = self.val_dataset
        if ds is None:
            return None
        sampler = None
        if self.world_size > 1 and not isinstance(ds, IterableDataset):
            sampler = ResumableSampler(len(ds), self.seed, False, self.rank, self.world_size)  # type: ignore[arg-type]
        return self._loader(ds, self.eval_batch_size, sampler, False)

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s order (the Trainer does this itself for loaders it recognises)."""
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(epoch)
        if isinstance(self.train_dataset, ResumableIterable):
            self.train_dataset.set_epoch(epoch)

    def __repr__(self) -> str:
        def size(ds: Any) -> str:
            try:
                return str(len(ds))
            except TypeError:
                return "stream"

        return (f"UniversalDataModule(train={size(self.train_dataset)}, val="
                f"{size(self.val_dataset) if self.val_dataset is not None else None}, batch_size={self.batch_size}, "
                f"num_workers={self.num_workers}, seed={self.seed})")


__all__ = ["ResumableDataLoader", "UniversalDataModule", "resume_handle", "seed_worker", "tokenize_sample"]
