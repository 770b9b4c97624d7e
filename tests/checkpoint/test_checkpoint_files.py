"""Checkpoint files on disk: atomic writes, failed writes, rotation, the newest-file search, and the schedule."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import torch

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import CheckpointError, Trainer
from trainforge.checkpoint import CheckpointManager, atomic_save, find_latest, safe_load
from trainforge.checkpoint.manager import epoch_path, step_path

REAL_SAVE = torch.save


def _payload(epoch: int, step: int, batches_in_epoch: int = 0) -> dict:
    state = {"epoch": epoch, "global_step": step, "batches_in_epoch": batches_in_epoch}
    return {"format_version": 1, "model": {"w": torch.full((2,), float(step))}, "state": state}


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp") or p.name.startswith("."))


def _train(data, val=None, **overrides):
    model, model_config = tiny_gpt()
    config = quiet_config(**{"checkpoint_dir": "ckpt", **overrides})
    return Trainer(model, model_config, config, lm_task()).train(data, val)


def _names(directory="ckpt") -> list[str]:
    return sorted(p.name for p in Path(directory).iterdir() if p.name != "index.json")  # the saver's progress index


# ------------------------------------------------------------------ atomic writes


def test_atomic_save_writes_the_file_and_leaves_no_temp_files():
    directory = Path("ckpt")
    atomic_save(_payload(1, 4), directory / "epoch_1.pt")
    atomic_save(_payload(1, 5), directory / "epoch_1.pt")  # replacing an existing file
    assert _names() == ["epoch_1.pt"]
    assert safe_load(directory / "epoch_1.pt")["state"]["global_step"] == 5


def _save_that_fails_midway(obj, f, *args, **kwargs):
    with open(f, "ab") if isinstance(f, (str, os.PathLike)) else contextlib.nullcontext(f) as out:  # a path or a file
        out.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the disk, then the disk is full
    raise OSError(28, "No space left on device")


def test_a_write_failing_midway_keeps_the_previous_file_and_no_temp_file(monkeypatch):
    path = Path("ckpt") / "epoch_1.pt"
    atomic_save(_payload(1, 4), path)
    monkeypatch.setattr(torch, "save", _save_that_fails_midway)
    with pytest.raises(OSError, match="No space left"):
        atomic_save(_payload(1, 99), path)
    assert _leftovers(path.parent) == []
    assert _names() == ["epoch_1.pt"]
    monkeypatch.setattr(torch, "save", REAL_SAVE)
    assert safe_load(path)["state"]["global_step"] == 4


def test_manager_turns_a_failed_write_into_a_checkpoint_error(monkeypatch):
    manager = CheckpointManager("ckpt", keep_last_n=2)
    manager.save(_payload(1, 4), epoch_path("ckpt", 1))
    manager.wait()
    monkeypatch.setattr(torch, "save", _save_that_fails_midway)
    with pytest.raises(CheckpointError, match=r"Could not write checkpoint '.*epoch_2\.pt': .*No space left on "
                                              r"device\. The previous checkpoint files are intact\. Fix: free disk "
                                              r"space or choose a writable checkpoint_dir"):
        manager.save(_payload(2, 8), epoch_path("ckpt", 2))
    assert _names() == ["epoch_1.pt"]
    assert safe_load(epoch_path("ckpt", 1))["state"]["global_step"] == 4


def test_training_survives_a_failing_checkpoint_write(lm_blocks, monkeypatch):
    def fail_for_epoch_2(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("kind") == "epoch" and obj["state"]["epoch"] == 2:
            _save_that_fails_midway(obj, f)
        return REAL_SAVE(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fail_for_epoch_2)
    with pytest.warns(UserWarning, match=r"Could not write checkpoint .*epoch_2\.pt.*previous checkpoint files are "
                                         r"intact"):
        results = _train(lm_blocks[:16], epochs=3, save_best=False)
    assert len(results["loss_history"]) == 3  # training went on to the end
    assert len(results["checkpoint_errors"]) == 1 and "epoch_2.pt" in results["checkpoint_errors"][0]
    assert _names() == ["epoch_1.pt", "epoch_3.pt"]
    assert sorted(Path(p).name for p in results["checkpoint_paths"]) == ["epoch_1.pt", "epoch_3.pt"]


# ------------------------------------------------------------------ rotation


def test_keep_last_n_keeps_the_two_newest_periodic_files_and_never_best(lm_blocks):
    # lr ~0: val/loss never improves after epoch 1, so best.pt is the oldest file and must still survive.
    results = _train(lm_blocks[:16], lm_blocks[40:], epochs=5, keep_last_n=2, learning_rate=1e-12,
                     checkpoint_every_n_steps=3)
    assert results["best_epoch"] == 1
    names = _names()
    assert "best.pt" in names
    periodic = [n for n in names if n != "best.pt"]
    assert periodic == ["epoch_5.pt", "step_00000009.pt"]  # the last two written: step 9 (mid-epoch 5), epoch 5
    assert safe_load(Path("ckpt") / "best.pt")["state"]["epoch"] == 1


def test_rotation_ranks_files_written_within_one_clock_tick_by_progress():
    # Filesystem timestamps are coarse (a few ms): files written in quick succession share an mtime. The name
    # order ("epoch_10" < "epoch_9") must not decide then.
    manager = CheckpointManager("ckpt", keep_last_n=2)
    for epoch in (9, 10, 11):
        manager.save(_payload(epoch, epoch * 10), epoch_path("ckpt", epoch))
        manager.wait()
        for path in Path("ckpt").iterdir():
            os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    manager.save(_payload(12, 120), epoch_path("ckpt", 12))
    manager.wait()
    assert _names() == ["epoch_11.pt", "epoch_12.pt"]


def test_rotation_without_keep_last_n_deletes_nothing():
    manager = CheckpointManager("ckpt", async_commit=False)  # the synchronous mode: each file is in place at once
    for epoch in range(1, 5):
        manager.save(_payload(epoch, epoch * 2), epoch_path("ckpt", epoch))
        assert len(_names()) == epoch
    assert len(_names()) == 4


# ------------------------------------------------------------------ the newest checkpoint


def test_find_latest_picks_the_most_progress_across_epoch_and_step_files():
    directory = Path("ckpt")
    atomic_save(_payload(2, 8), epoch_path(directory, 2))
    atomic_save(_payload(2, 12, batches_in_epoch=4), step_path(directory, 12))  # mid-epoch 3, newer than epoch 2
    atomic_save(_payload(1, 4), epoch_path(directory, 1))  # written last, but older progress
    atomic_save(_payload(9, 999), directory / "best.pt")  # best.pt is never the resume point
    assert find_latest(directory) == step_path(directory, 12)
    atomic_save(_payload(3, 16), epoch_path(directory, 3))
    assert find_latest(directory) == epoch_path(directory, 3)


def test_find_latest_prefers_the_epoch_end_file_at_the_same_step():
    directory = Path("ckpt")
    atomic_save(_payload(2, 8), epoch_path(directory, 2))
    atomic_save(_payload(1, 8, batches_in_epoch=16), step_path(directory, 8))  # same step, before epoch end
    assert find_latest(directory) == epoch_path(directory, 2)


def test_find_latest_skips_a_corrupt_file_with_a_warning():
    directory = Path("ckpt")
    atomic_save(_payload(2, 8), epoch_path(directory, 2))
    epoch_path(directory, 7).write_bytes(os.urandom(512))  # would be the newest if it were readable
    with pytest.warns(UserWarning, match=r"Skipping unreadable checkpoint '.*epoch_7\.pt'"):
        assert find_latest(directory) == epoch_path(directory, 2)


def test_find_latest_in_an_empty_or_missing_directory():
    assert find_latest("nowhere") is None
    Path("empty").mkdir()
    assert find_latest("empty") is None


# ------------------------------------------------------------------ the schedule


@pytest.mark.parametrize("key", ["checkpoint_frequency", "save_every_n_epochs"])
def test_checkpoint_frequency_writes_every_nth_epoch_and_the_final_one(lm_blocks, key):
    results = _train(lm_blocks[:16], epochs=5, save_best=False, **{key: 2})
    assert _names() == ["epoch_2.pt", "epoch_4.pt", "epoch_5.pt"]
    assert sorted(Path(p).name for p in results["checkpoint_paths"]) == _names()
    assert [safe_load(Path("ckpt") / n)["state"]["epoch"] for n in _names()] == [2, 4, 5]
