"""benchmarks/bench_peers.py runs end to end in its quick mode and writes every row, the chart and the JSON.

Timings are never asserted: the quick mode uses tiny sizes and one repeat, and the machine is shared. About 40 s on
an idle 2-core machine (four engines, each also with torch.compile, and four fresh interpreters for start-up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_peers.py"
ENGINES = ("raw PyTorch loop", "trainforge", "transformers.Trainer", "Lightning Trainer")
TRAIN_CASES = ("(a) small GPT", "(b) tiny model", "(c) tiny model, torch.compile")


def test_quick_mode_writes_table_chart_and_json(tmp_path: Path) -> None:
    for module in ("transformers", "accelerate", "lightning", "matplotlib"):
        pytest.importorskip(module, reason="the bench extra: pip install -e '.[bench]'")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-6000:]}"

    md = (tmp_path / "peers.md").read_text()
    assert "`python benchmarks/bench_peers.py --quick --threads 1" in md  # the exact command
    assert "- CPU: " in md and "torch " in md and "lightning " in md and "transformers " in md  # the machine
    assert "QUICK MODE" in md
    lines = md.splitlines()
    for case in TRAIN_CASES:  # (a)-(c): one row per engine
        for engine in ENGINES:
            assert any(line.startswith(f"| {case}:") and f"| {engine} |" in line for line in lines), (case, engine)
    sections = {
        "## Evaluation throughput (d)": ENGINES,
        "## Start-up (e)": ENGINES,
        "## Checkpoint (f)": ("raw `torch.save(payload, path)`", "raw `torch.save` + `fsync`",
                              "trainforge `CheckpointManager.save`, training thread blocked",
                              "trainforge `CheckpointManager.save` + `wait()`, until durable", "trainforge `Trainer`",
                              "raw `torch.load(", "trainforge `safe_load`"),
        "## Fixed cost (g)": ENGINES,
    }
    for heading, rows in sections.items():
        start = next(i for i, line in enumerate(lines) if line.startswith(heading))
        body = lines[start:next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))]
        for row in rows:
            assert any(line.startswith(f"| {row}") for line in body), (heading, row)
    targets = [line for line in lines if line.startswith("| (") and ("✅" in line or "❌" in line)]
    # (a) vs raw; (b) vs raw and peers; (c) vs peers; (e) first step, import; (f); (g) fixed cost
    assert len(targets) == 8, targets

    png = (tmp_path / "peers.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000

    summary = json.loads((tmp_path / "peers.json").read_text())
    assert set(summary["train"]) == {"big", "tiny", "tiny+compile"}
    for section in ("eval", "startup", "import", "fixed_cost_s"):
        assert set(summary[section]) == {"raw", "trainforge", "hf", "lightning"}
    assert all(v["median"] > 0 for case in summary["train"].values() for v in case.values())
    assert summary["fixed_cost_s"]["raw"]["median"] == 0.0  # (g) is each engine's whole call minus the raw loop's
