"""GPU checks of FSDP (``strategy: fsdp``) on one GPU: run by hand on a CUDA machine, prints a markdown report.

    PYTHONPATH=src:. python tests/distributed/gpu_fsdp_check.py OUT_DIR

One GPU allows no real sharding over nccl (nccl needs one GPU per rank), so this checks FSDP's CUDA code path:

* 1 plain process on cuda, global batch 8 (the reference), and the same in bf16;
* FSDP over a process group of one (``torchrun --nproc_per_node 1``, nccl), fp32: weights vs the reference, a
  mid-epoch checkpoint resumed by a plain cuda process, and the export bundle after training;
* FSDP with 2 processes sharing the GPU through gloo (``TRAINFORGE_DIST_BACKEND=gloo``): it crashed (SIGSEGV,
  torch 2.11), so trainforge refuses it; the check expects the ConfigError;
* FSDP (nproc 1, nccl) with ``bf16-mixed`` (MixedPrecisionPolicy bf16 params, fp32 reduction) and ``fp16-mixed``
  (the same with fp16, plus the GradScaler): they train, with losses next to the plain bf16 run's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("ddp_script.py")


def launch(out: Path, nproc: int, *args: str, backend: str | None = None, timeout: int = 150) -> tuple[int, float, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if backend:
        env["TRAINFORGE_DIST_BACKEND"] = backend
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
           if nproc > 0 else [sys.executable])
    started = time.perf_counter()
    try:
        proc = subprocess.run([*cmd, str(SCRIPT), "--out", str(out), "--device", "cuda", *args], env=env,
                              capture_output=True, text=True, timeout=timeout)
        errs = [x for x in proc.stderr.splitlines()
                if ("Error" in x or "nccl backend" in x) and "ChildFailedError" not in x]
        code, text = proc.returncode, proc.stdout[-1500:] + "\n".join(errs[-8:])
    except subprocess.TimeoutExpired:
        code, text = -1, "timeout"
    return code, time.perf_counter() - started, text


def maxdiff(a: Path, b: Path) -> float:
    try:
        x, y = torch.load(a / "final.pt"), torch.load(b / "final.pt")
    except FileNotFoundError:
        return float("nan")
    return max((x[k].float() - y[k].float()).abs().max().item() for k in x)


def losses(out: Path) -> str:
    try:
        r = json.loads((out / "results.json").read_text())
    except FileNotFoundError:
        return "-"
    return (f"train {', '.join(f'{v:.6f}' for v in r['loss_history'])}; val "
            f"{', '.join(f'{v:.6f}' for v in r['val_loss_history'])}; skipped {r.get('skipped_steps')}")


def main() -> None:
    base = Path(sys.argv[1])
    base.mkdir(parents=True, exist_ok=True)
    rows = [f"# FSDP checks on {torch.cuda.get_device_name(0)} (torch {torch.__version__})", "",
            "| check | result |", "|---|---|"]
    logs: dict[str, str] = {}
    val = ("--val-samples", "17")

    def row(label: str, code: int, secs: float, extra: str) -> None:
        rows.append(f"| {label} | rc {code}, {secs:.1f}s{', ' + extra if extra else ''} |")

    c, t, logs["one"] = launch(base / "one", 0, "--batch-size", "8", *val)
    row("1 plain process, cuda fp32, batch 8 (reference)", c, t, losses(base / "one"))
    c, t, logs["fsdp1"] = launch(base / "fsdp1", 1, "--batch-size", "8", "--strategy", "fsdp", "--ckpt-dir",
                                 str(base / "fsdp1_ck"), "--every", "25", *val, "--export", str(base / "export"))
    exported = ""
    if c == 0:
        r = json.loads((base / "fsdp1" / "results.json").read_text())
        exported = f"export_dir {'set' if r['export_dir'] else 'None'}, export_error {r['export_error']}"
    row("FSDP nproc 1 (nccl), fp32, batch 8 + export", c, t,
        f"max abs weight diff vs reference {maxdiff(base / 'one', base / 'fsdp1'):.2e}; {losses(base / 'fsdp1')}; "
        f"{exported}")
    ck = base / "resume_ck"
    ck.mkdir(exist_ok=True)
    if (base / "fsdp1_ck" / "step_00000025.pt").exists():
        shutil.copy(base / "fsdp1_ck" / "step_00000025.pt", ck)
    c, t, logs["resume"] = launch(base / "resume", 0, "--batch-size", "8", "--ckpt-dir", str(ck), "--every", "25",
                                  *val, "--resume", str(ck / "step_00000025.pt"))
    row("FSDP (nproc 1) step-25 checkpoint resumed by 1 plain cuda process", c, t,
        f"max abs weight diff vs reference {maxdiff(base / 'one', base / 'resume'):.2e}")
    c, t, logs["gloo2"] = launch(base / "gloo2", 2, "--batch-size", "4", "--strategy", "fsdp", *val, backend="gloo")
    refused = "refused with ConfigError (needs nccl)" if "needs the nccl backend" in logs["gloo2"] else ""
    row("FSDP 2 processes sharing the GPU (gloo): expected to be refused (it crashed with SIGSEGV)", c, t,
        refused or f"max abs weight diff vs reference {maxdiff(base / 'one', base / 'gloo2'):.2e}; "
        f"{losses(base / 'gloo2')}")
    c, t, logs["one_bf16"] = launch(base / "one_bf16", 0, "--batch-size", "8", *val, "--precision", "bf16-mixed")
    row("1 plain process, bf16-mixed (autocast)", c, t, losses(base / "one_bf16"))
    c, t, logs["fsdp_bf16"] = launch(base / "fsdp_bf16", 1, "--batch-size", "8", "--strategy", "fsdp", *val,
                                     "--precision", "bf16-mixed")
    row("FSDP nproc 1, bf16-mixed (MixedPrecisionPolicy bf16 / fp32 reduce)", c, t,
        f"max abs weight diff vs plain bf16 {maxdiff(base / 'one_bf16', base / 'fsdp_bf16'):.2e}; "
        f"{losses(base / 'fsdp_bf16')}")
    c, t, logs["fsdp_fp16"] = launch(base / "fsdp_fp16", 1, "--batch-size", "8", "--strategy", "fsdp", *val,
                                     "--precision", "fp16-mixed")
    row("FSDP nproc 1, fp16-mixed (fp16 params + GradScaler)", c, t, losses(base / "fsdp_fp16"))
    report = "\n".join(rows) + "\n"
    print(report)
    for name, log in logs.items():
        print(f"--- {name}\n{log[-1200:]}")
    (base / "report.md").write_text(report)


if __name__ == "__main__":
    main()
