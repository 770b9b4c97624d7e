"""Tests of the embedded default corpus (stdlib sources), byte codec and LM blocking."""

from __future__ import annotations

import pytest
import torch

from trainforge.data.corpus import (
    CORPUS_FILES,
    byte_decode,
    byte_encode,
    default_corpus_text,
    default_lm_dataset,
    lm_blocks,
    num_dropped,
)
from trainforge.errors import DataError


def test_corpus_is_deterministic_and_capped() -> None:
    a = default_corpus_text(max_bytes=200_000)
    b = default_corpus_text(max_bytes=200_000)
    assert a == b
    assert len(a.encode("utf-8")) <= 200_000
    assert len(a.encode("utf-8")) > 190_000  # the stdlib files are far larger than this cap
    assert a.startswith(f"# ==== {CORPUS_FILES[0]} ====\n")
    # a smaller cap is a prefix of a larger one
    assert a.startswith(default_corpus_text(max_bytes=5_000)[:4_990])
    assert "\r\n" not in a


def test_full_corpus_contains_several_files() -> None:
    text = default_corpus_text()
    assert 300_000 < len(text.encode("utf-8")) <= 1_000_000
    assert text.count("# ==== ") >= 10
    assert list(CORPUS_FILES) == sorted(CORPUS_FILES)


def test_bad_max_bytes() -> None:
    with pytest.raises(DataError, match="max_bytes must be a positive int, got 0"):
        default_corpus_text(max_bytes=0)


def test_byte_round_trip() -> None:
    text = "def f(x):\n    return x  # café ✓ \U0001f600\n"
    ids = byte_encode(text)
    assert ids.dtype == torch.int64 and ids.dim() == 1
    assert len(ids) == len(text.encode("utf-8"))
    assert int(ids.min()) >= 0 and int(ids.max()) <= 255
    assert byte_decode(ids) == text
    assert byte_decode(ids.tolist()) == text
    assert byte_encode("").shape == (0,) and byte_decode(torch.zeros(0, dtype=torch.long)) == ""
    # invalid UTF-8 is replaced, not an exception
    assert byte_decode([0xFF, 0x41]) == "\ufffdA"
    with pytest.raises(DataError, match=r"0\.\.255, got values in \[0, 300\]"):
        byte_decode([0, 300])


def test_lm_blocks_shapes_and_drop_rule() -> None:
    ids = torch.arange(103)
    blocks = lm_blocks(ids, 10)
    assert blocks.shape == (10, 10)
    assert torch.equal(blocks.reshape(-1), ids[:100])
    assert num_dropped(103, 10) == 3
    strided = lm_blocks(ids, 10, stride=5)
    assert strided.shape == (19, 10)
    assert torch.equal(strided[1], ids[5:15])
    assert num_dropped(103, 10, stride=5) == 3
    assert lm_blocks(torch.arange(10), 10).shape == (1, 10)
    assert num_dropped(100, 10) == 0
    # independent of the input storage
    blocks[0, 0] = -1
    assert ids[0] == 0


def test_lm_blocks_errors() -> None:
    with pytest.raises(DataError, match="ids has 5 tokens, fewer than one block of block_size=10"):
        lm_blocks(torch.arange(5), 10)
    with pytest.raises(DataError, match="must be 1-D"):
        lm_blocks(torch.zeros(2, 20, dtype=torch.long), 10)
    with pytest.raises(DataError, match="block_size must be a positive int"):
        lm_blocks(torch.arange(5), 0)
    with pytest.raises(DataError, match="stride must be a positive int"):
        lm_blocks(torch.arange(50), 10, stride=0)


def test_default_lm_dataset_split_is_deterministic_and_disjoint() -> None:
    max_bytes, bs = 100_000, 64
    train, val = default_lm_dataset(block_size=bs, max_bytes=max_bytes, val_fraction=0.1)
    train2, val2 = default_lm_dataset(block_size=bs, max_bytes=max_bytes, val_fraction=0.1)
    assert torch.equal(train, train2) and torch.equal(val, val2)
    assert train.dtype == val.dtype == torch.int64
    assert train.shape[1] == val.shape[1] == bs

    ids = byte_encode(default_corpus_text(max_bytes=max_bytes))
    split = int(ids.numel() * 0.9)
    # train blocks are exactly the head of the text before the split; val blocks start at the split
    assert train.shape[0] == split // bs
    assert torch.equal(train.reshape(-1), ids[: train.numel()])
    assert torch.equal(val.reshape(-1), ids[split : split + val.numel()])
    assert train.numel() <= split  # no training byte comes from the validation region
    assert val.shape[0] == (ids.numel() - split) // bs


def test_default_lm_dataset_val_fraction() -> None:
    train, val = default_lm_dataset(block_size=32, max_bytes=20_000, val_fraction=0.0)
    assert val.shape == (0, 32) and train.shape[0] == len(default_corpus_text(max_bytes=20_000).encode()) // 32
    with pytest.raises(DataError, match=r"val_fraction must be in \[0, 1\), got 1.0"):
        default_lm_dataset(val_fraction=1.0)
