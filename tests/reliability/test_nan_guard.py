"""The NaN/Inf guard: bad steps are skipped and recorded, streaks roll back, hopeless runs stop with a saved state.

NaN is injected through the data (a "poison" first token makes the model's logits NaN for that sample) or through
a model whose forward turns NaN on chosen calls; shuffle is off, so the micro-batch indices are known.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer
from trainforge.checkpoint.io import safe_load
from trainforge.trainer.guard import NonFiniteTrainingError

POISON = 31  # a first token no clean row has (clean rows start with 0)


class PoisonGPT(nn.Module):
    """The tiny GPT, whose logits are NaN for every sample that starts with POISON."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.gpt, self.config = tiny_gpt(dropout=dropout, seed=1)

    def forward(self, input_ids):
        logits = self.gpt(input_ids)
        bad = (input_ids[:, 0] == POISON)[:, None, None]
        return logits * torch.where(bad, float("nan"), 1.0)  # NaN loss and NaN gradients


class NanOnCalls(nn.Module):
    """The tiny GPT, NaN on the training forwards numbered in ``calls`` (counted on the host from fit start, so
    with one micro-batch per step forward n is step n's). It is passed as a callback too, to see fit start."""

    def __init__(self, calls: set[int]) -> None:
        super().__init__()
        self.gpt, self.config = tiny_gpt(seed=1)
        self.calls, self.n, self.armed = calls, 0, False

    def on_fit_start(self, state) -> None:
        self.armed = True  # forwards before fit (the trainer's probes of the first batch) are not counted

    def forward(self, input_ids):
        logits = self.gpt(input_ids)
        if self.training and self.armed:
            self.n += 1
            if self.n in self.calls:
                return logits * float("nan")
        return logits


class _NanGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class NanGradOnCalls(NanOnCalls):
    """A finite loss whose gradient is NaN on the chosen calls."""

    def forward(self, input_ids):
        logits = self.gpt(input_ids)
        if self.training and self.armed:
            self.n += 1
            if self.n in self.calls:
                return _NanGrad.apply(logits)
        return logits


def poisoned(blocks: torch.Tensor, rows: list[int]) -> torch.Tensor:
    data = blocks[:40].clone()
    data[rows, 0] = POISON
    return data


def _train(model, data, val=None, resume=None, **overrides):
    settings = dict(epochs=2, batch_size=4, shuffle=False, learning_rate=1e-2)
    config = quiet_config(**{**settings, **overrides})
    callbacks = [model] if isinstance(model, NanOnCalls) else []
    return Trainer(model, getattr(model, "config", None), config, lm_task(), callbacks=callbacks).train(data, val,
                                                                                                        resume)


def _finite(state: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def test_nan_batches_are_skipped_recorded_and_the_run_completes(lm_blocks, capsys):
    data = poisoned(lm_blocks, [9, 22])  # micro-batches 2 and 5 of each epoch (batch_size 4, no shuffle)
    results = _train(PoisonGPT(), data, lm_blocks[40:])
    assert results["epochs_completed"] == 2
    assert results["skipped_steps"] == 4
    records = results["skipped_step_records"]
    assert [(r["epoch"], r["step"], r["batches"]) for r in records] == [
        (1, 3, [2, 3]), (1, 6, [5, 6]), (2, 13, [2, 3]), (2, 16, [5, 6])]
    assert all(r["loss_finite"] is False and r["grad_norm_finite"] is False for r in records)
    assert results["nan_rollbacks"] == 0
    assert _finite(results["final_model_state"])
    assert all(math.isfinite(x) for x in results["loss_history"] + results["val_loss_history"])
    out = capsys.readouterr().out
    assert "step 3: non-finite loss; optimizer step skipped (epoch 1, micro-batches 2..2" in out


def test_without_the_guard_the_same_data_ruins_the_weights(lm_blocks):
    results = _train(PoisonGPT(), poisoned(lm_blocks, [9]), epochs=1, nan_guard=False)
    assert not _finite(results["final_model_state"])
    assert results["skipped_steps"] == 0


def test_a_nan_gradient_with_a_finite_loss_is_caught_also_without_clipping(lm_blocks):
    results = _train(NanGradOnCalls({4}), lm_blocks[:40], epochs=1, max_grad_norm=None)
    (record,) = results["skipped_step_records"]
    assert record["step"] == 4 and record["loss_finite"] is True and record["grad_norm_finite"] is False
    assert _finite(results["final_model_state"])


def test_skipped_steps_resume_bitwise_with_their_records(lm_blocks):
    data = poisoned(lm_blocks, [9, 22])
    full = _train(PoisonGPT(dropout=0.1), data, lm_blocks[40:], checkpoint_dir="full", checkpoint_every_n_steps=4)
    Path("resumed").mkdir()
    shutil.copy(Path("full") / "step_00000004.pt", "resumed")  # after the first skipped step, before the second
    resumed = _train(PoisonGPT(dropout=0.1), data, lm_blocks[40:], checkpoint_dir="resumed",
                     checkpoint_every_n_steps=4, resume="auto")
    assert resumed["skipped_step_records"] == full["skipped_step_records"]
    assert resumed["loss_history"] == full["loss_history"]
    for key, value in full["final_model_state"].items():
        assert torch.equal(value, resumed["final_model_state"][key]), key


def test_a_streak_rolls_back_to_the_last_good_state_exactly(lm_blocks, recwarn):
    # Forwards 5, 6, 7 are NaN (steps 5-7 of epoch 1): a rollback to the epoch-start snapshot, then a clean replay.
    # With nan_lr_factor=None the replay is the uninterrupted run, bit for bit.
    clean = _train(NanOnCalls(set()), lm_blocks[:40], lm_blocks[40:], nan_lr_factor=None)
    rolled = _train(NanOnCalls({5, 6, 7}), lm_blocks[:40], lm_blocks[40:], nan_lr_factor=None)
    assert rolled["nan_rollbacks"] == 1
    assert [r["step"] for r in rolled["skipped_step_records"]] == [5, 6, 7]
    assert rolled["loss_history"] == clean["loss_history"]
    for key, value in clean["final_model_state"].items():
        assert torch.equal(value, rolled["final_model_state"][key]), key


def test_a_rollback_lowers_the_learning_rate_and_resumes_from_the_newest_checkpoint(lm_blocks):
    rolled = _train(NanOnCalls({13, 14, 15}), lm_blocks[:40], epochs=2, lr_schedule="constant",  # steps 13-15
                    checkpoint_dir="ck", checkpoint_every_n_steps=2)
    assert rolled["nan_rollbacks"] == 1
    lrs = list(rolled["metrics_summary"]["lr"])
    assert lrs == [pytest.approx(1e-2), pytest.approx(5e-3)]  # halved by the rollback in epoch 2
    assert rolled["global_step"] == 20  # rolled back to the step-12 checkpoint, then the rest of epoch 2
    assert _finite(rolled["final_model_state"])


def test_nan_that_keeps_coming_back_stops_with_a_clear_error_and_a_saved_state(lm_blocks):
    data = poisoned(lm_blocks, [8, 12, 16])  # micro-batches 2, 3, 4: a streak of 3 on every replay
    model = PoisonGPT()
    with pytest.raises(NonFiniteTrainingError, match=r"3 optimizer steps in a row had a NaN/Inf loss or gradient "
                       r"norm after 2 rollback\(s\) \(nan_max_rollbacks=2\); last bad: step 3 \(epoch 1, micro-batches "
                       r"2\.\.2\), step 4 .* saved to '.*step_00000000\.pt'\. Fix: lower learning_rate"):
        _train(model, data, checkpoint_dir="ck", nan_max_rollbacks=2)
    saved = safe_load(Path("ck") / "step_00000000.pt")
    assert saved["guard"]["rollbacks"] == 2 and len(saved["guard"]["records"]) == 9
    assert saved["guard"]["streak"] == 0 and saved["guard"]["last_good"] is None  # a good state, saved as such
    assert _finite(dict(model.state_dict()))  # the model object holds the last good weights


def test_guard_config_fields_are_validated():
    from trainforge import ConfigError, TrainingConfig

    with pytest.raises(ConfigError) as info:
        TrainingConfig(nan_max_consecutive=0, nan_lr_factor=1.5, nan_max_rollbacks=-1)
    text = str(info.value)
    assert "nan_max_consecutive: must be at least 1, got 0. Fix:" in text
    assert "nan_lr_factor: must be in (0, 1) or None, got 1.5. Fix:" in text
    assert "nan_max_rollbacks: must be 0 or more, got -1. Fix:" in text


def test_the_rollback_snapshot_is_taken_before_each_epoch_but_not_after_the_last(lm_blocks, monkeypatch):
    # A snapshot copies the model and optimizer state (to the CPU on a GPU): after the last epoch nothing can roll
    # back to it, and on a 124M model it cost a third of the measured throughput (benchmarks/gpu_check.py).
    from trainforge.trainer.resume import RunCheckpoint

    kinds: list[str] = []
    real = RunCheckpoint.payload

    def counting(self, state, kind):
        kinds.append(kind)
        return real(self, state, kind)

    monkeypatch.setattr(RunCheckpoint, "payload", counting)
    model, cfg = tiny_gpt()
    Trainer(model, cfg, quiet_config(epochs=3), lm_task()).train(lm_blocks[:40])
    assert kinds == ["snapshot"] * 3  # before epoch 1, after epochs 1 and 2
