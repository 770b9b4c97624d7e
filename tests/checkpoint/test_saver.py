"""The checkpoint saver's decisions and ranking (issue 17): files by progress, never by date; best.pt first."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer
from trainforge.checkpoint.io import safe_load
from trainforge.checkpoint.manager import INDEX, CheckpointManager, find_latest, ranked_checkpoints
from trainforge.checkpoint.saver import CheckpointSaver, due_names

YEAR_S = 365 * 24 * 3600


def _train(data, resume=None, **overrides):
    model, cfg = tiny_gpt(seed=1)
    settings = dict(epochs=2, batch_size=8, checkpoint_dir="ck", keep_last_n=2, run_name="r", track_runs=False,
                    plots=False)
    return Trainer(model, cfg, quiet_config(**{**settings, **overrides}), lm_task()).train(data[:32], data[32:],
                                                                                              resume)


def _payload(step: int, epoch: int, batches: int = 0) -> dict:
    return {"format_version": 1, "model": {}, "state": {"global_step": step, "epoch": epoch,
                                                        "batches_in_epoch": batches, "best_epoch": None}}


def test_due_names_put_best_first_and_follow_the_frequency():
    assert due_names(2, is_best=True, final=False, checkpoint_frequency=2, save_best=True) == ["best.pt", "epoch_2.pt"]
    assert due_names(1, is_best=True, final=False, checkpoint_frequency=2, save_best=True) == ["best.pt"]
    assert due_names(3, is_best=False, final=True, checkpoint_frequency=2, save_best=True) == ["epoch_3.pt"]
    assert due_names(3, is_best=True, final=False, checkpoint_frequency=2, save_best=False) == []


@pytest.mark.parametrize("drop_index", [False, True])
def test_rotation_with_future_dated_files_keeps_the_newest_progress(lm_blocks, drop_index):
    _train(lm_blocks, epochs=2)
    future = time.time() + YEAR_S  # copied from a host whose clock is ahead, or a restored backup
    for path in Path("ck").glob("*.pt"):
        os.utime(path, (future, future))
    if drop_index:  # then the progress is read from the files themselves
        Path("ck", INDEX).unlink()
    results = _train(lm_blocks, "auto", epochs=4)
    assert results["epochs_completed"] == 4
    assert sorted(p.name for p in Path("ck").glob("*.pt")) == ["best.pt", "epoch_3.pt", "epoch_4.pt"]
    assert find_latest("ck") == Path("ck/epoch_4.pt")


def test_rotation_ranks_by_progress_across_step_and_epoch_files_and_never_removes_the_resume_file():
    manager = CheckpointManager("ck", keep_last_n=2, async_commit=False)
    manager.save(_payload(9, 2), Path("ck/epoch_2.pt"))
    manager.save(_payload(11, 2, batches=2), Path("ck/step_00000011.pt"))
    past = time.time() - YEAR_S
    os.utime("ck/step_00000011.pt", (past, past))  # an old date must not make it the first to go
    manager.save(_payload(4, 1), Path("ck/epoch_1.pt"))  # written last, least progress: removed at once
    assert sorted(p.name for p in Path("ck").iterdir() if p.suffix == ".pt") == ["epoch_2.pt", "step_00000011.pt"]
    assert find_latest("ck") == Path("ck/step_00000011.pt")


def test_auto_resumes_from_best_pt_when_it_is_the_most_advanced_full_state():
    manager = CheckpointManager("ck", async_commit=False)
    manager.save(_payload(4, 1), Path("ck/epoch_1.pt"))
    manager.save(_payload(8, 2), Path("ck/best.pt"))  # e.g. a crash before epoch_2.pt, or checkpoint_frequency=2
    assert ranked_checkpoints("ck", include_best=True)[0] == Path("ck/best.pt")
    assert ranked_checkpoints("ck") == [Path("ck/epoch_1.pt")]  # rotation's view: periodic files only
    manager.save(_payload(8, 2), [Path("ck/best.pt"), Path("ck/epoch_2.pt")])
    assert ranked_checkpoints("ck", include_best=True)[0] == Path("ck/epoch_2.pt")  # equal progress: the periodic


def test_one_serialization_is_committed_under_best_and_the_epoch_name(lm_blocks):
    _train(lm_blocks, epochs=1, keep_last_n=None)
    best, epoch = safe_load(Path("ck/best.pt")), safe_load(Path("ck/epoch_1.pt"))
    assert Path("ck/best.pt").read_bytes() == Path("ck/epoch_1.pt").read_bytes()
    assert best["state"]["best_epoch"] == epoch["state"]["epoch"] == 1


def test_a_best_only_checkpoint_is_resumed_from_with_checkpoint_frequency_above_one(lm_blocks):
    _train(lm_blocks, epochs=1, checkpoint_frequency=3, keep_last_n=None, max_steps=None)
    Path("ck/epoch_1.pt").unlink()  # (the final epoch is always saved; take it away: best.pt is what remains)
    results = _train(lm_blocks, "auto", epochs=2, checkpoint_frequency=3, keep_last_n=None)
    assert results["global_step"] == 8 and results["epochs_completed"] == 2  # continued, not started over


def test_a_saver_without_a_directory_writes_nothing():
    built = []
    saver = CheckpointSaver(None, build=lambda st, kind: built.append(kind) or {})
    saver.step(type("S", (), {"global_step": 1, "epoch": 0, "batches_in_epoch": 1})())
    saver.flush()
    saver.close()
    assert built == [] and not Path("ck").exists()
