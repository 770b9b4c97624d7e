"""Background commits: ``CheckpointManager.save`` writes the bytes, one commit thread fsyncs and renames them.

Real files throughout. Where a test needs the commit to be slow or held back (to show who waits for it), the
commit thread's ``os.fsync`` is wrapped: the real fsync still runs, later.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as wait_all
from pathlib import Path

import pytest
import torch

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import CheckpointError, Trainer
from trainforge.checkpoint import CheckpointManager, safe_load
from trainforge.checkpoint.manager import epoch_path, list_checkpoints
from trainforge.trainer.build import _observes_checkpoints
from trainforge.trainer.events import Callback

REAL_FSYNC = os.fsync


def _payload(epoch: int, step: int) -> dict:
    state = {"epoch": epoch, "global_step": step, "batches_in_epoch": 0}
    return {"format_version": 1, "model": {"w": torch.full((2,), float(step))}, "state": state}


def _temporaries(directory: str | Path = "ckpt") -> list[str]:
    return sorted(p.name for p in Path(directory).iterdir() if p.name.endswith(".tmp"))


def _names(directory: str | Path = "ckpt") -> list[str]:
    return sorted(p.name for p in Path(directory).iterdir() if p.name != "index.json")  # the saver's progress index


def _on_commit_thread() -> bool:
    return threading.current_thread().name.startswith("trainforge-ckpt")


def _delay_commits(monkeypatch, seconds: float) -> None:
    """The commit thread's fsyncs take ``seconds`` longer (a slow disk); other threads' are untouched."""
    def fsync(fd: int) -> None:
        if _on_commit_thread():
            time.sleep(seconds)
        REAL_FSYNC(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def _hold_commits(monkeypatch) -> threading.Event:
    """The commit thread's fsyncs wait until the returned event is set (10 s at most: a test must not hang)."""
    gate = threading.Event()

    def fsync(fd: int) -> None:
        if _on_commit_thread():
            gate.wait(timeout=10)
        REAL_FSYNC(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return gate


# ------------------------------------------------------------------ the manager


def test_save_returns_before_the_commit_and_wait_puts_the_file_in_place(monkeypatch):
    gate = _hold_commits(monkeypatch)
    manager = CheckpointManager("ckpt")
    path = epoch_path("ckpt", 1)
    try:
        handle = manager.save(_payload(1, 4), path)
        assert isinstance(handle, Future) and not handle.done()  # the bytes are written, the commit is held
        assert not path.exists() and len(_temporaries()) == 1
        gate.set()
        manager.wait()
    finally:
        gate.set()
        manager.close()
    assert handle.result() == path
    assert _names() == ["epoch_1.pt"]  # no temporary left
    assert safe_load(path)["state"]["global_step"] == 4


def test_the_payload_may_change_as_soon_as_save_returns(monkeypatch):
    gate = _hold_commits(monkeypatch)
    manager = CheckpointManager("ckpt")
    payload = _payload(1, 4)
    manager.save(payload, epoch_path("ckpt", 1))
    payload["model"]["w"].fill_(-1.0)  # the training thread goes on updating the weights in place
    gate.set()
    manager.close()
    assert torch.equal(safe_load(epoch_path("ckpt", 1))["model"]["w"], torch.full((2,), 4.0))


def test_keep_last_n_keeps_the_newest_files_when_saves_queue_up_back_to_back(monkeypatch):
    _delay_commits(monkeypatch, 0.01)  # the six saves are queued before the first commit is done
    manager = CheckpointManager("ckpt", keep_last_n=3)
    for epoch in range(1, 7):
        manager.save(_payload(epoch, epoch * 10), epoch_path("ckpt", epoch))
    manager.close()
    assert _names() == ["epoch_4.pt", "epoch_5.pt", "epoch_6.pt"]
    assert [safe_load(p)["state"]["epoch"] for p in list_checkpoints("ckpt")] == [4, 5, 6]


def test_save_waits_for_the_oldest_commit_when_too_many_are_queued(monkeypatch):
    gate = _hold_commits(monkeypatch)
    manager = CheckpointManager("ckpt", max_queued_commits=1)
    opener = threading.Timer(0.2, gate.set)  # the disk catches up later, on another thread
    try:
        first = manager.save(_payload(1, 4), epoch_path("ckpt", 1))
        opener.start()
        manager.save(_payload(2, 8), epoch_path("ckpt", 2))  # two commits queued, one allowed: waits for the first
        assert first.done()
    finally:
        gate.set()
        opener.cancel()
        manager.close()
    assert _names() == ["epoch_1.pt", "epoch_2.pt"]


def test_the_same_name_saved_twice_in_a_row_ends_with_the_newer_file(monkeypatch):
    _delay_commits(monkeypatch, 0.01)
    manager = CheckpointManager("ckpt")
    manager.save(_payload(1, 4), Path("ckpt") / "best.pt")
    manager.save(_payload(2, 8), Path("ckpt") / "best.pt")  # commits land in the order of the saves
    manager.close()
    assert _names() == ["best.pt"]
    assert safe_load(Path("ckpt") / "best.pt")["state"]["global_step"] == 8


def _blocked(path: Path) -> None:
    """A non-empty directory under a checkpoint's name: renaming the finished file onto it fails (EISDIR)."""
    path.mkdir(parents=True)
    (path / "keep.txt").write_text("not a checkpoint")


COMMIT_FAILED = (r"Could not write checkpoint '.*epoch_2\.pt': .*(Is a directory|Directory not empty).*commit "
                 r"thread\)\. The previous checkpoint files are intact\. Fix: ")


def test_a_failed_commit_is_raised_by_wait_and_keeps_the_previous_files():
    manager = CheckpointManager("ckpt")
    manager.save(_payload(1, 4), epoch_path("ckpt", 1))
    manager.wait()
    _blocked(epoch_path("ckpt", 2))
    handle = manager.save(_payload(2, 8), epoch_path("ckpt", 2))  # the bytes are written: no error yet
    with pytest.raises(CheckpointError, match=COMMIT_FAILED):
        manager.wait()
    assert isinstance(handle.exception(), CheckpointError)
    assert _temporaries() == []
    assert _names() == ["epoch_1.pt", "epoch_2.pt"] and epoch_path("ckpt", 2).is_dir()
    assert safe_load(epoch_path("ckpt", 1))["state"]["global_step"] == 4
    manager.wait()  # reported once
    manager.close()


def test_a_failed_commit_nobody_waited_for_is_raised_by_the_next_save():
    manager = CheckpointManager("ckpt")
    _blocked(epoch_path("ckpt", 2))
    wait_all([manager.save(_payload(2, 8), epoch_path("ckpt", 2))])  # done, failed, not collected by wait()
    with pytest.raises(CheckpointError, match=COMMIT_FAILED):
        manager.save(_payload(3, 12), epoch_path("ckpt", 3))
    assert not epoch_path("ckpt", 3).exists() and _temporaries() == []  # that save wrote nothing: say it again
    manager.save(_payload(3, 12), epoch_path("ckpt", 3))
    manager.close()
    assert safe_load(epoch_path("ckpt", 3))["state"]["global_step"] == 12


def test_check_reports_a_failed_commit_without_waiting_and_close_is_idempotent():
    manager = CheckpointManager("ckpt")
    manager.check()  # nothing queued
    _blocked(epoch_path("ckpt", 2))
    wait_all([manager.save(_payload(2, 8), epoch_path("ckpt", 2))])
    with pytest.raises(CheckpointError, match=COMMIT_FAILED):
        manager.check()
    manager.close()
    manager.close()
    manager.save(_payload(3, 12), epoch_path("ckpt", 3))  # a closed manager starts its commit thread again
    manager.close()
    assert epoch_path("ckpt", 3).is_file()


def test_synchronous_mode_commits_inside_save_and_raises_there():
    manager = CheckpointManager("ckpt", async_commit=False)
    handle = manager.save(_payload(1, 4), epoch_path("ckpt", 1))
    assert handle.done() and handle.result() == epoch_path("ckpt", 1) and _names() == ["epoch_1.pt"]
    _blocked(epoch_path("ckpt", 2))
    with pytest.raises(CheckpointError, match=COMMIT_FAILED):
        manager.save(_payload(2, 8), epoch_path("ckpt", 2))
    assert _temporaries() == []


# ------------------------------------------------------------------ the Trainer


def _train(data, callbacks=(), **overrides):
    model, model_config = tiny_gpt()
    config = quiet_config(**{"checkpoint_dir": "ckpt", **overrides})
    return Trainer(model, model_config, config, lm_task(), callbacks=list(callbacks)).train(data)


def test_on_checkpoint_saved_sees_the_complete_file_under_its_final_name(lm_blocks, monkeypatch):
    _delay_commits(monkeypatch, 0.05)  # without the wait, the file would not be there yet
    seen: list[tuple[str, int]] = []

    class Reader(Callback):
        def on_checkpoint_saved(self, state):
            path = Path(state.checkpoint_path)
            assert path.is_file() and not any(n.startswith(f".{path.name}.") for n in _names())
            seen.append((path.name, safe_load(path)["state"]["global_step"]))

    _train(lm_blocks[:16], callbacks=[Reader()], epochs=2, checkpoint_every_n_steps=1, save_best=False)
    assert seen == [("step_00000001.pt", 1), ("step_00000002.pt", 2), ("epoch_1.pt", 2),
                    ("step_00000003.pt", 3), ("step_00000004.pt", 4), ("epoch_2.pt", 4)]


def test_without_an_observer_training_does_not_wait_and_fit_end_finds_every_file(lm_blocks, monkeypatch):
    gate = _hold_commits(monkeypatch)
    at_fit_end: list[str] = []

    class Watch(Callback):  # Callback's own on_checkpoint_saved (a no-op) does not make saves wait
        def on_step_end(self, state):
            if state.global_step == 2:  # step 1's commit is held back, and training has gone on
                assert not (Path("ckpt") / "step_00000001.pt").exists() and _temporaries()
                gate.set()

        def on_fit_end(self, state):
            at_fit_end.extend(_names())

    try:
        results = _train(lm_blocks[:16], callbacks=[Watch()], epochs=1, checkpoint_every_n_steps=1, save_best=False)
    finally:
        gate.set()
    assert at_fit_end == ["epoch_1.pt", "step_00000001.pt", "step_00000002.pt"]
    assert sorted(Path(p).name for p in results["checkpoint_paths"]) == at_fit_end


def test_an_interrupted_run_leaves_its_last_checkpoint_in_place(lm_blocks, monkeypatch):
    _delay_commits(monkeypatch, 0.1)

    class Crash:
        def on_step_end(self, state):
            if state.global_step == 3:
                raise RuntimeError("boom")  # right after the step-2 checkpoint was queued

    with pytest.raises(RuntimeError, match="boom"):
        _train(lm_blocks[:32], callbacks=[Crash()], checkpoint_every_n_steps=2)
    assert _names() == ["step_00000002.pt"]  # committed before the exception left train()
    assert safe_load(Path("ckpt") / "step_00000002.pt")["state"]["global_step"] == 2


def test_a_failed_commit_in_a_run_is_warned_about_and_in_the_results(lm_blocks):
    _blocked(epoch_path("ckpt", 1))
    with pytest.warns(UserWarning, match=COMMIT_FAILED.replace("epoch_2", "epoch_1")):
        results = _train(lm_blocks[:16], epochs=2, save_best=False)
    assert results["epochs_completed"] == 2  # on_checkpoint_error="warn": training went on
    assert len(results["checkpoint_errors"]) == 1 and "epoch_1.pt" in results["checkpoint_errors"][0]
    assert [Path(p).name for p in results["checkpoint_paths"]] == ["epoch_2.pt"]
    assert _temporaries() == []


def test_a_failed_commit_with_on_checkpoint_error_stop_stops_the_run(lm_blocks):
    _blocked(epoch_path("ckpt", 1))
    with pytest.raises(CheckpointError, match=COMMIT_FAILED.replace("epoch_2", "epoch_1") + r".*Training stopped "
                       r"\(on_checkpoint_error='stop'\)"):
        _train(lm_blocks[:16], epochs=1, save_best=False, on_checkpoint_error="stop")
    assert _temporaries() == []


def test_which_callbacks_make_saves_wait():
    class Own(Callback):
        def on_checkpoint_saved(self, state): ...

    class Plain:
        def on_checkpoint_saved(self, state): ...

    class Other(Callback):
        def on_step_end(self, state): ...

    assert not _observes_checkpoints([Callback(), Other(), object()])
    assert _observes_checkpoints([Other(), Own()])
    assert _observes_checkpoints([Plain()])
