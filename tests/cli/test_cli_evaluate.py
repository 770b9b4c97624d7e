"""``trainforge evaluate RUN_OR_CHECKPOINT --data ...``: a trained run's metrics, equal to its epoch-end validation."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainforge.cli.main import main

FAST = ["epochs=1", "max_steps=6", "data.max_bytes=12000", "progress_bar=false", "model.n_layer=1",
        "model.d_model=32", "plots=false", "export_bundle=false"]


def test_evaluate_a_trained_run_equals_its_epoch_end_validation(capsys):
    proc = subprocess.run([sys.executable, "-m", "trainforge", "train", *FAST, "run_name=ev", "checkpoint_dir=ck"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open("runs/ev/metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    # The run's own validation blocks (the embedded corpus at data.max_bytes=12000, blocks of max_seq_len).
    Path("evdata.py").write_text(
        "from trainforge.data.corpus import default_lm_dataset\n"
        "import json\n\n"
        "def val():\n"
        "    block = json.load(open('runs/ev/model_config.json'))['max_seq_len']\n"
        "    return default_lm_dataset(block_size=block, max_bytes=12000)[1]\n")
    assert main(["evaluate", "runs/ev", "--data", "evdata.py:val", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) == {"val/loss", "val/perplexity", "val/accuracy"}
    for key, value in metrics.items():
        assert value == pytest.approx(float(last[key]), rel=1e-6), key

    # a checkpoint file and a text file read with the run's tokenizer; plain output
    Path("some.txt").write_text("def main():\n    return 42\n" * 40)
    assert main(["evaluate", "ck/step_00000006.pt", "--data", "some.txt"]) == 0  # max_steps=6: mid-epoch
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["val/loss", "val/perplexity", "val/accuracy"]
    assert all(float(line.split()[1]) > 0 for line in out)


def test_evaluate_explains_bad_data(capsys):
    Path("runs/empty").mkdir(parents=True)
    assert main(["evaluate", "runs/empty", "--data", "corpus"]) == 2
    assert "holds no weights" in capsys.readouterr().err
