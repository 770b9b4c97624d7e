"""The embedded default corpus: Python's own standard library source, read as bytes.

Every CPython install ships its standard library as ``.py`` files, so a few hundred kilobytes of real,
structured text are available offline on any machine trainforge runs on. :func:`default_corpus_text` reads a
fixed list of well-known modules (present on CPython 3.10 to 3.13) in a fixed order, so the corpus is
deterministic for a given Python install (the files differ slightly between Python versions).

Text is modelled at the byte level: :func:`byte_encode` maps text to its UTF-8 bytes as int64 ids 0..255, so the
vocabulary is always 256 and no tokenizer is needed.

All functions here are pure: no network, no randomness, no global state.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

import torch
from torch import Tensor

from trainforge.errors import DataError

__all__ = [
    "CORPUS_FILES",
    "byte_decode",
    "byte_encode",
    "default_corpus_text",
    "default_lm_dataset",
    "lm_blocks",
    "num_dropped",
]

# Fixed and sorted; each exists on CPython 3.10-3.13. A file missing from an unusual install is skipped.
CORPUS_FILES: tuple[str, ...] = (
    "argparse.py",
    "collections/__init__.py",
    "contextlib.py",
    "dataclasses.py",
    "difflib.py",
    "fractions.py",
    "functools.py",
    "heapq.py",
    "json/decoder.py",
    "json/encoder.py",
    "shlex.py",
    "string.py",
    "textwrap.py",
)


def _stdlib_dir() -> pathlib.Path:
    return pathlib.Path(os.__file__).parent


def default_corpus_text(max_bytes: int = 1_000_000) -> str:
    """The standard-library files of :data:`CORPUS_FILES`, concatenated in order, at most ``max_bytes`` of UTF-8.

    Each file is preceded by a one-line header ``# ==== <relative path> ====``. Line endings are normalised to
    ``\\n``. If the total exceeds ``max_bytes`` the UTF-8 bytes are cut at ``max_bytes`` (a multi-byte character
    split by the cut is dropped), so ``len(result.encode()) <= max_bytes`` always holds.

    Raises:
        DataError: ``max_bytes`` is not positive, or none of the files could be found.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise DataError(f"max_bytes must be a positive int, got {max_bytes!r}; pass e.g. max_bytes=1_000_000")
    root = _stdlib_dir()
    parts: list[bytes] = []
    total = 0
    for rel in CORPUS_FILES:
        path = root / rel
        if not path.is_file():
            continue
        data = path.read_bytes().replace(b"\r\n", b"\n")
        chunk = f"# ==== {rel} ====\n".encode() + data
        if not chunk.endswith(b"\n"):
            chunk += b"\n"
        parts.append(chunk)
        total += len(chunk)
        if total >= max_bytes:
            break
    if not parts:
        raise DataError(
            f"none of the default corpus files {list(CORPUS_FILES)} exist under {root}; "
            "this Python install has no standard-library sources; pass your own text instead"
        )
    blob = b"".join(parts)[:max_bytes]
    return blob.decode("utf-8", errors="ignore")


def byte_encode(text: str) -> Tensor:
    """UTF-8 bytes of ``text`` as a 1-D int64 tensor of ids in ``0..255``."""
    data = bytearray(text.encode("utf-8"))
    if not data:
        return torch.zeros(0, dtype=torch.long)
    return torch.frombuffer(data, dtype=torch.uint8).to(torch.long)


def byte_decode(ids: Tensor | Sequence[int]) -> str:
    """Inverse of :func:`byte_encode`: ids ``0..255`` to text (invalid UTF-8 becomes U+FFFD).

    Raises:
        DataError: an id outside ``0..255``.
    """
    t = ids if isinstance(ids, Tensor) else torch.as_tensor(list(ids), dtype=torch.long)
    t = t.reshape(-1)
    if t.numel() == 0:
        return ""
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi > 255:
        raise DataError(
            f"byte ids must be in 0..255, got values in [{lo}, {hi}]; "
            "decode only ids produced by byte_encode (or a byte-level model with vocab_size=256)"
        )
    return bytes(t.to(torch.uint8).tolist()).decode("utf-8", errors="replace")


def _check_block_args(block_size: int, stride: int | None) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size <= 0:
        raise DataError(f"block_size must be a positive int, got {block_size!r}; pass e.g. block_size=64")
    step = block_size if stride is None else stride
    if isinstance(step, bool) or not isinstance(step, int) or step <= 0:
        raise DataError(f"stride must be a positive int or None, got {stride!r}; pass None for non-overlapping blocks")
    return step


def num_dropped(n_tokens: int, block_size: int, stride: int | None = None) -> int:
    """How many trailing tokens :func:`lm_blocks` leaves out: those after the end of the last full block.

    With ``stride > block_size`` the gaps between blocks are skipped too, by design; they are not counted here.
    """
    step = _check_block_args(block_size, stride)
    if n_tokens < block_size:
        return n_tokens
    n_blocks = (n_tokens - block_size) // step + 1
    return n_tokens - ((n_blocks - 1) * step + block_size)


def lm_blocks(ids: Tensor, block_size: int, stride: int | None = None) -> Tensor:
    """Cut a 1-D id sequence into rows ``[N, block_size]``.

    Block ``i`` is ``ids[i * stride : i * stride + block_size]``; ``stride`` defaults to ``block_size``
    (non-overlapping, contiguous blocks). The only tokens left out are the final partial block: the last
    :func:`num_dropped` tokens (fewer than ``stride``). The result is a fresh contiguous tensor, not a view.

    For next-token training a row of ``block_size`` tokens gives ``block_size - 1`` (input, target) pairs: a model
    fed ``row[:-1]`` needs ``max_seq_len >= block_size - 1``.

    Raises:
        DataError: ``ids`` is not 1-D, the sizes are not positive ints, or ``ids`` is shorter than one block.
    """
    step = _check_block_args(block_size, stride)
    if ids.dim() != 1:
        raise DataError(f"ids must be 1-D, got shape {tuple(ids.shape)}; flatten it first with ids.reshape(-1)")
    n = ids.numel()
    if n < block_size:
        raise DataError(
            f"ids has {n} tokens, fewer than one block of block_size={block_size}; "
            f"use a smaller block_size (<= {n}) or more text"
        )
    return ids.unfold(0, block_size, step).contiguous().clone()


def default_lm_dataset(
    block_size: int = 64, max_bytes: int = 1_000_000, val_fraction: float = 0.1
) -> tuple[Tensor, Tensor]:
    """``(train_blocks, val_blocks)``, each ``[N, block_size]`` int64, from :func:`default_corpus_text`.

    The byte sequence is split once at ``split = int(n * (1 - val_fraction))``: bytes before it make the training
    blocks and bytes from it on make the validation blocks, so validation text is never seen in training (the
    last part of the corpus is held out, not a random sample of blocks). Each side is cut by :func:`lm_blocks`
    with no overlap; each side may drop a final partial block. ``val_fraction=0`` gives an empty
    ``[0, block_size]`` validation tensor.

    Raises:
        DataError: ``val_fraction`` outside ``[0, 1)``, or either side shorter than one block.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction!r}; pass e.g. 0.1")
    ids = byte_encode(default_corpus_text(max_bytes=max_bytes))
    split = int(ids.numel() * (1.0 - float(val_fraction)))
    train = lm_blocks(ids[:split], block_size)
    if split == ids.numel():
        val = torch.zeros(0, block_size, dtype=torch.long)
    else:
        val = lm_blocks(ids[split:], block_size)
    return train, val
