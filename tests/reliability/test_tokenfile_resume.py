"""A run on memory-mapped token files (``TokenFile``), SIGKILLed mid-epoch and resumed, is bitwise the uninterrupted
run: the windows are positioned by sampler arithmetic exactly as in-memory tensors are."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.test_fault_injection import (
    ForkServer,
    _args,
    _assert_latest_checkpoint_readable,
    _assert_same_run,
)
from trainforge.data.prepare import prepare


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """28 characters + 4 specials = the child's 32-token vocabulary; ~42 training and ~8 validation windows."""
    root = tmp_path_factory.mktemp("tokens")
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz .")[:28])
    pattern = np.tile(np.arange(28), 30)[:800]
    noisy = np.where(rng.random(800) < 0.8, pattern, rng.integers(0, 28, 800))
    text = "".join(letters[noisy])
    (root / "text.txt").write_text(text)
    prepare([root / "text.txt"], root / "corpus", tokenizer="char", val_fraction=0.15)
    return root / "corpus"


def test_killed_mid_epoch_and_resumed_equals_the_uninterrupted_run(corpus, tmp_path):
    server = ForkServer(tmp_path)
    try:
        reference = {**_args(tmp_path, "reference"), "tokens": str(corpus)}
        code, lines = server.attempt(reference)
        assert code == 0 and lines[-1] == "done", lines[-5:]
        steps_per_epoch = lines.count("step") // 3  # 3 epochs, one marker per training forward
        assert steps_per_epoch >= 8
        interrupted = {**_args(tmp_path, "interrupted"), "tokens": str(corpus)}
        for nth in (steps_per_epoch // 2, steps_per_epoch + 3):  # mid epoch 1, then mid epoch 2 of the resumed run
            code, _ = server.attempt(interrupted, ("step", nth, 0.001, signal.SIGKILL))
            assert code == -signal.SIGKILL
            _assert_latest_checkpoint_readable(interrupted["ckpt_dir"])
        code, lines = server.attempt(interrupted)
        assert code == 0 and lines[-1] == "done", lines[-5:]
        _assert_same_run(reference["out"], interrupted["out"])
    finally:
        server.close()
