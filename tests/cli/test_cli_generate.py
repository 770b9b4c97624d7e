"""``trainforge train`` ends with a sample and the loss plot; ``trainforge generate`` continues a prompt from the
run directory or a checkpoint, with the run's tokenizer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from trainforge.cli.main import main

FAST = ["epochs=1", "max_steps=12", "data.max_bytes=20000", "progress_bar=false", "model.n_layer=1",
        "model.d_model=32"]


def trainforge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainforge", *args], capture_output=True, text=True, timeout=300)


def test_train_prints_a_sample_and_the_plot_then_generate_continues_the_prompt_reproducibly():
    proc = trainforge("train", *FAST, "run_name=gen", "checkpoint_dir=ck")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "sample (temperature 0.8, top-k 40):\ndef " in out
    assert "loss plot: runs/gen/plots/loss.png" in out and Path("runs/gen/plots/loss.png").stat().st_size > 1000
    assert "final weights: runs/gen/model.pt" in out
    final = torch.load("runs/gen/model.pt", weights_only=True)
    assert final["model_config"]["n_layer"] == 1 and final["task_spec"]["task_type"] == "language_modeling"

    first = trainforge("generate", "runs/gen", "--prompt", "def main(", "--max-new-tokens", "40", "--seed", "3")
    again = trainforge("generate", "gen", "--prompt", "def main(", "--max-new-tokens", "40", "--seed", "3")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("def main(") and first.stdout == again.stdout  # a run name works too
    assert len(first.stdout.encode()) >= len("def main(") + 20  # bytes: ~40 new ones, a few may merge into U+FFFD
    assert "generating from runs/gen/model.pt" in first.stderr
    # From a checkpoint file (max_steps=12 stops mid-epoch: a step file): the model from its model_config, the
    # tokenizer from its run directory's records.
    ckpt = trainforge("generate", "ck/step_00000012.pt", "--prompt", "import ", "--max-new-tokens", "10",
                      "--temperature", "0")
    assert ckpt.returncode == 0, ckpt.stderr
    assert ckpt.stdout.startswith("import ") and "generating from ck/step_00000012.pt" in ckpt.stderr


def test_generate_explains_what_is_missing(capsys):
    assert main(["generate", "no-such-run"]) == 2
    assert "'no-such-run' is neither a checkpoint file nor a run directory" in capsys.readouterr().err
    Path("runs/empty").mkdir(parents=True)
    assert main(["generate", "runs/empty"]) == 2
    assert "holds no weights" in capsys.readouterr().err
