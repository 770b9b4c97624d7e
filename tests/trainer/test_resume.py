"""Golden resume tests: interrupted + resumed == uninterrupted, bitwise, on CPU in fp32."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer

# 44 samples / batch 4 = 11 micro-batches per epoch; accumulation 2 → 6 steps, the last window partial.
SETTINGS = dict(epochs=3, batch_size=4, gradient_accumulation_steps=2, checkpoint_every_n_steps=4)


def _run(data, ckpt_dir, resume=None, callbacks=(), **overrides):
    model, cfg = tiny_gpt(dropout=0.1, seed=1)  # dropout: the RNG state must be restored exactly too
    config = quiet_config(checkpoint_dir=str(ckpt_dir), **{**SETTINGS, **overrides})
    return Trainer(model, cfg, config, lm_task(), callbacks=list(callbacks)).train(data[:44], data[44:], resume)


def _assert_same(a, b):
    assert a["loss_history"] == b["loss_history"]
    assert a["val_loss_history"] == b["val_loss_history"]
    for key, value in a["final_model_state"].items():
        assert torch.equal(value, b["final_model_state"][key]), key


@pytest.fixture
def uninterrupted(lm_blocks):
    return _run(lm_blocks, Path("full"))


@pytest.mark.parametrize("name", ["epoch_1.pt", "step_00000008.pt", "epoch_2.pt", "step_00000016.pt"])
def test_resume_from_epoch_or_mid_epoch_checkpoint_is_bitwise_identical(lm_blocks, uninterrupted, name):
    # step 8 is mid-epoch 2 (after 4 of its 11 micro-batches); step 16 is mid-epoch 3.
    resumed_dir = Path("resumed")
    resumed_dir.mkdir()
    shutil.copy(Path("full") / name, resumed_dir / name)
    resumed = _run(lm_blocks, resumed_dir, resume=str(resumed_dir / name))
    _assert_same(uninterrupted, resumed)


def test_mid_epoch_resume_without_accumulation_is_bitwise_identical(lm_blocks) -> None:
    # One micro-batch per step: the loss kernel's mean path, and the epoch sums added on the host (NaN guard read).
    # 11 steps per epoch: step 16 is mid-epoch 2, after 5 of its steps.
    full = _run(lm_blocks, Path("full1"), gradient_accumulation_steps=1)
    resumed_dir = Path("resumed1")
    resumed_dir.mkdir()
    shutil.copy(Path("full1") / "step_00000016.pt", resumed_dir / "step_00000016.pt")
    resumed = _run(lm_blocks, resumed_dir, resume=str(resumed_dir / "step_00000016.pt"), gradient_accumulation_steps=1)
    _assert_same(full, resumed)


def test_killed_run_resumes_with_auto(lm_blocks, uninterrupted):
    class Crash:
        def on_step_end(self, state):
            if state.global_step == 10:
                raise KeyboardInterrupt  # as if the process were stopped after the step-8 checkpoint

    with pytest.raises(KeyboardInterrupt):
        _run(lm_blocks, Path("auto"), callbacks=[Crash()])
    assert (Path("auto") / "step_00000008.pt").exists()
    resumed = _run(lm_blocks, Path("auto"), resume="auto")
    _assert_same(uninterrupted, resumed)
    assert resumed["epochs_completed"] == 3


def test_resume_from_config_field_and_auto_without_checkpoint_starts_fresh(lm_blocks, uninterrupted, capsys):
    fresh = _run(lm_blocks, Path("empty"), resume="auto")
    assert "starting fresh" in capsys.readouterr().out
    _assert_same(uninterrupted, fresh)
    via_config = _run(lm_blocks, Path("cfg"), resume_from_checkpoint=str(Path("full") / "epoch_1.pt"))
    _assert_same(uninterrupted, via_config)


def test_resume_extends_training_when_epochs_grow(lm_blocks):
    short = _run(lm_blocks, Path("a"), epochs=2)
    longer = _run(lm_blocks, Path("a"), resume="auto", epochs=3)
    assert longer["loss_history"][:2] == short["loss_history"]
    assert len(longer["loss_history"]) == 3
    assert [int(e) for e in longer["metrics_summary"]["epoch"]] == [1, 2, 3]


def test_early_stopping_state_survives_resume(lm_blocks):
    stop = dict(learning_rate=1e-12, early_stopping_patience=2, epochs=6, checkpoint_every_n_steps=None)
    full = _run(lm_blocks, Path("es"), **stop)
    resumed = _run(lm_blocks, Path("es2"), resume=str(Path("es") / "epoch_1.pt"), **stop)
    assert full["epochs_completed"] == resumed["epochs_completed"] == 3
