"""DDP with 2 gloo ranks: named validation sets, each sharded over the ranks, and mid-epoch validation; every row
equals one process evaluating the same weights on the whole set."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from tests.distributed import val_sets_script
from tests.distributed.launch_helpers import REPO, env, torchrun


def _alone(weights: dict, name: str) -> dict[str, float]:
    """One process, no DDP: ``trainer.evaluate`` of set ``name`` alone on ``weights``."""
    trainer = val_sets_script.make_trainer(Path("alone"))
    trainer.model.load_state_dict(weights)
    values = trainer.evaluate(val_sets_script.val_sets()[name])
    return {f"val/{name}/{k[len('val/'):]}": v for k, v in values.items()}


def _assert_close(row: dict, expected: dict) -> None:
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


@pytest.mark.slow  # ~20 s on 2 busy cores, most of it torchrun starting two processes
def test_named_sets_and_mid_epoch_validation_under_ddp_with_two_gloo_ranks(tmp_path):
    out = tmp_path / "ddp"
    cmd = [*torchrun(), "--standalone", "--nproc_per_node=2", val_sets_script.__file__, "--out", str(out)]
    launch_env = env()
    launch_env["PYTHONPATH"] += os.pathsep + str(REPO)  # the script imports tests.distributed.metrics_script
    proc = subprocess.run(cmd, env=launch_env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    assert data["world_size"] == 2 and data["monitor"] == "val/a/loss"
    # 96 samples, 2 ranks x batch 8: 6 steps per epoch; mid-epoch validations at steps 3 and 9
    assert [r["step"] for r in data["eval_history"]] == [3, 9]
    for row in data["eval_history"]:
        weights = torch.load(out / f"at_step_{row['step']}.pt", weights_only=True)
        _assert_close(row, {**_alone(weights, "a"), **_alone(weights, "b")})
    final = torch.load(out / "final.pt", weights_only=True)
    expected = {**_alone(final, "a"), **_alone(final, "b")}
    assert set(expected) == {k for k in data["history"][-1] if k.startswith("val/")}
    _assert_close(data["history"][-1], expected)
    _assert_close(data["evaluate"], expected)  # trainer.evaluate(dict) under torchrun
