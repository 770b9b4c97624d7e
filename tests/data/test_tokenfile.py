"""``trainforge.data.TokenFile``: memory-mapped ``[block_size]`` windows, integrity checks, workers, training."""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import trainforge.data.tokenfile as tokenfile_module
from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer
from trainforge.data import TokenFile
from trainforge.data.corpus import lm_blocks
from trainforge.data.prepare import prepare
from trainforge.errors import DataError


@pytest.fixture
def prepared(tmp_path) -> Path:
    """A char-level corpus with a 32-token vocabulary (4 specials + 28 characters), ~5,000 tokens."""
    rng = np.random.default_rng(0)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz .\n"[:28]))
    text = "".join(alphabet[rng.integers(0, 28, 5_000)])
    (tmp_path / "text.txt").write_text(text)
    prepare([tmp_path / "text.txt"], tmp_path / "corpus", tokenizer="char", val_fraction=0.2, chunk_bytes=1_000)
    return tmp_path / "corpus"


def _all_tokens(directory: Path, part: str = "train") -> torch.Tensor:
    meta = json.loads((directory / "meta.json").read_text())
    return torch.from_numpy(np.fromfile(directory / f"{part}.bin", dtype=meta["dtype"]).astype(np.int64))


def test_windows_are_the_lm_blocks_of_the_tokens(prepared):
    ids = _all_tokens(prepared)
    tf = TokenFile(prepared / "train.bin", 16)
    blocks = lm_blocks(ids, 16)
    assert len(tf) == len(blocks) == len(ids) // 16
    assert all(torch.equal(tf[i], blocks[i]) for i in range(len(tf)))
    assert tf[0].dtype == torch.int64 and tf[-1].shape == (16,)
    assert torch.equal(tf.batch([3, 0, 7]), blocks[[3, 0, 7]])
    overlapping = TokenFile(prepared, 16, stride=15)  # a folder means its train.bin
    assert torch.equal(overlapping[2], ids[30:46]) and len(overlapping) == (len(ids) - 16) // 15 + 1
    with pytest.raises(IndexError):
        tf[len(tf)]
    with pytest.raises(DataError, match="fewer than one window of block_size=100000"):
        TokenFile(prepared / "train.bin", 100_000)


def test_a_truncated_file_is_refused_with_both_sizes(prepared):
    path = prepared / "train.bin"
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 10)
    with pytest.raises(DataError) as err:
        TokenFile(path, 16)
    message = str(err.value)
    assert f"{size - 10:,} bytes" in message and f"meta.json says {size:,}" in message
    assert "rerun `trainforge prepare`" in message


def test_a_corrupted_file_is_refused_even_right_after_a_good_open(prepared):
    path = prepared / "train.bin"
    TokenFile(path, 16)  # verified and remembered for this version of the file
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))  # the same size; a new version (mtime), or a racy one: checked again
    with pytest.raises(DataError, match=r"sha256 [0-9a-f]{64} but meta.json says [0-9a-f]{64}.*rerun `trainforge prepare`"):
        TokenFile(path, 16)
    TokenFile(path, 16, verify=False)  # the size alone still matches: opened when asked not to verify


def test_the_hash_is_checked_once_per_file_version(prepared, monkeypatch):
    path = prepared / "train.bin"
    old = time.time_ns() - 10**10
    os.utime(path, ns=(old, old))  # an mtime well before the check: not "racy"
    hashed: list[str] = []
    real = tokenfile_module.file_sha256

    def counting(p):
        hashed.append(str(p))
        return real(p)

    monkeypatch.setattr(tokenfile_module, "file_sha256", counting)
    TokenFile(path, 16)
    assert len(hashed) == 1 and (prepared / ".train.bin.verified").is_file()
    tokenfile_module._verified.clear()  # a new process: the sidecar remembers
    TokenFile(path, 16)
    TokenFile(path, 8)
    assert len(hashed) == 1
    os.utime(path, ns=(old + 10**9, old + 10**9))  # touched: a new version, hashed again
    TokenFile(path, 16)
    assert len(hashed) == 2


def test_a_folder_without_meta_json_is_refused(prepared):
    (prepared / "meta.json").unlink()
    with pytest.raises(DataError, match=r"meta.json not found.*interrupted.*trainforge prepare"):
        TokenFile(prepared / "train.bin", 16)


def test_dataloader_workers_get_the_same_batches_and_a_small_pickle(prepared):
    tf = TokenFile(prepared / "train.bin", 16)
    _ = tf[0]  # mapped in this process: the pickle must still not carry the data
    assert len(pickle.dumps(tf)) < 5_000
    batches = [torch.cat(list(DataLoader(tf, batch_size=8, num_workers=w))) for w in (0, 2)]
    assert torch.equal(batches[0], batches[1])


def test_training_on_a_token_file_equals_training_on_the_same_tensor(prepared):
    """The same windows in the same order as an in-memory tensor [N, T]: the same losses and weights."""
    results = []
    for data in (TokenFile(prepared / "train.bin", 16), lm_blocks(_all_tokens(prepared), 16)):
        model, cfg = tiny_gpt(vocab=32, seq=16)
        val = TokenFile(prepared / "val.bin", 16) if isinstance(data, TokenFile) else lm_blocks(
            _all_tokens(prepared, "val"), 16)
        results.append(Trainer(model, cfg, quiet_config(epochs=2), lm_task(vocab=32, seq=16)).train(data, val))
    token_file, tensor = results
    assert token_file["loss_history"] == pytest.approx(tensor["loss_history"], abs=1e-6)
    assert token_file["val_loss_history"] == pytest.approx(tensor["val_loss_history"], abs=1e-6)
    for key, value in token_file["final_model_state"].items():
        torch.testing.assert_close(value, tensor["final_model_state"][key], atol=1e-6, rtol=0)
