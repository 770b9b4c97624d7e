"""DDP on CPU: 2 gloo processes launched by torchrun train the tiny preset exactly like one process.

Each run is a real ``torchrun --standalone --nproc_per_node 2`` of ``ddp_script.py`` (a few seconds each). The
uninterrupted 2-process run and the killed one are module fixtures shared by the tests below.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.distributed.launch_helpers import TIMEOUT, assert_same_weights, results, run, weights
from tests.distributed.launch_helpers import env as _env

pytestmark = pytest.mark.xdist_group("ddp")  # one worker runs the shared torchrun fixtures once


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module")
def uninterrupted(base: Path) -> Path:
    """2 processes x batch 4 (global batch 8), 2 epochs, epoch checkpoints."""
    out = base / "two"
    run(out, "--batch-size", "4", "--ckpt-dir", str(base / "two_ck"))
    return out


@pytest.fixture(scope="module")
def killed(base: Path) -> Path:
    """The same run, checkpointing every 5 steps, SIGKILLed (rank 1) at the end of step 27 (mid epoch 2)."""
    out = base / "killed"
    proc = run(out, "--batch-size", "4", "--ckpt-dir", str(base / "killed_ck"), "--every", "5", "--kill-at", "27",
               check=False)
    assert proc.returncode != 0, "the kill did not happen"
    assert not (out / "final.pt").exists()
    return base / "killed_ck"


def test_two_processes_equal_one_process_with_the_same_global_batch(base: Path, uninterrupted: Path) -> None:
    single = base / "one"
    run(single, "--batch-size", "8", nproc=1)
    assert results(uninterrupted)["world_size"] == 2 and results(single)["world_size"] == 1
    assert_same_weights(weights(uninterrupted), weights(single))
    two, one = results(uninterrupted), results(single)
    assert two["global_step"] == one["global_step"]
    # token-normalised loss and validation metrics are all-reduced: the numbers are one process's
    assert two["loss_history"] == pytest.approx(one["loss_history"], rel=1e-6)
    assert two["val_loss_history"] == pytest.approx(one["val_loss_history"], rel=1e-6)


def test_only_rank_zero_writes(base: Path, uninterrupted: Path) -> None:
    ckpts = sorted(p.name for p in (base / "two_ck").iterdir() if p.name != "index.json")
    assert ckpts == ["best.pt", "epoch_1.pt", "epoch_2.pt"]
    lines = (uninterrupted / "run" / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 2  # header + one row per epoch, written once


def test_killed_and_resumed_run_equals_the_uninterrupted_one(base: Path, uninterrupted: Path, killed: Path) -> None:
    assert (killed / "step_00000025.pt").exists()
    resumed_ck = base / "resumed_ck"
    shutil.copytree(killed, resumed_ck)
    out = base / "resumed"
    proc = run(out, "--batch-size", "4", "--ckpt-dir", str(resumed_ck), "--every", "5", "--resume", "auto")
    assert "resumed at step 25" in proc.stdout + proc.stderr
    assert_same_weights(weights(out), weights(uninterrupted))
    assert results(out)["loss_history"] == pytest.approx(results(uninterrupted)["loss_history"], rel=1e-6)


def test_checkpoint_from_two_processes_resumes_on_one(base: Path, uninterrupted: Path, killed: Path) -> None:
    """Mid-epoch checkpoint of 2 x batch 4, resumed by 1 process with batch 8: the same samples, the same run."""
    one_ck = base / "one_ck"
    shutil.copytree(killed, one_ck)
    out = base / "resumed_on_one"
    run(out, "--batch-size", "8", "--ckpt-dir", str(one_ck), "--every", "5", "--resume",
        str(one_ck / "step_00000025.pt"), nproc=1)
    assert results(out)["world_size"] == 1
    assert_same_weights(weights(out), weights(uninterrupted))
    # the epoch's running loss sums were saved over both ranks, so the resumed epoch's loss is the same too
    assert results(out)["loss_history"] == pytest.approx(results(uninterrupted)["loss_history"], rel=1e-6)


def test_cli_nproc_relaunches_under_torchrun(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "trainforge", "train", "--nproc", "2", "--preset", "tiny", "epochs=1",
           "data.max_bytes=6000", "progress_bar=false", f"output_dir={tmp_path / 'run'}",
           f"checkpoint_dir={tmp_path / 'ck'}"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "torch.distributed.run" in proc.stdout and "--nproc_per_node=2" in proc.stdout
    assert proc.stdout.count("best epoch:") == 1  # the results table is printed by rank 0 only
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in (tmp_path / "ck").iterdir() if p.name != "index.json") == ["best.pt", "epoch_1.pt"]
