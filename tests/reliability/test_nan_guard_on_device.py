"""The NaN guard with its decision on the device (a fused optimizer in one process: the default on a GPU).

The fused kernels skip a bad step themselves (GradScaler's ``found_inf`` protocol) and the loop reads the decisions
with its log lines, so the guard adds no host sync per step. trainforge builds the fused AdamW only on CUDA; these
tests build it on the CPU, where the fused kernels take ``found_inf`` too, and compare with the host decision on the
same optimizer: the records, rollbacks and weights must be the same, only read later.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import lm_task, quiet_config
from tests.reliability.test_nan_guard import NanOnCalls, PoisonGPT, poisoned
from trainforge import Trainer
from trainforge.checkpoint.io import safe_load
from trainforge.trainer import build, guard, optim
from trainforge.trainer.guard import NonFiniteTrainingError


@pytest.fixture
def fused(monkeypatch) -> list[int]:
    """AdamW with fused kernels on the CPU; returns the number of decisions each read of the device found."""

    def fused_adamw(model, cfg, device):
        return torch.optim.AdamW(optim.param_groups(model, cfg.weight_decay), lr=cfg.learning_rate,
                                 betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon, fused=True)

    monkeypatch.setattr(build, "build_optimizer", fused_adamw)
    reads: list[int] = []
    real = guard.StepGuard.settle

    def counted(self, state):
        if self._pending:  # a read of the device (settle returns at once when nothing is pending)
            reads.append(len(self._pending))
        return real(self, state)

    monkeypatch.setattr(guard.StepGuard, "settle", counted)
    return reads


def _train(model, data, val=None, *, on_device: bool, monkeypatch, **overrides):
    settings = dict(epochs=2, batch_size=4, shuffle=False, learning_rate=1e-2, log_every_n_steps=4)
    config = quiet_config(**{**settings, **overrides})
    callbacks = [model] if isinstance(model, NanOnCalls) else []
    with monkeypatch.context() as patch:
        if not on_device:  # the reference: the same fused optimizer, decided on the host every step
            patch.setattr(build, "decides_on_device", lambda *args: False)
        return Trainer(model, model.config, config, lm_task(), callbacks=callbacks).train(data, val)


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def test_skipped_steps_are_read_with_the_log_lines_and_match_the_host_decision(lm_blocks, fused, monkeypatch):
    data = poisoned(lm_blocks, [9, 22])  # micro-batches 2 and 5 of each epoch
    device = _train(PoisonGPT(), data, lm_blocks[40:], on_device=True, monkeypatch=monkeypatch)
    # Read at the log lines (global steps 4, 8, 12, 16, 20) and at the end of epoch 1 (step 10), not per step.
    assert fused == [4, 4, 2, 2, 4, 4]
    host = _train(PoisonGPT(), data, lm_blocks[40:], on_device=False, monkeypatch=monkeypatch)
    assert device["skipped_step_records"] == host["skipped_step_records"]
    assert [(r["epoch"], r["step"], r["batches"]) for r in device["skipped_step_records"]] == [
        (1, 3, [2, 3]), (1, 6, [5, 6]), (2, 13, [2, 3]), (2, 16, [5, 6])]
    # The skipped steps leave the epoch's loss (summed on the device here, on the host there: float rounding).
    assert device["loss_history"] == pytest.approx(host["loss_history"], rel=1e-6)
    assert device["val_loss_history"] == host["val_loss_history"]
    _same_weights(host["final_model_state"], device["final_model_state"])


def test_a_streak_found_at_the_next_read_rolls_back_as_the_host_decision_would(lm_blocks, fused, monkeypatch):
    # Steps 5-7 are NaN and read at step 8: step 8 trained, and it is void after the rollback to the epoch start.
    clean = _train(NanOnCalls(set()), lm_blocks[:40], lm_blocks[40:], on_device=True, monkeypatch=monkeypatch,
                   nan_lr_factor=None)
    rolled = _train(NanOnCalls({5, 6, 7}), lm_blocks[:40], lm_blocks[40:], on_device=True, monkeypatch=monkeypatch,
                    nan_lr_factor=None)
    assert rolled["nan_rollbacks"] == 1
    assert [r["step"] for r in rolled["skipped_step_records"]] == [5, 6, 7]
    assert rolled["global_step"] == clean["global_step"] == 20
    assert rolled["loss_history"] == clean["loss_history"]
    _same_weights(clean["final_model_state"], rolled["final_model_state"])


def test_decisions_are_read_before_a_step_checkpoint_records_the_counters(lm_blocks, fused, monkeypatch, tmp_path):
    data = poisoned(lm_blocks, [9])  # step 3
    _train(PoisonGPT(), data, on_device=True, monkeypatch=monkeypatch, epochs=1, log_every_n_steps=100,
           checkpoint_dir=str(tmp_path), checkpoint_every_n_steps=5)
    saved = safe_load(tmp_path / "step_00000005.pt")["guard"]
    assert [r["step"] for r in saved["records"]] == [3]


def test_nan_that_keeps_coming_back_stops_with_the_same_error(lm_blocks, fused, monkeypatch):
    data = poisoned(lm_blocks, [8, 12, 16])  # micro-batches 2, 3, 4: a streak of 3 on every replay
    model = PoisonGPT()
    with pytest.raises(NonFiniteTrainingError, match=r"after 2 rollback\(s\) \(nan_max_rollbacks=2\); last bad: step 3 "
                       r"\(epoch 1, micro-batches 2\.\.2\), step 4 .* saved to '.*step_00000000\.pt'"):
        _train(model, data, on_device=True, monkeypatch=monkeypatch, checkpoint_dir="ck", nan_max_rollbacks=2)
    saved = safe_load(Path("ck") / "step_00000000.pt")
    assert saved["guard"]["rollbacks"] == 2 and len(saved["guard"]["records"]) == 9
