"""The SQLite experiment database: what a real training writes, read back as rows, tables, CLI output and a plot."""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path

import pytest

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer
from trainforge.cli.main import main
from trainforge.tracking import RunDB, compare_runs, list_runs, load_run


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _train(lm_blocks, name: str, **overrides):
    model, cfg = tiny_gpt()
    config = quiet_config(run_name=name, output_dir=f"runs/{name}", **overrides)
    return Trainer(model, cfg, config, lm_task()).train(lm_blocks[:40], lm_blocks[40:])


def test_finished_runs_are_rows_with_config_epochs_results(lm_blocks, tmp_path: Path) -> None:
    r1 = _train(lm_blocks, "exp-a", checkpoint_dir="ck-a")
    _train(lm_blocks, "exp-b", learning_rate=3e-3)
    db_file = tmp_path / "runs" / "trainforge_runs.db"
    assert db_file.exists()

    conn = sqlite3.connect(db_file)
    conn.row_factory = sqlite3.Row
    rows = conn.execute("SELECT * FROM runs ORDER BY id").fetchall()
    assert [r["name"] for r in rows] == ["exp-a", "exp-b"]
    a = rows[0]
    assert a["status"] == "finished" and a["error"] is None
    assert a["run_dir"] == str((tmp_path / "runs" / "exp-a").resolve())
    assert a["task"] == "lm" and a["task_type"] == "language_modeling"
    assert json.loads(a["config"])["learning_rate"] == 1e-2
    assert json.loads(rows[1]["config"])["learning_rate"] == 3e-3
    assert a["epochs_completed"] == 2 and a["best_epoch"] == r1["best_epoch"]
    assert a["final_loss"] == pytest.approx(r1["final_loss"])
    assert json.loads(a["checkpoint_paths"]) == r1["checkpoint_paths"] and r1["checkpoint_paths"]
    assert a["best_checkpoint"] == r1["best_checkpoint"]
    assert a["started_at"] <= a["ended_at"] and a["wall_time_s"] >= a["training_time_s"] > 0
    telemetry = json.loads(a["telemetry"])
    assert telemetry["telemetry"]["peak_rss_mb"] > 0 and telemetry["memory_estimate"]["total_mb"] > 0
    epochs = conn.execute("SELECT epoch, step, metrics FROM epochs WHERE run_id = ? ORDER BY epoch",
                          (a["id"],)).fetchall()
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert json.loads(epochs[1]["metrics"])["val/loss"] == pytest.approx(r1["metrics_summary"]["val/loss"].iloc[-1])
    conn.close()

    table = list_runs("runs")
    assert list(table["name"]) == ["exp-a", "exp-b"] and set(table["status"]) == {"finished"}
    run = load_run("exp-a", "runs")
    assert list(run["metrics_summary"]["epoch"]) == [1, 2]
    cmp = compare_runs(["exp-a", "exp-b"], "runs", plot="cmp.png")
    assert list(cmp["name"]) == ["exp-a", "exp-b"]
    assert "config.learning_rate" in cmp.columns and "config.run_name" in cmp.columns
    assert "config.epochs" not in cmp.columns  # equal fields are left out
    assert "best val/loss" in cmp.columns
    assert png_size(Path("cmp.png")) == (1200, 450)


def test_cli_runs_list_show_compare(lm_blocks, capsys: pytest.CaptureFixture[str]) -> None:
    _train(lm_blocks, "cli-a")
    _train(lm_blocks, "cli-b", learning_rate=2e-3)
    capsys.readouterr()
    assert main(["runs", "--db", "runs", "list"]) == 0
    out = capsys.readouterr().out
    assert "cli-a" in out and "cli-b" in out and "finished" in out
    assert main(["runs", "--db", "runs/trainforge_runs.db", "show", "cli-a"]) == 0
    out = capsys.readouterr().out
    assert "status" in out and "finished" in out and "learning_rate = 0.01" in out and "val/loss" in out
    assert main(["runs", "--db", "runs", "compare", "cli-a", "2", "--plot", "c.png"]) == 0
    out = capsys.readouterr().out
    assert "config.learning_rate" in out and Path("c.png").exists()
    assert main(["runs", "--db", "runs", "show", "nope"]) == 1
    assert "no run 'nope'" in capsys.readouterr().err
    assert main(["runs", "--db", "elsewhere", "list"]) == 1


class _Boom:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def on_step_end(self, state) -> None:
        if state.global_step == 3:
            raise self.exc


@pytest.mark.parametrize(("exc", "status"), [(RuntimeError("boom"), "failed"), (KeyboardInterrupt(), "interrupted")])
def test_failed_and_interrupted_runs_keep_their_status(lm_blocks, exc, status) -> None:
    model, cfg = tiny_gpt()
    trainer = Trainer(model, cfg, quiet_config(run_name="bad", output_dir="runs/bad"), lm_task(), callbacks=[_Boom(exc)])
    with pytest.raises(type(exc)):
        trainer.train(lm_blocks[:40], lm_blocks[40:])
    run = RunDB("runs/trainforge_runs.db").run("bad")
    assert run["status"] == status
    assert run["error"].startswith(type(exc).__name__)
    assert run["global_step"] == 3 and run["epochs_completed"] == 0


def test_running_status_while_training(lm_blocks) -> None:
    seen = []

    class Peek:
        def on_step_end(self, state) -> None:
            if state.global_step == 1:
                seen.append(RunDB("runs/trainforge_runs.db").run("live")["status"])

    model, cfg = tiny_gpt()
    Trainer(model, cfg, quiet_config(run_name="live", output_dir="runs/live"), lm_task(), callbacks=[Peek()]).train(
        lm_blocks[:40])
    assert seen == ["running"]
    assert RunDB("runs/trainforge_runs.db").run("live")["status"] == "finished"


def test_resumed_run_is_the_same_row(lm_blocks) -> None:
    model, cfg = tiny_gpt()
    Trainer(model, cfg, quiet_config(run_name="res", output_dir="runs/res", epochs=1, checkpoint_dir="ck"),
            lm_task()).train(lm_blocks[:40])
    model, cfg = tiny_gpt()
    Trainer(model, cfg, quiet_config(run_name="res", output_dir="runs/res", epochs=2, checkpoint_dir="ck"),
            lm_task()).train(lm_blocks[:40], resume_from="auto")
    table = list_runs("runs")
    assert list(table["name"]) == ["res"]
    assert [e["epoch"] for e in load_run("res", "runs")["epochs"]] == [1, 2]


def test_track_runs_false_writes_no_database(lm_blocks) -> None:
    _train(lm_blocks, "untracked", track_runs=False)
    assert not Path("runs/trainforge_runs.db").exists()
    assert Path("runs/untracked/metrics.csv").exists()


def test_database_errors_warn_and_training_goes_on(lm_blocks, tmp_path: Path) -> None:
    Path("runs").mkdir()
    Path("runs/trainforge_runs.db").write_text("not a database")
    with pytest.warns(RuntimeWarning, match="Experiment database"):
        results = _train(lm_blocks, "x")
    assert results["epochs_completed"] == 2


def test_a_digit_named_run_is_looked_up_by_name_never_silently_by_id(lm_blocks, capsys) -> None:
    _train(lm_blocks, "alpha")  # id 1
    _train(lm_blocks, "beta", learning_rate=2e-3)  # id 2
    _train(lm_blocks, "1", learning_rate=3e-3)  # id 3, named "1": also run 1's id
    _train(lm_blocks, "7", learning_rate=4e-3)  # id 4, named "7": no run has id 7
    db = RunDB("runs/trainforge_runs.db")
    assert db.run("7")["id"] == 4 and db.run("7")["name"] == "7"  # a digit name is a name
    assert db.run("#1")["name"] == "alpha" and db.run(1)["name"] == "alpha"  # ids: explicit forms
    assert db.run("2")["name"] == "beta"  # digits that are no run's name: the one run they can mean
    with pytest.raises(KeyError) as info:
        db.run("1")  # run 3's name and run 1's id
    message = info.value.args[0]
    assert "run '1' is ambiguous" in message and "the name of run #3" in message
    assert "the id of run #1 named 'alpha'" in message and "Fix: write '#1' for the id" in message
    with pytest.raises(KeyError, match="no run with id #9"):
        db.run("#9")

    capsys.readouterr()
    assert main(["runs", "--db", "runs", "compare", "7", "alpha"]) == 0
    out = capsys.readouterr().out
    header, first, second = out.splitlines()[:3]
    assert first.split()[:2] == ["4", "7"] and second.split()[:2] == ["1", "alpha"]
    cmp = compare_runs(["#1", "runs/1", "7"], "runs")
    assert list(cmp["name"]) == ["alpha", "1", "7"] and list(cmp["id"]) == [1, 3, 4]
    assert main(["runs", "--db", "runs", "compare", "1", "alpha"]) == 1
    assert "run '1' is ambiguous" in capsys.readouterr().err
