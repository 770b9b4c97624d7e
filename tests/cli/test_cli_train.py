"""The main job: ``trainforge train`` on the embedded corpus, through the real console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FAST = ["epochs=1", "max_steps=12", "data.max_bytes=20000", "progress_bar=false", "run_name=cli-run"]


def trainforge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainforge", *args], capture_output=True, text=True, timeout=300)


def test_train_with_overrides_prints_table_and_run_dir():
    proc = trainforge("train", *FAST, "checkpoint_dir=ck")
    assert proc.returncode == 0, proc.stderr
    assert "train/loss" in proc.stdout and "val/perplexity" in proc.stdout
    assert "run directory: runs/cli-run" in proc.stdout
    run = Path("runs/cli-run")
    assert {"config.yaml", "metrics.csv", "task_spec.json", "model_config.json"} <= {p.name for p in run.iterdir()}
    assert Path("ck/step_00000012.pt").is_file()  # max_steps stopped mid-epoch: the epoch stays unfinished


def test_train_reads_a_run_file_and_model_overrides(tmp_path):
    run_file = tmp_path / "run.yaml"
    run_file.write_text("preset: tiny\nlearning_rate: 2.0e-3\nmodel:\n  preset: tiny\n  n_layer: 1\n")
    proc = trainforge("train", "--config", str(run_file), *FAST)
    assert proc.returncode == 0, proc.stderr
    saved = Path("runs/cli-run/config.yaml").read_text()
    assert "learning_rate: 0.002" in saved
    assert '"n_layer": 1' in Path("runs/cli-run/model_config.json").read_text()


def test_quick_reference_cli_path_forwards(tmp_path):
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "cli" / "run_training.py"), *FAST], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "best epoch" in proc.stdout


def test_bad_override_is_a_clear_error_and_exit_code_2():
    proc = trainforge("train", "lerning_rate=0.1")
    assert proc.returncode == 2
    assert "lerning_rate" in proc.stderr and "did you mean 'learning_rate'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_presets_lists_training_and_model_presets():
    proc = trainforge("presets")
    assert proc.returncode == 0
    assert "tiny" in proc.stdout and "baseline" in proc.stdout and "bench" in proc.stdout
