"""``TokenFile``: ``[block_size]`` windows of a memory-mapped token file written by ``trainforge prepare``.

A prepared corpus is a folder (see :mod:`trainforge.data.prepare`)::

    DIR/train.bin   token ids back to back, little-endian uint16 (uint32 when the vocabulary needs it)
    DIR/val.bin     the same for the held-out text (absent when prepared with --val-fraction 0)
    DIR/meta.json   dtype, vocab_size, token counts, the tokenizer, sha256 and size of each .bin (written last)
    DIR/tokenizer/  the tokenizer (``trainforge.data.tokenizers.load_tokenizer``)

``TokenFile(DIR / "train.bin", block_size)`` is a map-style dataset: item ``i`` is the int64 tensor
``tokens[i * stride : i * stride + block_size]`` (``stride`` defaults to ``block_size``: the rows
``trainforge.data.corpus.lm_blocks`` would cut from the same tokens). Nothing is read until an item is asked for,
so memory does not grow with the file, and the resumable sampler positions it by arithmetic like any dataset.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from trainforge.data.collate import PreBatched
from trainforge.errors import DataError

if TYPE_CHECKING:
    from trainforge.tasks import TaskSpec

META_NAME = "meta.json"
FORMAT = "trainforge-tokens"
FORMAT_VERSION = 1
DTYPES: dict[str, np.dtype[Any]] = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}  # little-endian always
# A sidecar is trusted only when the file's mtime is this much older than the check that wrote it: file system
# timestamps are coarse (a few ms), so a file rewritten just after it was hashed could keep the same mtime.
_RACY_NS = 2_000_000_000
REMAP_WINDOWS = 64  # windows served from one memory mapping before it is renewed (see TokenFile.tokens)
_verified: set[tuple[str, int, int, str]] = set()  # (path, size, mtime_ns, sha256) checked in this process

__all__ = ["TokenFile", "dtype_for_vocab", "file_sha256", "read_meta"]


def dtype_for_vocab(vocab_size: int) -> str:
    """``"uint16"`` when every id fits in 16 bits (vocab_size <= 65536), else ``"uint32"``."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file, read in 1 MiB pieces (constant memory, no page of it mapped into the process)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """``DIR/meta.json`` of a prepared corpus, checked for the fields this module reads."""
    path = Path(directory) / META_NAME
    if not path.is_file():
        raise DataError(f"{path} not found: {Path(directory)} is not a finished `trainforge prepare` output (meta.json "
                        "is written last, so a prepare that was interrupted leaves none). Fix: run `trainforge prepare "
                        f"TEXT... --out {Path(directory)}` (again).")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc}). Fix: rerun `trainforge prepare` into {Path(directory)}.") from exc
    missing = [k for k in ("dtype", "vocab_size", "files") if k not in meta] if isinstance(meta, dict) else ["all"]
    if missing or meta.get("format") != FORMAT or meta.get("dtype") not in DTYPES:
        raise DataError(f"{path}: not a trainforge token-file meta.json (format {meta.get('format') if isinstance(meta, dict) else None!r}, "
                        f"missing {missing}, dtype {meta.get('dtype') if isinstance(meta, dict) else None!r}). "
                        "Fix: rerun `trainforge prepare`.")
    return dict(meta)


class TokenFile(Dataset[Tensor]):
    """Map-style dataset of ``[block_size]`` int64 windows over a memory-mapped ``.bin`` token file.

    Args:
        path: ``DIR/train.bin`` or ``DIR/val.bin`` of a ``trainforge prepare`` output (``DIR/meta.json`` describes
            it), or a folder (its ``train.bin``).
        block_size: tokens per window (for a causal LM, the model's ``max_seq_len``).
        stride: tokens between window starts (default ``block_size``: no overlap; the trailing tokens that do not
            fill a window are left out, as ``lm_blocks`` does).
        verify: check the file's sha256 against meta.json (once per file version, see :meth:`_verify`). Its size
            is always checked.

    Raises:
        DataError: no meta.json (an unfinished prepare), a size or sha256 that disagrees with it, or a file shorter
            than one window.
    """

    def __init__(self, path: str | os.PathLike[str], block_size: int, stride: int | None = None,
                 verify: bool = True) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / "train.bin"
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise DataError(f"block_size must be a positive int, got {block_size!r}; pass e.g. the model's max_seq_len")
        step = block_size if stride is None else stride
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise DataError(f"stride must be a positive int or None, got {stride!r}; None gives windows that do not "
                            "overlap")
        self.path = path
        self.block_size = block_size
        self.stride = step
        self.meta = read_meta(path.parent)
        entry = self.meta["files"].get(path.name)
        if not path.is_file() or entry is None:
            listed = sorted(self.meta["files"])
            raise DataError(f"{path}: {'no such file' if not path.is_file() else 'not listed in meta.json'} (meta.json "
                            f"lists {listed}). Fix: give one of those files, or rerun `trainforge prepare`.")
        self.dtype = DTYPES[self.meta["dtype"]]
        self.vocab_size = int(self.meta["vocab_size"])
        self.num_tokens = int(entry["tokens"])
        self._check_size(entry)
        if verify:
            self._verify(entry)
        if self.num_tokens < block_size:
            raise DataError(f"{path}: {self.num_tokens} tokens, fewer than one window of block_size={block_size}. "
                            f"Fix: use a block_size <= {self.num_tokens}, or prepare more text.")
        self._length = (self.num_tokens - block_size) // step + 1
        self._tokens: np.ndarray[Any, Any] | None = None  # mapped on first access, in each process
        self._served = 0  # windows read from the current mapping

    # ------------------------------------------------------------------ integrity
    def _check_size(self, entry: dict[str, Any]) -> None:
        expected = int(entry["bytes"])
        actual = self.path.stat().st_size
        if actual != expected or expected != self.num_tokens * self.dtype.itemsize:
            raise DataError(f"{self.path}: the file has {actual:,} bytes but meta.json says {expected:,} "
                            f"({self.num_tokens:,} {self.meta['dtype']} tokens): it was truncated, extended or "
                            "replaced after `trainforge prepare` wrote it. Fix: rerun `trainforge prepare` into "
                            f"{self.path.parent}.")

    def _verify(self, entry: dict[str, Any]) -> None:
        """Compare the file's sha256 with meta.json's, once per version of the file.

        Hashing reads the whole file (~1 s per GB), so doing it at every open would add that to every run start and
        every DataLoader worker. A version is (size, mtime): a file rewritten or edited in place gets a new mtime.
        A good check is remembered in this process and in a sidecar ``.<name>.verified`` next to the file (when the
        folder is writable), so the next runs open it at once. The size is compared at every open (above): it is
        free and catches the usual accident, a truncated copy. What the cache cannot catch is a change that keeps
        size and mtime (bit rot on disk); ``verify=True`` on a fresh copy, or deleting the sidecar, checks again.
        """
        stat = self.path.stat()
        expected = str(entry["sha256"])
        key = (str(self.path.resolve()), stat.st_size, stat.st_mtime_ns, expected)
        if key in _verified or self._sidecar_says_verified(stat, expected):
            _verified.add(key)
            return
        checked_at = time.time_ns()
        actual = file_sha256(self.path)
        if actual != expected:
            raise DataError(f"{self.path}: sha256 {actual} but meta.json says {expected}: the file's contents changed "
                            "after `trainforge prepare` wrote it (corrupted, or written by another prepare). Fix: rerun "
                            f"`trainforge prepare` into {self.path.parent}.")
        _verified.add(key)
        self._write_sidecar(stat, expected, checked_at)

    def _sidecar(self) -> Path:
        return self.path.with_name(f".{self.path.name}.verified")

    def _sidecar_says_verified(self, stat: os.stat_result, sha256: str) -> bool:
        try:
            record = json.loads(self._sidecar().read_text(encoding="utf-8"))
            return (record["size"] == stat.st_size and record["mtime_ns"] == stat.st_mtime_ns
                    and record["sha256"] == sha256 and stat.st_mtime_ns + _RACY_NS < int(record["checked_at_ns"]))
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def _write_sidecar(self, stat: os.stat_result, sha256: str, checked_at: int) -> None:
        from trainforge.atomic import atomic_write_text

        record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256, "checked_at_ns": checked_at}
        with contextlib.suppress(OSError):  # a read-only folder: the check is remembered in this process only
            atomic_write_text(self._sidecar(), json.dumps(record))

    # ------------------------------------------------------------------ data
    @property
    def tokens(self) -> np.ndarray[Any, Any]:
        """The whole file as a read-only array over a memory mapping (pages are read from disk only when touched).

        The mapping is renewed after every ``REMAP_WINDOWS`` windows served: a page of a mapping, once touched,
        counts in the process's resident memory until the mapping goes, and the kernel maps whole cached folios
        around each touched page (~350 KB per random window on Linux 6, measured): a long run would otherwise
        grow to the file's size (as nanoGPT, which maps the file again for every batch, notes). Renewing costs ~30 us.
        """
        if self._tokens is None or self._served >= REMAP_WINDOWS:
            self._tokens = None  # the old mapping is unmapped with its last reference (the windows are copies)
            with open(self.path, "rb") as f:
                mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            self._tokens = np.frombuffer(mapping, dtype=self.dtype, count=self.num_tokens)
            self._served = 0
        return self._tokens

    def __len__(self) -> int:
        return self._length

    def _start(self, index: int) -> int:
        i = int(index)
        if i < 0:
            i += self._length
        if not 0 <= i < self._length:
            raise IndexError(f"TokenFile index {index} out of range for {self._length} windows")
        return i * self.stride

    def __getitem__(self, index: int) -> Tensor:
        start = self._start(index)
        window = self.tokens[start:start + self.block_size].astype(np.int64)
        self._served += 1
        return torch.from_numpy(window)

    def batch(self, indices: Sequence[int]) -> Tensor:
        """Windows ``indices`` stacked into one ``[len(indices), block_size]`` int64 tensor, read in one go."""
        starts = np.fromiter((self._start(i) for i in indices), dtype=np.int64, count=len(indices))
        rows = self.tokens[starts[:, None] + np.arange(self.block_size, dtype=np.int64)].astype(np.int64)
        self._served += len(starts)
        return torch.from_numpy(rows)

    def samples(self, task: TaskSpec) -> TokenSamples:
        """This file as the dict samples the trainer collates (``{task.input_field: window}``)."""
        return TokenSamples(self, task)

    # ------------------------------------------------------------------ processes
    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get the description, not the mapping: each maps the file itself on first access (a
        # pickled memmap would be copied in full). The checks ran here already.
        state = dict(self.__dict__)
        state["_tokens"], state["_served"] = None, 0
        return state

    def __repr__(self) -> str:
        return (f"TokenFile({str(self.path)!r}, block_size={self.block_size}, windows={self._length:,}, "
                f"tokens={self.num_tokens:,}, dtype={self.meta['dtype']})")


class TokenSamples(Dataset[dict[str, Any]]):
    """A :class:`TokenFile` as the trainer's dict samples; a batch of windows is read with one indexing call."""

    def __init__(self, tokens: TokenFile, task: TaskSpec) -> None:
        self.tokens = tokens
        self.field = task.input_field

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {self.field: self.tokens[index]}

    def __getitems__(self, indices: Sequence[int]) -> Any:
        # the same batch as collating the windows one by one (equal lengths: nothing to pad)
        return PreBatched({self.field: self.tokens.batch(indices)})
