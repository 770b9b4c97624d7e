"""Disk trouble, preemption signals and corrupt checkpoints: the previous checkpoint always stays good."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
from pathlib import Path

import pytest
import torch

import trainforge.checkpoint.io as ckpt_io
from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import CheckpointError, Trainer
from trainforge.checkpoint.io import safe_load
from trainforge.checkpoint.manager import CheckpointManager, find_latest

SETTINGS = dict(epochs=2, batch_size=4, checkpoint_every_n_steps=2, checkpoint_dir="ck")


def _train(data, callbacks=(), resume=None, **overrides):
    model, cfg = tiny_gpt(dropout=0.1, seed=1)
    config = quiet_config(**{**SETTINGS, **overrides})
    return Trainer(model, cfg, config, lm_task(), callbacks=list(callbacks)).train(data[:40], data[40:], resume)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same_weights(a, b) -> None:
    assert a["loss_history"] == b["loss_history"]
    for key, value in a["final_model_state"].items():
        assert torch.equal(value, b["final_model_state"][key]), key


class _DiskFullAfter:
    """``torch.save`` that writes half of the bytes, then fails like a full disk, from the n-th call on."""

    def __init__(self, monkeypatch, n: int, error: int = errno.ENOSPC) -> None:
        self.calls, self.n, self.error = 0, n, error
        self.real = torch.save
        monkeypatch.setattr(ckpt_io.torch, "save", self)

    def __call__(self, obj, f, *args, **kwargs):
        self.calls += 1
        if self.calls < self.n:
            return self.real(obj, f, *args, **kwargs)
        with open(f, "ab") if isinstance(f, (str, os.PathLike)) else contextlib.nullcontext(f) as out:
            out.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(self.error, os.strerror(self.error))


class _Snapshot:
    """Digests of every checkpoint file each time a step ends (to compare after a failed write)."""

    def __init__(self) -> None:
        self.at: dict[int, dict[str, str]] = {}

    def on_step_end(self, state) -> None:
        self.at[state.global_step] = {p.name: _digest(p) for p in Path("ck").glob("*.pt")}


def test_a_full_disk_keeps_the_previous_checkpoint_and_training_goes_on(lm_blocks, monkeypatch):
    snap = _Snapshot()
    _DiskFullAfter(monkeypatch, n=3)  # step 2 and step 4 are written; step 6 onwards fail
    with pytest.warns(UserWarning, match=r"Could not write checkpoint '.*step_00000006\.pt': \[Errno 28\] No space "
                      r"left on device.*previous checkpoint files are intact\. Fix: free disk space"):
        results = _train(lm_blocks, callbacks=[snap])
    assert results["epochs_completed"] == 2  # on_checkpoint_error="warn": training continued
    assert results["checkpoint_errors"] and "No space left" in results["checkpoint_errors"][0]
    files = {p.name for p in Path("ck").iterdir()} - {"index.json"}
    assert files == {"step_00000002.pt", "step_00000004.pt"}  # no half-written file, no temporary left behind
    for name, digest in snap.at[5].items():
        assert _digest(Path("ck") / name) == digest
    assert find_latest("ck") == Path("ck") / "step_00000004.pt"
    safe_load(Path("ck") / "step_00000004.pt")


def test_a_failed_overwrite_of_best_keeps_the_old_best(lm_blocks, monkeypatch):
    _train(lm_blocks, epochs=1, checkpoint_every_n_steps=None)
    before = _digest(Path("ck") / "best.pt")
    _DiskFullAfter(monkeypatch, n=1)
    with pytest.warns(UserWarning, match="Could not write checkpoint"):
        _train(lm_blocks, resume="auto", epochs=2, checkpoint_every_n_steps=None)  # epoch 2's best.pt + epoch_2.pt
    assert _digest(Path("ck") / "best.pt") == before
    assert sorted(p.name for p in Path("ck").iterdir() if p.name != "index.json") == ["best.pt", "epoch_1.pt"]


def test_on_checkpoint_error_stop_stops_cleanly_and_the_run_resumes(lm_blocks, monkeypatch):
    full = _train(lm_blocks, checkpoint_dir="full")
    fail = _DiskFullAfter(monkeypatch, n=3)
    with pytest.raises(CheckpointError, match=r"Could not write checkpoint '.*step_00000006\.pt'.*previous checkpoint "
                       r"files are intact.*Training stopped \(on_checkpoint_error='stop'\); resume with "
                       r"resume_from='auto'"):
        _train(lm_blocks, on_checkpoint_error="stop")
    assert sorted(p.name for p in Path("ck").iterdir() if p.name != "index.json") == ["step_00000002.pt", "step_00000004.pt"]
    monkeypatch.setattr(ckpt_io.torch, "save", fail.real)  # the disk is fixed
    _same_weights(full, _train(lm_blocks, on_checkpoint_error="stop", resume="auto"))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_write_failing_inside_torchs_file_writer_is_reported(lm_blocks, monkeypatch):
    """torch.save writes a checkpoint by name with its own C++ writer, which reports a failed write as a
    RuntimeError: it must be contained like any disk failure. The temporary for step 6 is made a link to
    /dev/full, where every write fails with ENOSPC (the temporary names are made predictable for that)."""
    import trainforge.atomic as atomic

    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: "0" * (2 * n))
    Path("ck").mkdir()
    os.symlink("/dev/full", Path("ck") / f".step_00000006.pt.{'0' * 16}.tmp")
    with pytest.raises(CheckpointError, match=r"Could not write checkpoint .*step_00000006\.pt.*(space|write).*"
                       r"choose a writable checkpoint_dir"):
        _train(lm_blocks, on_checkpoint_error="stop")
    assert not list(Path("ck").glob(".*.tmp"))  # the link is gone with the failed temporary (not /dev/full)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write to a read-only directory")
def test_a_read_only_checkpoint_dir_keeps_what_is_there(lm_blocks):
    _train(lm_blocks, epochs=1, checkpoint_every_n_steps=None)
    before = {p.name: _digest(p) for p in Path("ck").iterdir()}
    os.chmod("ck", 0o555)
    try:
        with pytest.warns(UserWarning, match="Could not write checkpoint"):
            _train(lm_blocks, epochs=1, checkpoint_every_n_steps=None, learning_rate=5e-2)
    finally:
        os.chmod("ck", 0o755)
    assert {p.name: _digest(p) for p in Path("ck").iterdir()} == before


def test_stale_temporaries_of_a_killed_writer_are_removed_and_never_loaded(lm_blocks):
    Path("ck").mkdir()
    Path("ck/.step_00000009.pt.a1b2c3.tmp").write_bytes(b"PK half")
    Path("ck/notes.tmp").write_text("mine")
    CheckpointManager("ck")
    assert sorted(p.name for p in Path("ck").iterdir() if p.name != "index.json") == ["notes.tmp"]


def test_resume_auto_skips_a_corrupt_newest_checkpoint_with_a_warning(lm_blocks):
    full = _train(lm_blocks, checkpoint_dir="full")
    class Crash:
        def on_step_end(self, state):
            if state.global_step == 7:
                raise KeyboardInterrupt  # killed after the step-6 checkpoint

    with pytest.raises(KeyboardInterrupt):
        _train(lm_blocks, callbacks=[Crash()])
    newest = Path("ck") / "step_00000006.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # e.g. a disk that lied about fsync
    with pytest.warns(UserWarning, match=r"Skipping unreadable checkpoint '.*step_00000006\.pt'"):
        resumed = _train(lm_blocks, resume="auto")
    _same_weights(full, resumed)


class _SendSignal:
    def __init__(self, sig: int, at_step: int) -> None:
        self.sig, self.at_step = sig, at_step

    def on_step_end(self, state) -> None:
        if state.global_step == self.at_step:
            os.kill(os.getpid(), self.sig)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_a_step_checkpoint_stops_and_resumes_exactly(lm_blocks, sig):
    before = signal.getsignal(sig)
    full = _train(lm_blocks, checkpoint_dir="full", checkpoint_every_n_steps=None)
    stopped = _train(lm_blocks, callbacks=[_SendSignal(sig, 7)], checkpoint_every_n_steps=None)
    name = signal.Signals(sig).name
    assert stopped["stop_reason"] == f"preempted ({name})" and stopped["preempted"] is True
    assert stopped["global_step"] == 7
    assert (Path("ck") / "step_00000007.pt").is_file()
    assert signal.getsignal(sig) is before  # the handler is only installed during fit
    resumed = _train(lm_blocks, resume="auto", checkpoint_every_n_steps=None)
    _same_weights(full, resumed)
    assert resumed["preempted"] is False


def test_a_second_sigint_interrupts_at_once(lm_blocks):
    class Twice:
        def on_step_end(self, state):
            if state.global_step == 3:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)  # default_int_handler; SIG_IGN when started in the background by sh
    with pytest.raises(KeyboardInterrupt):
        _train(lm_blocks, callbacks=[Twice()])
    assert signal.getsignal(signal.SIGINT) is before  # the handler the run found is back
