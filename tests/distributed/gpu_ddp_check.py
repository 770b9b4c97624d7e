"""GPU checks of the distributed path (one GPU): run by hand on a CUDA machine, prints a markdown report.

    PYTHONPATH=src:. python tests/distributed/gpu_ddp_check.py OUT_DIR

* 1 process on cuda, global batch 8;
* 2 processes sharing the one GPU through gloo (TRAINFORGE_DIST_BACKEND=gloo), batch 4 each: max |diff| of the
  final weights against the 1-process run (TF32 matmuls are on for CUDA, so not bit-level);
* 2 processes on one GPU with nccl (expected to fail: NCCL needs one GPU per rank);
* TrainingCoordinator (Lightning) on cuda.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("ddp_script.py")


def launch(out: Path, nproc: int, *args: str, backend: str | None = None, timeout: int = 120) -> tuple[int, float, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if backend:
        env["TRAINFORGE_DIST_BACKEND"] = backend
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
           if nproc > 1 else [sys.executable])
    started = time.perf_counter()
    try:
        proc = subprocess.run([*cmd, str(SCRIPT), "--out", str(out), *args], env=env, capture_output=True,
                              text=True, timeout=timeout)
        errs = [x for x in proc.stderr.splitlines() if "Error" in x and "ChildFailedError" not in x]
        code, text = proc.returncode, proc.stdout[-1500:] + "\n".join(errs[-6:])
    except subprocess.TimeoutExpired:
        code, text = -1, "timeout"
    return code, time.perf_counter() - started, text


def maxdiff(a: Path, b: Path) -> float:
    x, y = torch.load(a / "final.pt"), torch.load(b / "final.pt")
    return max((x[k] - y[k]).abs().max().item() for k in x)


def main() -> None:
    base = Path(sys.argv[1])
    base.mkdir(parents=True, exist_ok=True)
    rows = [f"# Distributed checks on {torch.cuda.get_device_name(0)} (torch {torch.__version__})", "",
            "| check | result |", "|---|---|"]
    c1, t1, log1 = launch(base / "one", 1, "--batch-size", "8", "--device", "cuda")
    rows.append(f"| 1 process, cuda, batch 8 | rc {c1}, {t1:.1f}s |")
    c2, t2, log2 = launch(base / "two", 2, "--batch-size", "4", "--device", "cuda", "--ckpt-dir",
                          str(base / "two_ck"), backend="gloo")
    diff = maxdiff(base / "one", base / "two") if c1 == 0 and c2 == 0 else float("nan")
    rows.append(f"| 2 processes on one GPU (gloo), batch 4 each | rc {c2}, {t2:.1f}s, max abs weight diff vs 1 "
                f"process {diff:.2e} |")
    c3, t3, log3 = launch(base / "nccl", 2, "--batch-size", "4", "--device", "cuda", timeout=90)
    reason = next((line.strip() for line in log3.splitlines() if "Duplicate GPU" in line or "NCCL" in line), "")
    rows.append(f"| 2 processes on one GPU (nccl) | rc {c3}, {t3:.1f}s {reason[:160]} |")
    code = ("import torch\nfrom tests.helpers import lm_task, quiet_config, tiny_gpt\n"
            "from trainforge.lightning import TrainingCoordinator\n"
            "m, _ = tiny_gpt()\nr = TrainingCoordinator(quiet_config(device='cuda', epochs=1)).train(m, "
            "train_data=torch.randint(0, 32, (64, 16)), task_spec=lm_task())\nprint('COORD', r['device'], "
            "r['loss_history'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("COORD")), proc.stderr[-300:])
    rows.append(f"| TrainingCoordinator on cuda | rc {proc.returncode}: {line} |")
    report = "\n".join(rows) + "\n"
    print(report)
    for name, log in (("one", log1), ("two", log2), ("nccl", log3)):
        print(f"--- {name}\n{log[-800:]}")
    (base / "report.md").write_text(report)


if __name__ == "__main__":
    main()
