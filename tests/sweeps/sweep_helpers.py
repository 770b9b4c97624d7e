"""Builders shared by the sweep tests: tiny, fast sweep files and a way to run the real commands."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

# Trials of about a second on one CPU thread: 3 optimizer steps per epoch, a small validation set.
FAST_BASE = {"preset": "tiny", "epochs": 2, "batch_size": 16, "max_train_samples": 48, "max_val_samples": 16,
             "log_every_n_steps": 100, "progress_bar": False}
FAST_MODEL = {"preset": "tiny", "n_layer": 1, "d_model": 32}
FAST_DATA = {"max_bytes": 12000}


def sweep_dict(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "method": "grid",
        "metric": {"name": "val/loss", "goal": "minimize"},
        "parameters": {"learning_rate": {"values": [1.0e-3, 3.0e-3]}, "warmup_ratio": {"values": [0.0, 0.1]}},
        "parallel": 2,
        "base_config": dict(FAST_BASE),
        "model": dict(FAST_MODEL),
        "data": dict(FAST_DATA),
    }
    data.update(changes)
    return data


def write_sweep(path: Path, **changes: Any) -> Path:
    path.write_text(yaml.safe_dump(sweep_dict(**changes), sort_keys=False))
    return path


def trainforge(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainforge", *args], capture_output=True, text=True,
                          timeout=timeout)


def trial_rows(db: Path) -> list[dict[str, Any]]:
    """The sweep's trial jobs straight from SQLite: the ground truth the tests check."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM jobs WHERE kind = 'sweep-trial' ORDER BY id").fetchall()
    return [dict(r) for r in rows]
