"""benchmarks/bench_logging.py runs end to end in its quick mode with every backend on (timings never asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_mode_prints_the_on_off_row(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_logging.py"), "--quick"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("bench_tiny")]
    assert len(rows) == 1
    off, on, ratio = (float(x) for x in rows[0][1:4])
    assert off > 0 and on > 0 and abs(ratio - on / off) < 0.01
