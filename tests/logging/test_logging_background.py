"""BackgroundLogger: a backend on its own thread keeps order, drains before the summary and on close, and a failure
on the thread is contained by MultiLogger like any other backend failure."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from trainforge.logging import CSVLogger, MultiLogger
from trainforge.logging.background import BackgroundLogger


class ThreadRecorder:
    """Records each call with the thread it ran on."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, str]] = []
        self.closed = 0

    def _add(self, what: str, value: Any) -> None:
        self.calls.append((what, value, threading.current_thread().name))

    def log_config(self, config: dict[str, Any]) -> None:
        self._add("config", config)

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        self._add("step", step)

    def log_epoch(self, row: dict[str, Any], step: int) -> None:
        self._add("epoch", row["epoch"])

    def log_summary(self, summary: dict[str, Any]) -> None:
        self._add("summary", summary)

    def close(self) -> None:
        self.closed += 1


class FailsAtStep(ThreadRecorder):
    def log_step(self, metrics: dict[str, float], step: int) -> None:
        super().log_step(metrics, step)
        if step == 3:
            raise OSError("disk full")


def test_records_arrive_in_order_off_the_training_thread_and_summary_waits_for_them() -> None:
    rec = ThreadRecorder()
    bg = BackgroundLogger(rec)
    bg.log_config({"lr": 1e-3})
    for step in range(1, 201):
        bg.log_step({"train/loss": 1.0 / step}, step)
    bg.log_epoch({"epoch": 1}, 200)
    bg.log_summary({"best_epoch": 1})
    bg.close()
    assert [c[:2] for c in rec.calls] == ([("config", {"lr": 1e-3})] + [("step", s) for s in range(1, 201)]
                                          + [("epoch", 1), ("summary", {"best_epoch": 1})])
    main = threading.current_thread().name
    assert {c[2] for c in rec.calls if c[0] in ("step", "epoch")} == {"trainforge-log-ThreadRecorder"}
    assert {c[2] for c in rec.calls if c[0] in ("config", "summary")} == {main}
    assert rec.closed == 1
    assert not any(t.name.startswith("trainforge-log-") for t in threading.enumerate())  # the thread ended


def test_the_callers_dict_may_change_after_logging() -> None:
    rec = ThreadRecorder()
    seen: list[float] = []
    rec.log_step = lambda metrics, step: seen.append(metrics["train/loss"])  # type: ignore[method-assign]
    bg = BackgroundLogger(rec)
    metrics = {"train/loss": 1.0}
    bg.log_step(metrics, 1)
    metrics["train/loss"] = 99.0
    bg.close()
    assert seen == [1.0]


def test_a_failure_on_the_thread_is_contained_by_multilogger_and_names_the_backend(tmp_path: Path) -> None:
    bad = FailsAtStep()
    csv_logger = CSVLogger(tmp_path)
    multi = MultiLogger([BackgroundLogger(bad), csv_logger])
    # Which later call reports it depends on when the thread got to step 3; the summary is the latest it can be.
    with pytest.warns(RuntimeWarning, match=r"FailsAtStep\.(log_step|log_epoch|log_summary) failed: RuntimeError: "
                                            r"FailsAtStep\.log_step failed on the logging thread: OSError: disk full"):
        for step in range(1, 6):
            multi.log_step({"train/loss": 0.5}, step)
        multi.log_epoch({"epoch": 1, "train/loss": 0.5}, 5)
        multi.log_summary({"best_epoch": 1})
    multi.close()
    # The backend saw steps up to the failing one and nothing after it; it was still closed once.
    assert [c[1] for c in bad.calls] == [1, 2, 3]
    assert bad.closed == 1
    # The other backend kept everything.
    lines = (tmp_path / "steps.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5]
    with open(tmp_path / "metrics.csv", newline="") as fh:
        assert [row["epoch"] for row in csv.DictReader(fh)] == ["1"]


def test_multilogger_find_returns_the_wrapped_backend() -> None:
    rec = ThreadRecorder()
    multi = MultiLogger([BackgroundLogger(rec)])
    assert multi.find(ThreadRecorder) is rec
    assert "ThreadRecorder" in repr(multi)
    multi.close()


def test_min_interval_thins_step_lines_but_never_epoch_rows_or_the_summary() -> None:
    inner = ThreadRecorder()
    lg = BackgroundLogger(inner, min_interval_s=0.5)  # type: ignore[arg-type]
    for step in range(1, 6):  # five lines within microseconds: only the first is sent
        lg.log_step({"loss": 1.0}, step)
    lg.log_epoch({"epoch": 1}, 5)
    lg._last_step_sent -= 1.0  # as if a second had passed since the last line sent
    lg.log_step({"loss": 1.0}, 6)
    lg.log_step({"loss": 1.0}, 7)
    lg.log_summary({"global_step": 7})
    lg.close()
    assert [(what, value) for what, value, _ in inner.calls] == [
        ("step", 1), ("epoch", 1), ("step", 6), ("summary", {"global_step": 7})]


def test_training_sends_dashboards_at_most_one_step_line_per_interval(lm_blocks, tmp_path: Path) -> None:
    """A fast run: steps.jsonl has every log line, TensorBoard (a dashboard) only the first within the interval,
    and every epoch row."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.helpers import lm_task, quiet_config, tiny_gpt
    from trainforge import Trainer

    model, cfg = tiny_gpt()
    config = quiet_config(output_dir=str(tmp_path / "run"), log_every_n_steps=1, loggers=["tensorboard"],
                          dashboard_min_interval_s=3600.0, track_runs=False)
    results = Trainer(model, cfg, config, lm_task()).train(lm_blocks[:40])
    lines = (tmp_path / "run" / "steps.jsonl").read_text().splitlines()
    assert len(lines) == results["global_step"] > 1
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1]
    assert len(acc.Scalars("epoch/train/loss")) == config.epochs
