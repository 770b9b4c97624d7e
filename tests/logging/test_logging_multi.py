"""MultiLogger containment, NullLogger, build_loggers, ProgressBar, and the import contract."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from trainforge.logging import (
    ConsoleLogger,
    CSVLogger,
    Logger,
    MultiLogger,
    NullLogger,
    ProgressBar,
    build_loggers,
)


class Recorder:
    """A backend that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closed = 0

    def log_config(self, config: dict[str, Any]) -> None:
        self.calls.append(("config", config))

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        self.calls.append(("step", step))

    def log_epoch(self, row: dict[str, Any], step: int) -> None:
        self.calls.append(("epoch", row["epoch"]))

    def log_summary(self, summary: dict[str, Any]) -> None:
        self.calls.append(("summary", summary))

    def close(self) -> None:
        self.closed += 1


class Exploding(Recorder):
    """A backend whose log_step raises (think: a dashboard that lost its connection)."""

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        super().log_step(metrics, step)
        raise ConnectionError("server went away")


def test_backends_satisfy_the_protocol(tmp_path: Path) -> None:
    for lg in (NullLogger(), ConsoleLogger(1, stream=io.StringIO()), CSVLogger(tmp_path), Recorder(), MultiLogger([])):
        assert isinstance(lg, Logger)


def test_failing_backend_is_warned_once_disabled_and_others_keep_receiving() -> None:
    bad, good = Exploding(), Recorder()
    multi = MultiLogger([bad, good])
    with pytest.warns(RuntimeWarning, match=r"Exploding\.log_step failed: ConnectionError: server went away") as rec:
        multi.log_step({"train/loss": 1.0}, step=1)
        multi.log_step({"train/loss": 0.9}, step=2)
        multi.log_epoch({"epoch": 1}, step=2)
        multi.log_summary({"best_epoch": 1})
    assert len([w for w in rec if issubclass(w.category, RuntimeWarning)]) == 1
    assert bad.calls == [("step", 1)]  # disabled after the first failure
    assert good.calls == [("step", 1), ("step", 2), ("epoch", 1), ("summary", {"best_epoch": 1})]
    assert multi.active == [good]
    multi.close()
    multi.close()  # idempotent
    assert (bad.closed, good.closed) == (1, 1)  # disabled backends are still closed once


def test_failing_close_does_not_keep_others_open() -> None:
    class BadClose(Recorder):
        def close(self) -> None:
            raise OSError("disk full")

    good = Recorder()
    multi = MultiLogger([BadClose(), good])
    with pytest.warns(RuntimeWarning, match=r"BadClose\.close failed: OSError: disk full"):
        multi.close()
    assert good.closed == 1


def test_multilogger_rejects_non_loggers() -> None:
    with pytest.raises(TypeError, match=r"MultiLogger expects objects with log_config.*got 3 \(int\)"):
        MultiLogger([3])  # type: ignore[list-item]


def test_find_returns_backend_by_type(tmp_path: Path) -> None:
    csv_logger = CSVLogger(tmp_path)
    multi = MultiLogger([NullLogger(), csv_logger])
    assert multi.find(CSVLogger) is csv_logger
    assert multi.find(ConsoleLogger) is None


def test_build_loggers_main_process_writes_console_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    multi = build_loggers(
        run_dir=str(tmp_path / "run"),
        total_epochs=2,
        use_wandb=False,
        wandb_project=None,
        wandb_entity=None,
        run_name="r",
        notes=None,
        tags=None,
    )
    assert [type(lg).__name__ for lg in multi.loggers] == ["ConsoleLogger", "CSVLogger"]
    multi.log_step({"train/loss": 1.0}, step=1)
    multi.log_epoch({"epoch": 1, "train/loss": 1.0}, step=1)
    multi.log_summary({"best_epoch": 1})
    multi.close()
    assert "epoch 1/2 | train/loss 1.0000" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.csv", "steps.jsonl", "summary.json"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == {"best_epoch": 1}


def test_non_main_process_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        multi = build_loggers(
            run_dir=str(run_dir),
            total_epochs=2,
            use_wandb=True,  # even with W&B on, rank > 0 must not start a run
            wandb_project="p",
            wandb_entity=None,
            run_name=None,
            notes=None,
            tags=None,
            is_main_process=False,
        )
        multi.log_config({"a": 1})
        multi.log_step({"train/loss": 1.0}, step=1)
        multi.log_epoch({"epoch": 1, "train/loss": 1.0}, step=1)
        multi.log_summary({"best_epoch": 1})
        multi.close()
        multi.close()
    assert all(isinstance(lg, NullLogger) for lg in multi.loggers)
    assert not run_dir.exists()
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().out == ""


def test_console_can_be_turned_off(tmp_path: Path) -> None:
    multi = build_loggers(
        run_dir=str(tmp_path),
        total_epochs=1,
        use_wandb=False,
        wandb_project=None,
        wandb_entity=None,
        run_name=None,
        notes=None,
        tags=None,
        console=False,
    )
    assert [type(lg).__name__ for lg in multi.loggers] == ["CSVLogger"]


def test_progress_bar_disabled_is_a_no_op() -> None:
    bar = ProgressBar(total=10, desc="train", enabled=False)
    assert not bar.enabled
    bar.update(1, postfix={"loss": 1.0})
    bar.set_description("x")
    bar.close()
    bar.close()


def test_progress_bar_counts_and_shows_postfix(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tqdm")
    bar = ProgressBar(total=4, desc="epoch 1", initial=1)
    out = io.StringIO()
    bar._bar.fp = out  # tqdm writes to stderr by default; redirect to inspect it
    bar.update(1)
    bar.update(2, postfix={"loss": 2.5})
    bar.set_description("epoch 1/3")
    assert bar._bar.n == 4
    assert "loss=2.5" in bar._bar.postfix
    bar.close()
    bar.close()
    assert not bar.enabled


def test_progress_bar_without_tqdm_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    bar = ProgressBar(total=3, desc="train")
    assert not bar.enabled
    bar.update(1, postfix={"loss": 1.0})
    bar.close()


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_import_does_not_pull_in_wandb_or_tqdm() -> None:
    before = _modules_after("import trainforge")
    after = _modules_after("import trainforge.logging, trainforge.logging.wandb_logger")
    # wandb is never imported by importing the package (even the wandb_logger module defers it).
    assert not any(m == "wandb" or m.startswith("wandb.") for m in after)
    # tqdm is imported only when a ProgressBar is shown; trainforge.logging adds no tqdm modules.
    added = after - before
    assert not any(m == "tqdm" or m.startswith("tqdm.") for m in added)


def test_subpackage_name_does_not_shadow_stdlib_logging() -> None:
    mods = _modules_after(
        "import trainforge.logging, logging\n"
        "assert logging.getLogger is not None and logging.__name__ == 'logging'\n"
        "assert 'site-packages' not in logging.__file__ and 'trainforge' not in logging.__file__"
    )
    assert "trainforge.logging" in mods
