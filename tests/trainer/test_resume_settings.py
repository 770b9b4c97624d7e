"""Resume means what it says (issue 17): changed optimisation settings are applied and logged, only settings that
break an exact continuation are warned about, a max_steps stop leaves its epoch unfinished, a changed dataset size
mid-epoch is warned about."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer
from trainforge.checkpoint.io import safe_load
from trainforge.trainer.optim import lr_multiplier

DRIFT = "with a changed config"


def _run(data, resume=None, n_train=32, **overrides):
    model, cfg = tiny_gpt(dropout=0.1, seed=1)
    settings = dict(epochs=2, batch_size=8, checkpoint_dir="ck", run_name="r", track_runs=False, plots=False,
                    log_every_n_steps=1)
    config = quiet_config(**{**settings, **overrides})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = Trainer(model, cfg, config, lm_task()).train(data[:n_train], data[40:], resume)
    results["_warnings"] = [str(w.message) for w in caught]
    return results


def _same(a, b):
    assert a["loss_history"] == b["loss_history"] and a["val_loss_history"] == b["val_loss_history"]
    assert a["global_step"] == b["global_step"]
    for key, value in a["final_model_state"].items():
        assert torch.equal(value, b["final_model_state"][key]), key


def test_resume_with_a_changed_learning_rate_trains_with_it_from_the_first_resumed_step(lm_blocks, capsys):
    _run(lm_blocks, lr_schedule="linear")  # 4 steps per epoch; epoch_1.pt is after step 4 of 8
    seen: list[tuple[float, float, tuple[float, float]]] = []

    def record(optimizer, args, kwargs):  # the values each optimizer step really uses
        group = optimizer.param_groups[0]
        seen.append((group["lr"], group["weight_decay"], tuple(group["betas"])))

    handle = register_optimizer_step_pre_hook(record)
    try:
        results = _run(lm_blocks, "ck/epoch_1.pt", learning_rate=3e-2, weight_decay=0.2, adam_beta2=0.95,
                       lr_schedule="cosine", warmup_steps=2, min_lr_ratio=0.1)
    finally:
        handle.remove()
    # steps 4..7 (0-based) with the new rate on the new schedule, from the first resumed step on
    expected = [3e-2 * lr_multiplier(s, 8, 2, "cosine", 0.1) for s in range(4, 8)]
    assert [lr for lr, _, _ in seen] == pytest.approx(expected, rel=1e-12)
    assert {(wd, betas) for _, wd, betas in seen} == {(0.2, (0.9, 0.95))}
    logged = [json.loads(line) for line in Path("runs/r/steps.jsonl").read_text().splitlines()]
    resumed_rows = logged[-4:]  # (the file keeps the first run's lines before them: the same run, continued)
    assert [row["step"] for row in resumed_rows] == [5, 6, 7, 8]
    assert [row["lr"] for row in resumed_rows] == pytest.approx(
        [3e-2 * lr_multiplier(s, 8, 2, "cosine", 0.1) for s in range(5, 9)], rel=1e-6)
    out = capsys.readouterr().out
    assert "resume applies the current optimisation settings: learning_rate: 0.01 -> 0.03" in out
    for line in ("weight_decay: 0.01 -> 0.2", "adam_beta2: 0.999 -> 0.95", "lr_schedule: 'linear' -> 'cosine'",
                 "warmup_steps: None -> 2", "min_lr_ratio: 0.0 -> 0.1"):
        assert line in out
    assert not [w for w in results["_warnings"] if DRIFT in w]  # applied as asked: not a warning
    saved = safe_load(Path("ck/epoch_2.pt"))
    assert saved["optimizer"]["param_groups"][0]["weight_decay"] == 0.2
    assert saved["scheduler"]["base_lrs"] == [3e-2, 3e-2]


def test_resume_with_the_same_settings_logs_nothing_and_matches(lm_blocks, capsys):
    full = _run(lm_blocks, checkpoint_every_n_steps=3)
    Path("ck2").mkdir()
    Path("ck2/step_00000003.pt").write_bytes(Path("ck/step_00000003.pt").read_bytes())
    resumed = _run(lm_blocks, "ck2/step_00000003.pt", checkpoint_dir="ck2", run_name="r2", checkpoint_every_n_steps=2,
                   checkpoint_frequency=2, keep_last_n=1, save_best=False)
    _same(full, resumed)
    assert "resume applies" not in capsys.readouterr().out
    assert not [w for w in resumed["_warnings"] if DRIFT in w]  # checkpoint settings do not change the run


def test_settings_that_break_an_exact_continuation_are_warned_about_precisely(lm_blocks):
    _run(lm_blocks)
    results = _run(lm_blocks, "ck/epoch_1.pt", seed=5, checkpoint_every_n_steps=2, learning_rate=2e-2)
    (drift,) = [w for w in results["_warnings"] if DRIFT in w]
    assert "(seed: 42 -> 5)" in drift  # only the setting that breaks the continuation


def test_a_max_steps_stop_leaves_the_epoch_unfinished_and_a_larger_cap_continues_it(lm_blocks):
    # (a constant rate: with a decaying schedule max_steps is also the schedule's length, see the next test)
    uninterrupted = _run(lm_blocks, checkpoint_dir="full", run_name="full", max_steps=7, epochs=3,
                         lr_schedule="constant")
    capped = _run(lm_blocks, max_steps=5, epochs=3, lr_schedule="constant")
    stopped = safe_load(Path("ck/step_00000005.pt"))["state"]
    assert (stopped["epoch"], stopped["batches_in_epoch"]) == (1, 1)  # mid epoch 2, not marked complete
    assert capped["metrics_summary"]["partial_epoch"].tolist()[-1] is True and capped["epochs_completed"] == 1
    resumed = _run(lm_blocks, "auto", max_steps=7, epochs=3, lr_schedule="constant")
    _same(uninterrupted, resumed)
    assert resumed["epochs_completed"] == 1 and resumed["global_step"] == 7
    no_cap = _run(lm_blocks, "auto", epochs=3, lr_schedule="constant")  # on without a cap: as epochs=3 alone
    _same(_run(lm_blocks, checkpoint_dir="full3", run_name="full3", epochs=3, lr_schedule="constant"), no_cap)
    assert [w for w in no_cap["_warnings"] if DRIFT in w] == []


def test_a_larger_max_steps_with_a_decaying_schedule_logs_the_new_schedule_length(lm_blocks, capsys):
    _run(lm_blocks, max_steps=5, epochs=3)
    capsys.readouterr()
    results = _run(lm_blocks, "auto", max_steps=7, epochs=3)
    assert "schedule length (optimizer steps, from epochs/max_steps): 5 -> 7" in capsys.readouterr().out
    assert results["global_step"] == 7 and not [w for w in results["_warnings"] if DRIFT in w]


def test_a_different_dataset_size_at_a_mid_epoch_resume_is_warned_about(lm_blocks):
    _run(lm_blocks, checkpoint_every_n_steps=2, epochs=1)
    results = _run(lm_blocks, "ck/step_00000002.pt", n_train=24, epochs=1)
    (warning,) = [w for w in results["_warnings"] if "training samples" in w]
    assert "written with 32 training samples, on 24 samples" in warning
    same = _run(lm_blocks, "ck/step_00000002.pt", epochs=1)
    assert not [w for w in same["_warnings"] if "training samples" in w]


def test_resuming_a_finished_run_says_there_is_nothing_left_to_train(lm_blocks):
    _run(lm_blocks, epochs=1)
    results = _run(lm_blocks, "auto", epochs=1)
    assert [w for w in results["_warnings"] if "nothing left to train" in w]
