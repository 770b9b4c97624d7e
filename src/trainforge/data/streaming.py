"""Streaming data that resumes exactly: :class:`ResumableIterable`.

An iterable dataset has no sampler, so its position is kept here, as plain arithmetic over a deterministic stream:
sample ``j`` of an epoch (counted on this rank) is the ``j``-th item this rank takes from the source. Resuming at
sample ``k`` skips ``k`` items: without reading them when the source can seek (it has ``iter_from(start)``, or is
a :class:`SeekableStream` / a callable ``start -> iterator``), otherwise by advancing the raw iterator (the
expensive part, ``transform`` and collation, is never run for skipped items).

Sharding keeps batches identical for any ``num_workers``: with ``world_size`` ranks, rank ``r`` takes items
``r, r + world_size, ...``; within a rank, DataLoader worker ``w`` of ``W`` produces batches ``w, w + W, ...``
(of ``batch_size`` items each), which is the order the DataLoader hands them out in.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from torch.utils.data import IterableDataset, get_worker_info

from trainforge.errors import DataError


class SeekableStream:
    """A deterministic stream given by ``make(start) -> iterator over items start, start+1, ...`` (e.g. a file
    read from a byte offset). ``epoch`` is passed when ``make`` accepts it."""

    def __init__(self, make: Callable[..., Iterator[Any]], length: int | None = None, per_epoch: bool = False) -> None:
        self.make = make
        self.length = length
        self.per_epoch = per_epoch

    def iter_from(self, start: int, epoch: int = 0) -> Iterator[Any]:
        return self.make(start, epoch) if self.per_epoch else self.make(start)


class ResumableIterable(IterableDataset[Any]):
    """Wraps an iterable source into a resumable, rank- and worker-sharded ``IterableDataset``.

    Args:
        source: a re-iterable (an ``IterableDataset``, a list, a generator *function*), a ``SeekableStream`` or
            any object with ``iter_from(start)``.
        batch_size: items per batch (sharding across DataLoader workers is by whole batches).
        transform: applied to each item this rank keeps (after skipping), e.g. tokenisation.
        rank, world_size: distributed share.
        num_samples: the stream's length when known (lets the loop know where an epoch ends).
    """

    def __init__(self, source: Any, batch_size: int = 1, transform: Callable[[Any], Any] | None = None,
                 rank: int = 0, world_size: int = 1, num_samples: int | None = None) -> None:
        self.source = source
        self.batch_size = batch_size
        self.transform = transform
        self.rank = rank
        self.world_size = world_size
        self.num_samples = num_samples if num_samples is not None else getattr(source, "length", None)
        self.epoch = 0
        self.start = 0  # items of this rank's share already consumed in the current epoch
        self.shuffle = False
        self.seed = 0

    # -- the same position protocol as ResumableSampler
    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, start: int) -> None:
        self.start = start

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "start": self.start, "kind": "stream"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.start = int(state["start"])

    # -- iteration
    def _raw(self, global_start: int) -> Iterator[Any]:
        src = self.source
        if hasattr(src, "iter_from"):
            try:
                return iter(src.iter_from(global_start, self.epoch))
            except TypeError:
                return iter(src.iter_from(global_start))
        made = src() if callable(src) and not isinstance(src, Iterable) else src  # a generator function
        it = iter(made)
        return itertools.islice(it, global_start, None)

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        n_workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        # Items of this rank in the epoch are global items rank + world_size * j, j >= start.
        stream = self._raw(self.rank + self.world_size * self.start)
        mine = itertools.islice(stream, 0, None, self.world_size)
        batch = self.batch_size
        for j, item in enumerate(mine):
            if (j // batch) % n_workers == worker:
                yield self.transform(item) if self.transform is not None else item

    def __len__(self) -> int:
        if self.num_samples is None:
            raise TypeError("stream of unknown length")
        per_rank = -(-(self.num_samples - self.rank) // self.world_size) if self.num_samples > self.rank else 0
        return max(per_rank - self.start, 0)


def stream_text_blocks(path: str, block_size: int) -> SeekableStream:
    """Byte-level LM blocks of a text file larger than memory: block ``i`` is bytes ``[i*B, (i+1)*B)``, read by
    seeking, so resuming at block ``k`` reads nothing before it. The final partial block is kept (shorter)."""
    import os

    import torch

    size = os.path.getsize(path)
    if size == 0:
        raise DataError(f"{path}: the file is empty. Fix: point data.train at a file with text in it.")
    if size < 2:
        raise DataError(f"{path}: {size} byte(s) of text, fewer than the 2 tokens a language model needs to predict "
                        "one. Fix: use a longer file.")

    def make(start: int) -> Iterator[dict[str, Any]]:
        with open(path, "rb") as f:
            f.seek(start * block_size)
            while True:
                chunk = f.read(block_size)
                if len(chunk) < 2:
                    return
                yield {"input_ids": torch.frombuffer(bytearray(chunk), dtype=torch.uint8).long()}

    n = size // block_size + (1 if size % block_size >= 2 else 0)
    return SeekableStream(make, length=n)


__all__ = ["ResumableIterable", "SeekableStream", "stream_text_blocks"]
