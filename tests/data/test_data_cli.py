"""``trainforge train --config`` trains on a user's own text files (``data: {train, val, format}``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_cli_trains_on_user_text_files_and_saves_the_tokenizer(tmp_path):
    (tmp_path / "train.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 40)
    (tmp_path / "val.txt").write_text("the lazy dog sleeps under the quick brown fox\n" * 10)
    run = tmp_path / "run.yaml"
    run.write_text(
        "epochs: 1\nmax_steps: 4\nbatch_size: 4\nprogress_bar: false\nrun_name: files\n"
        f"model:\n  preset: tiny\n  n_layer: 1\n  max_seq_len: 32\n"
        f"data:\n  train: {tmp_path / 'train.txt'}\n  val: {tmp_path / 'val.txt'}\n  format: text\n  tokenizer: char\n"
    )
    proc = subprocess.run([sys.executable, "-m", "trainforge", "train", "--config", str(run)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "val/loss" in proc.stdout and "format=text" in proc.stdout
    from trainforge.data.tokenizers import load_tokenizer

    tok = load_tokenizer(Path("runs/files/tokenizer"))
    assert tok.decode(tok.encode("lazy dog")) == "lazy dog"
