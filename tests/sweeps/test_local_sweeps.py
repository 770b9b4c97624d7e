"""Local sweeps through the real commands: parallel workers, crashes, resume, failures, reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from tests.sweeps.sweep_helpers import ROOT, trainforge, trial_rows, write_sweep
from trainforge.config import TrainingConfig


def test_quick_reference_line_runs_a_grid_with_2_workers_each_trial_once_then_resumes(tmp_path):
    write_sweep(Path("sweep.yaml"))
    cmd = [sys.executable, str(ROOT / "cli" / "run_training.py"), "--sweep-config", "sweep.yaml"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = Path("sweeps/t")
    rows = trial_rows(out / "sweep.db")
    assert len(rows) == 4 and all(r["status"] == "done" and r["attempts"] == 1 for r in rows)
    assert len({r["worker"] for r in rows}) == 2  # two worker processes shared the trials
    table = pd.read_csv(out / "results.csv")
    assert sorted(table["trial"]) == [0, 1, 2, 3] and set(table["status"]) == {"completed"}
    assert table["val/loss"].is_monotonic_increasing  # best first
    best = TrainingConfig.load(out / "best_config.yaml")
    assert best.learning_rate == table["learning_rate"][0] and best.output_dir is None
    assert (out / "metric_vs_params.png").stat().st_size > 1000
    for n in range(4):  # each trial wrote its own run directory, recorded in the experiment database
        assert (out / "trials" / f"trial-{n:04d}" / "metrics.csv").is_file()
        assert not (out / "trials" / f"trial-{n:04d}" / "plots").exists()  # trial_plots: false by default
    assert (out / "trials" / "trainforge_runs.db").is_file()
    assert "best: trial" in proc.stdout and "trials: 4 completed" in proc.stdout
    if sys.platform == "linux":  # the command runs one thread: its workers are forked, warm
        assert "up to 2 worker process(es), started by fork" in proc.stdout

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=240)  # the same command: resumes
    assert again.returncode == 0, again.stderr
    assert "resuming 't'" in again.stdout and "(4 finished)" in again.stdout
    assert trial_rows(out / "sweep.db") == rows  # nothing re-ran


def test_random_sweep_records_a_failing_trial_and_goes_on(tmp_path):
    write_sweep(Path("sweep.yaml"), method="random", n_trials=4, seed=3,
                parameters={"learning_rate": {"min": 1e-3, "max": 1e-2, "distribution": "log_uniform_values"},
                            "model.n_head": {"values": [2, 3]}})  # 3 heads do not divide d_model=32
    proc = trainforge("sweep", "sweep.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = trial_rows(Path("sweeps/t/sweep.db"))
    assert len(rows) == 4 and all(r["attempts"] == 1 for r in rows)
    table = pd.read_csv("sweeps/t/results.csv")
    failed = table[table["status"] == "failed"]
    assert set(failed["model.n_head"]) == {3} and len(failed) >= 1
    assert set(table[table["status"] == "completed"]["model.n_head"]) == {2}
    assert failed["error"].str.contains("n_head").all()
    assert "failed" in proc.stdout


def _wait_for(predicate, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def _running(db: Path):
    if not db.exists():
        return None
    try:
        rows = trial_rows(db)
    except Exception:
        return None
    running = [r for r in rows if r["status"] == "running" and r["progress"]]  # past model building
    return running[0] if running else None


def test_a_worker_killed_mid_trial_has_its_trial_rerun_and_the_sweep_completes(tmp_path):
    write_sweep(Path("sweep.yaml"), parameters={"learning_rate": {"values": [1e-3, 2e-3, 3e-3]}},
                base_config={"preset": "tiny", "epochs": 3, "batch_size": 16, "max_train_samples": 64,
                             "max_val_samples": 16, "progress_bar": False})
    sweep = subprocess.Popen([sys.executable, "-m", "trainforge", "sweep", "sweep.yaml"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    db = Path("sweeps/t/sweep.db")
    victim = _wait_for(lambda: _running(db))
    os.kill(int(victim["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    out, _ = sweep.communicate(timeout=240)
    assert sweep.returncode == 0, out
    rows = {r["id"]: r for r in trial_rows(db)}
    assert all(r["status"] == "done" for r in rows.values()), out
    assert rows[victim["id"]]["attempts"] == 2 and rows[victim["id"]]["worker"] != victim["worker"]
    assert "died (exit code -9)" in out


def test_an_interrupted_sweep_resumes_with_the_same_command_and_keeps_finished_trials(tmp_path):
    write_sweep(Path("sweep.yaml"), parallel=1, parameters={"learning_rate": {"values": [1e-3, 2e-3, 3e-3]}})
    db = Path("sweeps/t/sweep.db")
    sweep = subprocess.Popen([sys.executable, "-m", "trainforge", "sweep", "sweep.yaml"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for(lambda: db.exists() and any(r["status"] == "done" for r in trial_rows(db)))
    os.killpg(sweep.pid, signal.SIGKILL)  # the command and its worker, at whatever point they were
    sweep.wait()
    before = {r["id"]: r for r in trial_rows(db) if r["status"] == "done"}
    proc = trainforge("sweep", "sweep.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "resuming 't'" in proc.stdout
    after = {r["id"]: r for r in trial_rows(db)}
    assert all(r["status"] == "done" for r in after.values()) and len(after) == 3
    for job_id, row in before.items():  # finished trials were not run again
        assert after[job_id]["finished_at"] == row["finished_at"] and after[job_id]["attempts"] == 1


def test_workers_started_as_fresh_interpreters_run_each_trial_once(tmp_path):
    # $TRAINFORGE_SWEEP_WORKERS=exec: `python -m trainforge.jobs` per worker (the path where fork is unsafe).
    write_sweep(Path("sweep.yaml"))
    proc = subprocess.run([sys.executable, "-m", "trainforge", "sweep", "sweep.yaml"], capture_output=True,
                          text=True, timeout=240, env={**os.environ, "TRAINFORGE_SWEEP_WORKERS": "exec"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "started by exec" in proc.stdout
    rows = trial_rows(Path("sweeps/t/sweep.db"))
    assert len(rows) == 4 and all(r["status"] == "done" and r["attempts"] == 1 for r in rows)


def test_worker_start_method_forks_only_without_other_threads(monkeypatch):
    import threading

    from trainforge.sweeps.local import START_METHOD_ENV, start_method

    monkeypatch.delenv(START_METHOD_ENV, raising=False)
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert start_method() == ("fork" if sys.platform == "linux" else "exec")
    monkeypatch.setattr(threading, "active_count", lambda: 3)  # e.g. a notebook's or pytest-xdist's threads
    assert start_method() == "exec"
    monkeypatch.setenv(START_METHOD_ENV, "exec")
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert start_method() == "exec"
