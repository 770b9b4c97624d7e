"""The Lightning path under DDP (2 gloo processes, torchrun) divides by the window's target count over both ranks:
2 ranks x batch 4 equal one ``trainforge.Trainer`` process with batch 8, on padded rows whose counts differ between
the ranks and between the micro-batches of a window (gradient_accumulation_steps=2)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

from tests.distributed.launch_helpers import TIMEOUT, assert_same_weights, env, torchrun  # noqa: E402
from tests.distributed.lightning_ddp_script import config, lightning_ddp_rows  # noqa: E402
from tests.helpers import PAD, lm_task, tiny_gpt  # noqa: E402
from trainforge import Trainer  # noqa: E402

SCRIPT = Path(__file__).with_name("lightning_ddp_script.py")

pytestmark = pytest.mark.xdist_group("ddp")  # (with the other torchrun tests: one at a time)


def test_lightning_ddp_equals_one_trainer_process_with_the_global_batch(tmp_path: Path) -> None:
    out = tmp_path / "lightning"
    cmd = [*torchrun(), "--standalone", "--nproc_per_node=2", str(SCRIPT), "--out", str(out)]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    two = json.loads((out / "results.json").read_text())
    assert two["world_size"] == 2 and two["backend"] == "lightning"

    model, model_config = tiny_gpt()
    one = Trainer(model, model_config, config(tmp_path / "trainer", batch_size=8), lm_task(pad_token_id=PAD)).train(
        lightning_ddp_rows())
    assert two["global_step"] == one["global_step"] == 4  # 3 micro-batches per epoch: windows of 2 and 1
    assert_same_weights(torch.load(out / "final.pt", weights_only=True), one["final_model_state"])
    assert two["loss_history"] == pytest.approx(one["loss_history"], rel=1e-5)
