"""``trainforge prepare`` and a run file with ``data: {tokens: DIR}``, through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from trainforge.data.corpus import default_corpus_text


def trainforge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainforge", *args], capture_output=True, text=True, timeout=300)


def test_prepare_then_train_from_a_run_file(tmp_path):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text(default_corpus_text(40_000))
    (tmp_path / "texts" / "b.txt").write_text(default_corpus_text(80_000)[40_000:])
    proc = trainforge("prepare", "texts", "--out", "corpus", "--tokenizer", "char", "--workers", "2",
                      "--val-fraction", "0.2")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(Path("corpus/meta.json").read_text())
    assert "train.bin" in proc.stdout and f"{meta['train_tokens']:,} tokens" in proc.stdout
    assert len(meta["sources"]) == 2 and meta["tokenizer"]["kind"] == "char"

    Path("run.yaml").write_text("preset: tiny\nepochs: 1\nmax_steps: 6\nprogress_bar: false\nrun_name: tok-run\n"
                                "model: {preset: tiny, n_layer: 1}\ndata: {tokens: corpus}\n")
    proc = trainforge("train", "--config", "run.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "data=corpus train=" in proc.stdout and "windows of 64 tokens" in proc.stdout
    assert "val/loss" in proc.stdout  # val.bin is the validation data
    run = Path("runs/tok-run")
    assert json.loads((run / "model_config.json").read_text())["vocab_size"] == meta["vocab_size"]
    assert (run / "tokenizer").is_dir()  # saved with the run, as for text files

    # the model's vocabulary must hold the corpus's ids
    proc = trainforge("train", "--config", "run.yaml", "model.vocab_size=20", "run_name=small-vocab")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{meta['vocab_size']}-token vocabulary" in proc.stderr and "model.vocab_size" in proc.stderr


def test_prepare_errors_are_clear_and_exit_2(tmp_path):
    proc = trainforge("prepare", "missing.txt", "--out", "corpus")
    assert proc.returncode == 2 and "missing.txt: no such file or folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    Path("run.yaml").write_text("preset: tiny\nmodel: {preset: tiny}\ndata: {tokens: corpus}\n")
    proc = trainforge("train", "--config", "run.yaml")
    assert proc.returncode == 2 and "meta.json not found" in proc.stderr and "trainforge prepare" in proc.stderr
