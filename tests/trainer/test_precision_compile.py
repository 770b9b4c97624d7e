"""Precision choices and torch.compile, including the fallback when compiling fails for real."""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer
from trainforge.trainer.precision import make_scaler, resolve_precision


def test_auto_precision_is_fp32_on_cpu_and_use_amp_false_forces_fp32():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", True, cpu) == "fp32"
    assert resolve_precision("bf16-mixed", False, cpu) == "fp32"
    assert resolve_precision("fp16-mixed", True, cpu) == "fp16-mixed"
    assert make_scaler("fp16-mixed", cpu) is not None and make_scaler("bf16-mixed", cpu) is None


def test_bf16_mixed_trains_on_cpu(lm_blocks):
    model, cfg = tiny_gpt()
    results = Trainer(model, cfg, quiet_config(precision="bf16-mixed"), lm_task()).train(lm_blocks[:40], lm_blocks[40:])
    assert results["precision"] == "bf16-mixed"
    assert all(math.isfinite(x) for x in results["loss_history"])
    # Weights stay fp32 (autocast computes in bf16, the master weights do not change dtype).
    assert all(v.dtype == torch.float32 for v in results["final_model_state"].values() if v.is_floating_point())


def test_compile_failure_falls_back_to_eager_with_a_warning(lm_blocks, monkeypatch):
    import torch._dynamo
    import torch._inductor.config as inductor_config

    # A real failure: inductor cannot find a working C++ compiler, so the first compiled call raises.
    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/bin/false",))
    torch._dynamo.reset()
    model, cfg = tiny_gpt()
    with pytest.warns(UserWarning, match="torch.compile failed .*falling back to eager mode"):
        results = Trainer(model, cfg, quiet_config(epochs=1, compile_mode="default", checkpoint_dir="ck"),
                          lm_task()).train(lm_blocks)
    torch._dynamo.reset()
    eager_model, _ = tiny_gpt()
    eager = Trainer(eager_model, cfg, quiet_config(epochs=1), lm_task()).train(lm_blocks)
    assert results["loss_history"] == eager["loss_history"]  # the fallback is plain eager training
    saved = torch.load("ck/epoch_1.pt", weights_only=True)["model"]
    assert set(saved) == set(eager_model.state_dict())  # canonical keys, no _orig_mod.
