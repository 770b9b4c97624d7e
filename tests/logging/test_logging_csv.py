"""CSVLogger: metrics.csv (header = union of keys), steps.jsonl, summary.json, resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from trainforge.logging import CSVLogger


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_rows_and_header_read_back(tmp_path: Path) -> None:
    lg = CSVLogger(tmp_path / "run")
    lg.log_epoch({"epoch": 1, "train/loss": 2.5, "val/loss": 2.75, "lr": 3e-4}, step=10)
    header, rows = _read_csv(tmp_path / "run" / "metrics.csv")  # flushed after the first epoch
    assert header == ["epoch", "train/loss", "val/loss", "lr"]
    assert rows == [{"epoch": "1", "train/loss": "2.5", "val/loss": "2.75", "lr": "0.0003"}]
    lg.log_epoch({"epoch": 2, "train/loss": 0.1 + 0.2, "val/loss": 2.0, "lr": 1e-4}, step=20)
    lg.close()
    _, rows = _read_csv(tmp_path / "run" / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["train/loss"]) == 0.1 + 0.2  # floats round-trip exactly


def test_new_keys_later_extend_the_header(tmp_path: Path) -> None:
    lg = CSVLogger(tmp_path)
    lg.log_epoch({"epoch": 1, "train/loss": 2.0}, step=5)
    lg.log_epoch({"epoch": 2, "train/loss": 1.5, "val/accuracy": 0.5}, step=10)
    header, rows = _read_csv(tmp_path / "metrics.csv")
    assert header == ["epoch", "train/loss", "val/accuracy"]
    assert rows[0]["val/accuracy"] == ""  # missing value in an earlier row stays empty
    assert rows[1]["val/accuracy"] == "0.5"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_csv_readable_by_pandas(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    lg = CSVLogger(tmp_path)
    for e in (1, 2, 3):
        lg.log_epoch({"epoch": e, "train/loss": 1.0 / e}, step=e * 4)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert df["epoch"].tolist() == [1, 2, 3]
    assert df["train/loss"].tolist() == [1.0, 0.5, 1.0 / 3]


def test_steps_jsonl_lines_parse(tmp_path: Path) -> None:
    lg = CSVLogger(tmp_path)
    lg.log_step({"train/loss": 2.25, "lr": 1e-3}, step=1)
    # The first line is flushed at once (the interval since the last flush is unbounded): on disk before close.
    assert (tmp_path / "steps.jsonl").read_text().count("\n") == 1
    lg.log_step({"train/loss": 2.0, "lr": 9e-4, "grad_norm": 0.5}, step=2)
    lg.close()
    lines = (tmp_path / "steps.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records == [
        {"step": 1, "train/loss": 2.25, "lr": 1e-3},
        {"step": 2, "train/loss": 2.0, "lr": 9e-4, "grad_norm": 0.5},
    ]


def test_summary_json_and_config_ignored(tmp_path: Path) -> None:
    lg = CSVLogger(tmp_path)
    lg.log_config({"lr": 1e-3, "model": {"d": 8}})
    lg.log_summary({"best_epoch": 2, "final_loss": 1.25, "training_time_s": 3.5, "run_dir": tmp_path})
    lg.close()
    lg.close()  # idempotent
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "best_epoch": 2,
        "final_loss": 1.25,
        "training_time_s": 3.5,
        "run_dir": str(tmp_path),
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no config file, no empty files


def test_tensor_values_are_converted(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    lg = CSVLogger(tmp_path)
    lg.log_step({"train/loss": torch.tensor(1.5)}, step=3)  # type: ignore[dict-item]
    lg.log_epoch({"epoch": 1, "train/loss": torch.tensor(1.5)}, step=3)
    lg.close()
    assert json.loads((tmp_path / "steps.jsonl").read_text()) == {"step": 3, "train/loss": 1.5}
    assert _read_csv(tmp_path / "metrics.csv")[1][0]["train/loss"] == "1.5"


def test_resume_keeps_earlier_rows_and_replaces_relogged_epochs(tmp_path: Path) -> None:
    first = CSVLogger(tmp_path)
    for e in (1, 2, 3):
        first.log_step({"train/loss": float(e)}, step=e)
        first.log_epoch({"epoch": e, "train/loss": float(e)}, step=e)
    first.close()
    # The run crashed after epoch 3 but the last checkpoint was after epoch 2: epoch 3 runs again.
    resumed = CSVLogger(tmp_path, resume=True)
    resumed.log_step({"train/loss": 30.0}, step=4)
    resumed.log_epoch({"epoch": 3, "train/loss": 30.0, "val/loss": 31.0}, step=4)
    resumed.close()
    header, rows = _read_csv(tmp_path / "metrics.csv")
    assert header == ["epoch", "train/loss", "val/loss"]
    assert [(r["epoch"], r["train/loss"]) for r in rows] == [("1", "1.0"), ("2", "2.0"), ("3", "30.0")]
    assert len((tmp_path / "steps.jsonl").read_text().splitlines()) == 4  # appended, not truncated


def test_fresh_run_truncates_old_steps(tmp_path: Path) -> None:
    (tmp_path / "steps.jsonl").write_text('{"step": 99}\n')
    lg = CSVLogger(tmp_path)
    lg.log_step({"train/loss": 1.0}, step=1)
    lg.close()
    assert [json.loads(x)["step"] for x in (tmp_path / "steps.jsonl").read_text().splitlines()] == [1]


def test_steps_jsonl_flushes_at_most_once_per_interval_and_with_each_epoch_row(tmp_path: Path) -> None:
    lg = CSVLogger(tmp_path, flush_interval_s=3600.0)
    lg.log_step({"train/loss": 2.0}, step=1)  # flushed: the first line
    lg.log_step({"train/loss": 1.9}, step=2)  # within the interval: buffered
    assert (tmp_path / "steps.jsonl").read_text().count("\n") == 1
    lg.log_epoch({"epoch": 1, "train/loss": 1.95}, step=2)  # the epoch's step lines go with its row
    assert (tmp_path / "steps.jsonl").read_text().count("\n") == 2
    lg.log_step({"train/loss": 1.8}, step=3)
    lg.close()
    assert (tmp_path / "steps.jsonl").read_text().count("\n") == 3
    every = CSVLogger(tmp_path / "every", flush_interval_s=0.0)
    for step in (1, 2):
        every.log_step({"train/loss": 1.0}, step=step)
    assert (tmp_path / "every" / "steps.jsonl").read_text().count("\n") == 2
    every.close()
