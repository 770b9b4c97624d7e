"""Optuna (TPE + median pruning in the sweep's SQLite), Ray Tune, the W&B argument form, and the jobs CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.sweeps.sweep_helpers import trainforge, trial_rows, write_sweep


def _optuna_sweep(parallel: int):
    write_sweep(Path("sweep.yaml"), method="optuna", n_trials=6, seed=1, parallel=parallel,
                base_config={"preset": "tiny", "epochs": 4, "batch_size": 16, "max_train_samples": 32,
                             "max_val_samples": 16, "progress_bar": False, "warmup_ratio": 0.0},
                parameters={"learning_rate": {"min": 1e-6, "max": 3e-2, "distribution": "log_uniform_values"}},
                pruner={"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0})
    proc = trainforge("sweep", "sweep.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, Path("sweeps/t/sweep.db")


def test_optuna_sweep_shares_one_study_between_2_workers(tmp_path):
    optuna = pytest.importorskip("optuna")
    _, db = _optuna_sweep(parallel=2)
    rows = trial_rows(db)
    assert len(rows) == 6 and all(r["status"] == "done" for r in rows)
    # Both workers share the study; on a loaded machine one may start late and claim fewer (even none) trials.
    assert 1 <= len({r["worker"] for r in rows}) <= 2
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{db.resolve()}")  # Optuna's own tables
    assert len(study.trials) == 6 and {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}


def test_optuna_sweep_prunes_poor_trials(tmp_path):
    # One worker: which trials have finished when another reports is then fixed, so the pruning is deterministic
    # (with two workers it depends on timing).
    optuna = pytest.importorskip("optuna")
    proc, db = _optuna_sweep(parallel=1)
    rows = trial_rows(db)
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{db.resolve()}")
    states = [t.state.name for t in study.trials]
    assert len(states) == 6 and states.count("PRUNED") >= 1, states
    pruned = [json.loads(r["result"]) for r in rows if json.loads(r["result"])["pruned"]]
    assert pruned and all(len(p["history"]) < 4 for p in pruned)  # stopped before the last epoch
    assert "pruned" in proc.stdout


@pytest.mark.slow  # 20-35 s on 2 shared cores (Ray start-up + 2 worker processes): run with -m slow
def test_ray_tune_sweep_of_2_trials_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("ray.tune")
    write_sweep(Path("sweep.yaml"), method="random", n_trials=2, backend="ray", scheduler="asha",
                parameters={"learning_rate": {"values": [1e-3, 3e-3]}})
    proc = trainforge("sweep", "sweep.yaml", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = trial_rows(Path("sweeps/t/sweep.db"))
    assert len(rows) == 2 and all(r["status"] == "done" for r in rows)
    for r in rows:
        result = json.loads(r["result"])
        assert result["value"] is not None and len(result["history"]) >= 1
        assert Path(result["run_dir"], "config.yaml").is_file()  # each trial has its own run directory
        assert result["pruned"] or Path(result["run_dir"], "metrics.csv").is_file()  # ASHA may stop one early
    assert Path("sweeps/t/results.csv").is_file() and Path("sweeps/t/best_config.yaml").is_file()
    # Ray's trials take their numbers from the sweep's store, like local and submitted trials: a later
    # `jobs submit sweep-trial` can never get one of theirs.
    from trainforge.sweeps.store import SweepStore

    with sqlite3.connect("sweeps/t/sweep.db") as db:
        taken = dict(db.execute("SELECT number, origin FROM trial_numbers").fetchall())
    assert sorted(taken) == [0, 1] and set(taken.values()) == {"ray"}
    assert SweepStore("sweeps/t").allocate_number("submitted") == 2


def test_cli_takes_overrides_in_the_form_the_wandb_agent_passes(tmp_path):
    # wandb agent runs `command: [trainforge, train, ${args}]` with ${args} = --key=value per parameter.
    params = {"learning_rate": 0.002, "model.n_layer": 1, "epochs": 1, "max_steps": 2, "data.max_bytes": 12000,
              "progress_bar": False, "run_name": "wb", "warmup_ratio": 0.1}
    args = [f"--{k}={v}" for k, v in params.items()]
    proc = trainforge("train", *args)
    assert proc.returncode == 0, proc.stderr
    saved = Path("runs/wb/config.yaml").read_text()
    assert "learning_rate: 0.002" in saved and "warmup_ratio: 0.1" in saved
    assert '"n_layer": 1' in Path("runs/wb/model_config.json").read_text()


def test_jobs_cli_submit_list_worker_cancel(tmp_path, capsys):
    from trainforge.cli.main import main

    def tf(*args: str) -> str:
        assert main(["jobs", "--queue", "q.db", *args]) == 0
        return capsys.readouterr().out

    fast = ["epochs=1", "max_steps=2", "data.max_bytes=12000", "progress_bar=false", "model.n_layer=1"]
    tf("submit", "--priority", "1", "train", "--preset", "tiny", *fast, "run_name=low")
    tf("submit", "--priority", "5", "train", "--preset", "tiny", *fast, "run_name=high")
    tf("submit", "--max-attempts", "2", "export", "missing.pt")
    tf("submit", "train", *fast)
    assert "job 4: cancelled" in tf("cancel", "4")
    assert "worker ran 3 job(s)" in tf("worker", "--until-empty")
    listing = tf("list")
    assert "cancelled" in listing and "failed" in listing and "done" in listing
    with sqlite3.connect("q.db") as db:
        rows = {r[0]: r[1:] for r in db.execute("SELECT id, status, started_at, attempts FROM jobs")}
    assert rows[1][0] == "done" and rows[2][0] == "done" and rows[2][1] < rows[1][1]  # priority 5 first
    assert rows[3][0] == "failed" and rows[3][2] == 1  # export of a missing file: not retried
    assert Path("runs/high/metrics.csv").is_file()


def test_jobs_submit_sweep_trial_runs_one_trial_of_a_sweep_file(tmp_path):
    write_sweep(Path("sweep.yaml"))
    assert trainforge("jobs", "--queue", "q.db", "submit", "sweep-trial", "--sweep", "sweep.yaml", "--params",
                      "learning_rate=0.003").returncode == 0
    from trainforge.jobs import run_worker

    assert run_worker("q.db", log=lambda _: None) == 1
    (row,) = trial_rows(Path("q.db"))
    result = json.loads(row["result"])
    assert row["status"] == "done" and result["params"]["learning_rate"] == 0.003 and result["value"] > 0
