"""FSDP on CPU: 2 gloo processes (torchrun) with ``strategy: fsdp`` (FSDP2 ``fully_shard``) train the tiny preset
exactly like one process, and their checkpoints move both ways between FSDP and one process.

Every run keeps 17 validation samples, so rank 0 evaluates 3 batches of 4 and rank 1 only 2: the sharded model's
collective forward must run in lock step (and the metrics still equal one process's). The 1-process and 2-process
uninterrupted runs are module fixtures shared by the tests below (about 5 s and 12 s on 2 cores).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tests.distributed.launch_helpers import assert_same_weights, results, run, weights

pytestmark = pytest.mark.xdist_group("fsdp")  # one worker runs the shared torchrun fixtures once

VAL = ("--val-samples", "17")  # 9 + 8 over two ranks: unequal evaluation batches (3 vs 2 of 4)
STEP = "step_00000025.pt"  # mid epoch 2 (21 steps per epoch at global batch 8)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fsdp")


@pytest.fixture(scope="module")
def one(base: Path) -> Path:
    """1 process x batch 8, 2 epochs, a checkpoint at step 25."""
    out = base / "one"
    run(out, "--batch-size", "8", "--ckpt-dir", str(base / "one_ck"), "--every", "25", *VAL, nproc=1)
    return out


@pytest.fixture(scope="module")
def sharded(base: Path) -> Path:
    """2 processes x batch 4 under FSDP (global batch 8), the same checkpoints."""
    out = base / "fsdp"
    run(out, "--batch-size", "4", "--strategy", "fsdp", "--ckpt-dir", str(base / "fsdp_ck"), "--every", "25", *VAL)
    return out


def _same_run(a: Path, b: Path) -> None:
    assert_same_weights(weights(a), weights(b))
    assert results(a)["loss_history"] == pytest.approx(results(b)["loss_history"], rel=1e-6)
    assert results(a)["val_loss_history"] == pytest.approx(results(b)["val_loss_history"], rel=1e-6)


def test_fsdp_two_processes_equal_one_process_with_the_same_global_batch(one: Path, sharded: Path) -> None:
    assert results(sharded)["world_size"] == 2 and results(one)["world_size"] == 1
    assert results(sharded)["global_step"] == results(one)["global_step"] == 42
    _same_run(sharded, one)  # weights allclose 1e-5 (max diff ~2e-6); losses and lock-step val metrics equal


def test_fsdp_checkpoints_hold_the_plain_modules_state(base: Path, one: Path, sharded: Path) -> None:
    assert sorted(p.name for p in (base / "fsdp_ck").iterdir() if p.name != "index.json") == [
        "best.pt", "epoch_1.pt", "epoch_2.pt", STEP]
    a = torch.load(base / "fsdp_ck" / STEP, weights_only=False)
    b = torch.load(base / "one_ck" / STEP, weights_only=False)
    assert a["strategy"] == "fsdp" and a["world_size"] == 2
    assert list(a["model"]) == list(b["model"])  # canonical keys, in the plain module's order, no DTensors
    assert all(type(v) is torch.Tensor for v in a["model"].values())
    # the optimizer state in the one-process format: integer ids in group order, full (unsharded) moments
    assert [g["params"] for g in a["optimizer"]["param_groups"]] == [g["params"] for g in b["optimizer"]["param_groups"]]
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for pid, state in b["optimizer"]["state"].items():
        for key, value in state.items():
            torch.testing.assert_close(a["optimizer"]["state"][pid][key], value, rtol=0, atol=1e-5)


def test_fsdp_checkpoint_resumes_on_one_process(base: Path, one: Path, sharded: Path) -> None:
    """FSDP's mid-epoch checkpoint (2 x batch 4), resumed by one plain process with batch 8: the same run."""
    ck = base / "fsdp_to_one_ck"
    ck.mkdir()
    shutil.copy(base / "fsdp_ck" / STEP, ck / STEP)
    out = base / "fsdp_to_one"
    proc = run(out, "--batch-size", "8", "--ckpt-dir", str(ck), "--every", "25", *VAL, "--resume", str(ck / STEP),
               nproc=1)
    assert "resumed at step 25" in proc.stdout + proc.stderr
    assert results(out)["world_size"] == 1
    _same_run(out, one)


def test_one_process_checkpoint_resumes_under_fsdp(base: Path, one: Path) -> None:
    """A plain (1-process; DDP writes the same format) mid-epoch checkpoint, resumed sharded on 2 processes."""
    ck = base / "one_to_fsdp_ck"
    ck.mkdir()
    shutil.copy(base / "one_ck" / STEP, ck / STEP)
    out = base / "one_to_fsdp"
    proc = run(out, "--batch-size", "4", "--strategy", "fsdp", "--ckpt-dir", str(ck), "--every", "25", *VAL,
               "--resume", str(ck / STEP))
    assert "resumed at step 25" in proc.stdout + proc.stderr
    assert results(out)["world_size"] == 2
    _same_run(out, one)


def test_fsdp_gradient_accumulation_and_export(base: Path, one: Path, tmp_path: Path) -> None:
    """2 processes x batch 2 x 2 micro-steps (no reduce-scatter on the first) == 1 process x batch 8; rank 0
    exports the full model after training."""
    out = base / "accumulated"
    run(out, "--batch-size", "2", "--accum", "2", "--strategy", "fsdp", *VAL, "--export", str(tmp_path / "export"))
    _same_run(out, one)
    bundle = Path(results(out)["export_dir"])
    assert results(out)["export_error"] is None and bundle.parent == tmp_path / "export"
    from safetensors.torch import load_file

    exported = load_file(str(bundle / "model.safetensors"))
    final = weights(out)
    for key, value in exported.items():  # safetensors drops the tied duplicate; every key kept is the model's
        torch.testing.assert_close(value, final[key], rtol=0, atol=0)
    assert (bundle / "model.torchscript.pt").exists()


def test_fsdp_nan_guard_rolls_back_like_one_process(base: Path) -> None:
    """Three NaN steps in a row: both runs skip them, roll back to the last good snapshot (which under FSDP only
    rank 0 holds whole and broadcasts) with a halved learning rate, and end with the same weights."""
    two, single = base / "nan_fsdp", base / "nan_one"
    run(two, "--batch-size", "4", "--strategy", "fsdp", *VAL, "--nan-at", "5,6,7", "--epochs", "1")
    run(single, "--batch-size", "8", *VAL, "--nan-at", "5,6,7", "--epochs", "1", nproc=1)
    assert results(two)["skipped_steps"] == results(single)["skipped_steps"] == 3
    assert results(two)["nan_rollbacks"] == results(single)["nan_rollbacks"] == 1
    _same_run(two, single)
