"""Turn whatever the user passes to ``train()`` into a dataset of dict samples, or keep their DataLoader.

Accepted (DESIGN item 6): torch ``Dataset`` (map-style or iterable), ``DataLoader`` (used as given),
Hugging Face ``datasets.Dataset``, a tensor ``[N, T]``, a list of tensors / token lists / dicts / tuples,
and an ``(inputs, labels)`` tuple. Anything else is a ``DataTypeError`` that names what was received.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from trainforge.data.collate import PreBatched  # re-exported: its old home
from trainforge.data.tokenfile import TokenFile
from trainforge.errors import DataError, DataTypeError
from trainforge.tasks.spec import LABEL_ALIAS

if TYPE_CHECKING:
    from trainforge.tasks import TaskSpec

ACCEPTED = (
    "a torch Dataset or IterableDataset, a DataLoader, a Hugging Face datasets.Dataset, a tensor [N, T], "
    "a list of tensors / token lists / dicts / (input, label) tuples, or an (inputs, labels) tuple"
)


def _describe(obj: Any) -> str:
    if isinstance(obj, Tensor):
        return f"a tensor of shape {tuple(obj.shape)}"
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _is_array(obj: Any) -> bool:
    return isinstance(obj, Tensor) or type(obj).__module__ == "numpy" and hasattr(obj, "shape")


def normalise_sample(sample: Any, task: TaskSpec) -> dict[str, Any]:
    """One sample as a dict of fields: dicts pass through, ``(x, y)`` pairs and bare inputs are named.

    A ``label`` field is renamed ``labels`` (the Hugging Face convention) when the task's label field is
    ``labels`` and the sample has no ``labels`` of its own; every other field is kept as it is.
    """
    if isinstance(sample, Mapping):
        out = dict(sample)
        if LABEL_ALIAS in out and task.label_field == "labels" and "labels" not in out:
            out["labels"] = out.pop(LABEL_ALIAS)
        return out
    if isinstance(sample, tuple):
        if len(sample) == 1:
            return {task.input_field: sample[0]}
        if len(sample) == 2:
            return {task.input_field: sample[0], task.label_field: sample[1]}
        raise DataError(
            f"A sample is a tuple of {len(sample)} items; expected (input,) or (input, label). "
            "Fix: give dicts such as {'input_ids': ..., 'labels': ...} for more fields."
        )
    if _is_array(sample) or isinstance(sample, list):
        return {task.input_field: sample}
    raise DataTypeError(
        f"A sample is {_describe(sample)}; expected a dict, a tensor, a list of token ids or an (input, label) "
        "tuple. Fix: make the dataset's __getitem__ return one of those."
    )


class MapSamples(Dataset[dict[str, Any]]):
    """A map-style dataset whose items are normalised to dicts."""

    def __init__(self, base: Any, task: TaskSpec) -> None:
        self.base = base
        self.task = task

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return normalise_sample(self.base[index], self.task)


class IterableSamples(IterableDataset[dict[str, Any]]):
    """An iterable dataset whose items are normalised to dicts, optionally capped at ``limit`` items."""

    def __init__(self, base: Any, task: TaskSpec, limit: int | None = None) -> None:
        self.base = base
        self.task = task
        self.limit = limit

    def __iter__(self) -> Iterator[dict[str, Any]]:
        items = iter(self.base) if self.limit is None else itertools.islice(self.base, self.limit)
        for item in items:
            yield normalise_sample(item, self.task)


class PairSamples(Dataset[dict[str, Any]]):
    """``(inputs, labels)`` given as two aligned sequences."""

    def __init__(self, inputs: Sequence[Any], labels: Sequence[Any] | None, task: TaskSpec) -> None:
        self.inputs = inputs
        self.labels = labels
        self.task = task

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = {self.task.input_field: self.inputs[index]}
        if self.labels is not None:
            sample[self.task.label_field] = self.labels[index]
        return sample

    @property
    def tensor_backed(self) -> bool:
        return isinstance(self.inputs, Tensor) and (self.labels is None or isinstance(self.labels, Tensor))

    def __getitems__(self, indices: Sequence[int]) -> Any:
        """A whole batch in one indexing call when the data are tensors (the DataLoader's batched fetch).

        The result equals collating the samples one by one; it is a ``Batch`` dict, which collators pass on.
        ``indices`` may be a ``range`` (the tensor loader's in-order batches): known to be in order without a check.
        """
        if not self.tensor_backed:
            return [self[i] for i in indices]
        first = indices[0] if indices else 0
        if in_order(indices):  # shuffle=False, evaluation: a slice
            # clone: the batch must not share memory with the dataset, as an index_select copy would not
            stop = first + len(indices)
            batch = PreBatched({self.task.input_field: self.inputs[first:stop].clone()})  # type: ignore[attr-defined]
            if self.labels is not None:
                batch[self.task.label_field] = self.labels[first:stop].clone()  # type: ignore[attr-defined]
            return batch
        rows = torch.as_tensor(indices, dtype=torch.long)
        batch = PreBatched({self.task.input_field: self.inputs.index_select(0, rows)})  # type: ignore[attr-defined]
        if self.labels is not None:
            batch[self.task.label_field] = self.labels.index_select(0, rows)  # type: ignore[attr-defined]
        return batch


def in_order(indices: Sequence[int]) -> bool:
    """True when ``indices`` are consecutive and ascending (a ``range`` with step 1 needs no look at its items)."""
    if isinstance(indices, range):
        return indices.step == 1
    first = indices[0] if indices else 0
    return list(indices) == list(range(first, first + len(indices)))


class Subset(Dataset[dict[str, Any]]):
    """A view of some indices of a map-style dataset."""

    def __init__(self, base: Dataset[dict[str, Any]], indices: Sequence[int]) -> None:
        self.base = base
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.base[self.indices[index]]

    def __getitems__(self, indices: Sequence[int]) -> Any:
        getitems = getattr(self.base, "__getitems__", None)
        mapped = [self.indices[i] for i in indices]
        return getitems(mapped) if getitems is not None else [self.base[i] for i in mapped]


def as_dataset(data: Any, task: TaskSpec, name: str = "train_data") -> Dataset[dict[str, Any]] | DataLoader[Any]:
    """Coerce user data into a dataset of dict samples; a ``DataLoader`` is returned unchanged."""
    if isinstance(data, DataLoader):
        return data
    if data is None:
        raise DataTypeError(f"Expected {name} to be Dataset or DataLoader, got None. Accepted: {ACCEPTED}.")
    if isinstance(data, IterableDataset):
        return IterableSamples(data, task)
    if isinstance(data, (str, bytes, Mapping)):
        raise DataTypeError(
            f"Expected {name} to be Dataset or DataLoader, got {_describe(data)}. Accepted: {ACCEPTED}. "
            "Raw text needs tokenizing first (e.g. trainforge.data.corpus.byte_encode + lm_blocks)."
        )
    if type(data).__module__ == "numpy" and hasattr(data, "shape"):
        data = torch.from_numpy(data)
    if isinstance(data, Tensor):
        return _tensor_dataset(data, task, name)
    if isinstance(data, tuple) and len(data) == 2 and all(_is_array(x) or isinstance(x, list) for x in data):
        inputs, labels = data
        if len(inputs) != len(labels):
            raise DataError(
                f"{name} is an (inputs, labels) tuple of different lengths: {len(inputs)} inputs and "
                f"{len(labels)} labels. Fix: give one label per input."
            )
        _check_not_empty(len(inputs), name)
        _check_whole(inputs, labels, task, name)
        return PairSamples(inputs, labels, task)
    if isinstance(data, (list, tuple)):
        _check_not_empty(len(data), name)
        return MapSamples(list(data), task)
    if isinstance(data, TokenFile):  # windows of a memory-mapped token file: a batch is read in one call
        return data.samples(task)
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        # torch map-style datasets and Hugging Face datasets.Dataset (duck-typed: no import of `datasets`).
        _check_not_empty(len(data), name)
        return MapSamples(data, task)
    raise DataTypeError(f"Expected {name} to be Dataset or DataLoader, got {_describe(data)}. Accepted: {ACCEPTED}.")


def _check_not_empty(n: int, name: str) -> None:
    if n == 0:
        raise DataError(f"{name} is empty (0 samples). Fix: pass at least one sample.")


def _tensor_dataset(data: Tensor, task: TaskSpec, name: str) -> Dataset[dict[str, Any]]:
    if data.dim() < 2 and task.input_field == "input_ids":
        raise DataError(
            f"{name} is a 1-D tensor of {data.numel()} values; expected token blocks of shape [N, T]. "
            "Fix: cut the token stream into blocks, e.g. trainforge.data.corpus.lm_blocks(ids, block_size)."
        )
    if task.task_type != "language_modeling":
        raise DataError(
            f"{name} is {_describe(data)} without labels, but task {task.task_type!r} needs labels. "
            "Fix: pass an (inputs, labels) tuple or a list of dicts with a 'labels' field."
        )
    _check_not_empty(len(data), name)
    _check_whole(data, None, task, name)
    return PairSamples(data, None, task)  # type: ignore[arg-type]  # a tensor indexes like a sequence


def _check_whole(inputs: Any, labels: Any, task: TaskSpec, name: str) -> None:
    """Tensor data is checked as a whole before step 0 (one cheap pass), not only its first batch: a bad token id
    or label further on would otherwise fail mid-training as an opaque IndexError."""
    if not isinstance(inputs, Tensor) or not (labels is None or isinstance(labels, Tensor)):
        return
    if task.task_type == "vision_classification" and not inputs.is_floating_point():
        return  # uint8 / channels-last images become float CHW in the collator; its batches are checked before step 0
    batch = {task.input_field: inputs}
    if labels is not None:
        batch[task.label_field] = labels
    try:
        task.validate_batch(batch)
    except DataError as exc:
        raise DataError(f"{name}: {exc}") from exc


def label_alias_note(data: Any, task: TaskSpec) -> str | None:
    """The log line saying that ``data``'s ``label`` field is used as ``labels``, or None.

    Looks only where it costs nothing and consumes nothing: a Hugging Face dataset's ``column_names``, the first
    item of a map-style dataset or list, and the dataset behind a DataLoader or trainforge's wrappers.
    """
    if task.label_field != "labels":
        return None
    for _ in range(8):  # unwrap DataLoader / Subset / MapSamples / IterableSamples / ResumableIterable
        if isinstance(data, DataLoader):
            data = data.dataset
        elif isinstance(data, (Subset, MapSamples, IterableSamples)):
            data = data.base
        elif type(data).__name__ == "ResumableIterable":
            data = data.source
        else:
            break
    columns = getattr(data, "column_names", None)
    if isinstance(columns, (list, tuple)):
        fields: Any = columns
    elif isinstance(data, IterableDataset) or not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return None
    else:
        try:
            fields = data[0] if len(data) else None
        except Exception:  # noqa: BLE001 - a dataset that cannot be peeked at: nothing to say
            return None
    if isinstance(fields, (Mapping, list, tuple)) and LABEL_ALIAS in fields and "labels" not in fields:
        return "data: the 'label' field is used as 'labels' (the Hugging Face convention)"
    return None


def limit_samples(dataset: Dataset[Any], limit: int | None) -> Dataset[Any]:
    """The first ``limit`` samples (``max_train_samples`` / ``max_val_samples``)."""
    if limit is None:
        return dataset
    if isinstance(dataset, IterableSamples):
        return IterableSamples(dataset.base, dataset.task, limit)
    if isinstance(dataset, IterableDataset):
        return dataset
    n = len(dataset)  # type: ignore[arg-type]
    return dataset if limit >= n else Subset(dataset, range(limit))


def split_dataset(dataset: Dataset[Any], fraction: float, seed: int) -> tuple[Dataset[Any], Dataset[Any]]:
    """A seeded train/validation split: every sample lands in exactly one part."""
    if isinstance(dataset, IterableDataset):
        raise DataError(
            "validation_split needs a map-style dataset (with __len__), got an iterable dataset. "
            "Fix: pass val_data explicitly, or set validation_split=0."
        )
    n = len(dataset)  # type: ignore[arg-type]
    n_val = max(1, round(n * fraction))
    if n_val >= n:
        raise DataError(
            f"validation_split={fraction!r} of {n} samples leaves no training data. "
            "Fix: use a smaller validation_split or pass val_data."
        )
    g = torch.Generator()
    g.manual_seed(seed)
    order = torch.randperm(n, generator=g).tolist()
    return Subset(dataset, sorted(order[n_val:])), Subset(dataset, sorted(order[:n_val]))
