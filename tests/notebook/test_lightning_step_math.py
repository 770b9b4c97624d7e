"""The Lightning path and ``trainforge.Trainer`` share the step math and the best/patience rule.

* One optimizer step's loss is sum(per-target losses over the accumulation window) / count(valid targets in the
  window) on both paths, so padded micro-batches of unequal target counts give the same weights (a per-micro-batch
  mean, averaged over ``accumulate_grad_batches``, would weight a short micro-batch's targets more).
* Best epoch, best.ckpt and early stopping follow ``Monitor`` and ``EarlyStopping`` on both paths: the same
  scripted validation losses (a NaN epoch, improvements smaller than ``min_delta``) give the same decisions.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

pytest.importorskip("lightning")

import lightning as L  # noqa: E402

from tests.helpers import PAD, lm_task, padded_lm_rows, quiet_config, tiny_gpt  # noqa: E402
from trainforge import Trainer  # noqa: E402
from trainforge.lightning import TrainingCoordinator  # noqa: E402
from trainforge.trainer.step_math import window_divisor  # noqa: E402


def test_window_divisor_is_the_global_target_count_per_rank() -> None:
    assert window_divisor(37) == 37 and isinstance(window_divisor(37), int)
    assert window_divisor(0) == 1  # a window whose targets are all ignored adds zero loss, not 0/0
    assert window_divisor(torch.tensor(10), world_size=4).item() == pytest.approx(2.5)  # DDP averages the rest
    assert window_divisor(torch.tensor(0), world_size=2).item() == pytest.approx(0.5)


def test_lightning_equals_the_trainer_on_padded_batches_with_accumulation() -> None:
    data = padded_lm_rows()
    task = lm_task(pad_token_id=PAD)
    # 5 micro-batches per epoch: windows of 2, 2 and 1 (Lightning steps on the epoch's last batch too).
    cfg = quiet_config(epochs=2, batch_size=4, gradient_accumulation_steps=2, shuffle=False, device="cpu",
                       learning_rate=1e-3, max_grad_norm=1.0)

    model, model_config = tiny_gpt()
    lightning = TrainingCoordinator(cfg, task).train(model, train_data=data)
    reference_model, _ = tiny_gpt()
    reference = Trainer(reference_model, model_config, cfg, task).train(data)

    assert lightning["global_step"] == reference["global_step"] == 6
    for key, value in reference["final_model_state"].items():
        torch.testing.assert_close(lightning["final_model_state"][key], value, rtol=0, atol=1e-5)
    assert lightning["loss_history"] == pytest.approx(reference["loss_history"], rel=1e-5)


class ScriptedValidation(nn.Module):
    """The tiny GPT in training; in validation, logits whose loss is exactly ``val_losses[epoch - 1]`` (NaN: NaN
    logits). The epoch is set by the callbacks below (1-based)."""

    def __init__(self, val_losses: list[float]) -> None:
        super().__init__()
        self.gpt, self.config = tiny_gpt(seed=1)
        self.val_losses, self.epoch = val_losses, 0

    def forward(self, input_ids: Tensor) -> Tensor:
        logits = self.gpt(input_ids)
        if self.training:
            return logits
        loss = self.val_losses[self.epoch - 1]
        if math.isnan(loss):
            return logits * float("nan")
        # Cross-entropy of logits that are `a` at the next token and 0 elsewhere: log(1 + (V - 1) e^-a) = loss.
        vocab = logits.shape[-1]
        a = -math.log(math.expm1(loss) / (vocab - 1))
        scripted = torch.zeros_like(logits)
        scripted[:, :-1].scatter_(-1, input_ids[:, 1:, None], a)
        return scripted


class TrainerEpoch:
    def __init__(self, model: ScriptedValidation) -> None:
        self.model = model

    def on_epoch_start(self, state) -> None:
        self.model.epoch = state.epoch + 1


class LightningEpoch(L.Callback):
    def __init__(self, model: ScriptedValidation) -> None:
        self.model = model

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.model.epoch = trainer.current_epoch + 1


def test_best_and_early_stopping_decide_as_the_trainer_does(lm_blocks, tmp_path) -> None:
    # 1 best; 2 better by more than min_delta: best; 3 NaN: never best, no improvement (1 bad epoch); 4 best;
    # 5 better by less than min_delta (1 bad); 6 worse (2 bad = patience): stop after epoch 6, best epoch 4.
    losses = [3.0, 2.9, math.nan, 2.5, 2.49, 2.6, 2.0, 1.9]
    cfg = dict(epochs=len(losses), batch_size=4, shuffle=False, device="cpu", early_stopping_patience=2,
               early_stopping_min_delta=0.05, save_best=True)
    train, val = lm_blocks[:8], lm_blocks[40:]

    model = ScriptedValidation(losses)
    reference = Trainer(model, model.config, quiet_config(**cfg, checkpoint_dir=str(tmp_path / "pt")), lm_task(),
                        callbacks=[TrainerEpoch(model)]).train(train, val)
    model = ScriptedValidation(losses)
    lightning = TrainingCoordinator(quiet_config(**cfg, checkpoint_dir=str(tmp_path / "ckpt")), lm_task(),
                                    callbacks=[LightningEpoch(model)]).train(model, train_data=train, val_data=val)

    val_losses = lightning["val_loss_history"]
    assert math.isnan(val_losses[2]) and val_losses[:2] + val_losses[3:] == pytest.approx([3.0, 2.9, 2.5, 2.49, 2.6])
    for results in (reference, lightning):
        assert results["epochs_completed"] == 6 and results["best_epoch"] == 4
        assert results["best_metric"] == pytest.approx(2.5)
        assert results["metrics_summary"]["non_finite"].tolist()[2] == "val/loss"
    assert lightning["stop_reason"] == reference["stop_reason"]
    assert lightning["stop_reason"].startswith("early stopping: val/loss did not improve by more than 0.05 for 2")
    assert lightning["best_checkpoint"] is not None
    best = torch.load(lightning["best_checkpoint"], weights_only=False)
    assert best["epoch"] == 3  # Lightning's 0-based epoch of the saved state: after epoch 4
