"""Running ``ddp_script.py`` under torchrun (or as one process) for the distributed tests, and reading its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("ddp_script.py")
REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 120


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")}
    out["OMP_NUM_THREADS"] = "1"
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), out.get("PYTHONPATH")]))
    return out


def torchrun() -> list[str]:
    script = Path(sys.executable).with_name("torchrun")
    return [str(script)] if script.exists() else [sys.executable, "-m", "torch.distributed.run"]


def run(out: Path, *args: str, nproc: int = 2, check: bool = True) -> subprocess.CompletedProcess[str]:
    if nproc > 1:
        cmd = [*torchrun(), "--standalone", f"--nproc_per_node={nproc}", str(SCRIPT)]
    else:
        cmd = [sys.executable, str(SCRIPT)]
    proc = subprocess.run([*cmd, "--out", str(out), *args], env=env(), capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=out.parent)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "final.pt", weights_only=True)


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=atol, msg=lambda m, k=key: f"{k}: {m}")
