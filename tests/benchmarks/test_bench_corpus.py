"""benchmarks/bench_corpus.py runs end to end in its quick mode and writes its report (timings never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~1 minute on 2 idle cores: two prepare and two train commands in their own processes
def test_quick_mode_writes_every_case(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_corpus.py"), "--quick", "--out-dir",
                           str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "corpus.json").read_text())
    assert results["throughput"]["bpe"]["prepare_mb_s"] > 0 and results["throughput"]["byte"]["prepare_mb_s"] > 0
    assert results["prepare_memory"]["byte"]["tree_pss_mb"] > 0 and results["train_rss"]["ratio"] > 0
    assert results["speed"][0]["token_file"] > 0 and results["speed"][0]["tensor"] > 0
    assert "(d) training tokens/s" in (tmp_path / "out" / "corpus.md").read_text()
