"""Command-line arguments: every override form the W&B agent may pass reaches the config, and an argument no
subcommand knows is an error (exit code 2, argparse's usage message) instead of being dropped."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import pytest

from trainforge.cli.main import main, split_train_args

ROOT = Path(__file__).resolve().parents[2]


def test_split_train_args_keeps_overrides_in_order_and_options_exact():
    words = ["--preset", "tiny", "--learning_rate", "0.002", "--epochs=1", "model.n_layer=2", "--config=r.yaml",
             "--nproc", "2", "--pre", "1", "--weight_decay", "-0.5"]
    options, overrides = split_train_args(words)
    assert options == ["--preset", "tiny", "--config=r.yaml", "--nproc", "2"]
    # "--pre" is no abbreviation of --preset here: it stays an override (and parse_overrides judges it)
    assert overrides == ["--learning_rate", "0.002", "--epochs=1", "model.n_layer=2", "--pre", "1",
                         "--weight_decay", "-0.5"]


def test_train_takes_the_wandb_agent_space_separated_form(tmp_path, capsys):
    # wandb agent with `${args}` passes --key=value; other launchers (and people) pass --key value. Both, mixed,
    # with dotted model/data keys.
    args = ["--learning_rate", "0.002", "--model.n_layer", "1", "--epochs=1", "--max_steps", "2",
            "--data.max_bytes", "12000", "--progress_bar", "false", "--run_name", "wb", "--warmup_ratio", "0.1",
            "--seed", "3"]
    assert main(["train", *args]) == 0
    saved = Path("runs/wb/config.yaml").read_text()
    assert "learning_rate: 0.002" in saved and "warmup_ratio: 0.1" in saved and "max_steps: 2" in saved
    assert "seed: 3" in saved
    assert '"n_layer": 1' in Path("runs/wb/model_config.json").read_text()
    assert "run directory: runs/wb" in capsys.readouterr().out


def test_train_reports_a_flag_without_value_as_a_clear_error(capsys):
    assert main(["train", "--learning_rate"]) == 2
    err = capsys.readouterr().err
    assert "'--learning_rate': has no value" in err and "--key value" in err


@pytest.mark.parametrize("argv, unknown", [
    (["sweep", "sweep.yaml", "--paralel", "2"], "--paralel 2"),
    (["sweep", "sweep.yaml", "extra.yaml"], "extra.yaml"),
    (["jobs", "--queue", "q.db", "list", "--bogus"], "--bogus"),
    (["jobs", "--queue", "q.db", "worker", "--until-empty", "--forever"], "--forever"),
    (["jobs", "--queue", "q.db", "cancel", "1", "--force"], "--force"),
    (["runs", "list", "--bogus"], "--bogus"),
    (["presets", "--all"], "--all"),
])
def test_an_unknown_argument_is_an_error_not_dropped(argv, unknown, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert f"unrecognized arguments: {unknown}" in capsys.readouterr().err
    assert not Path("q.db").exists() and not Path("sweeps").exists()  # nothing ran


def test_quick_reference_sweep_line_rejects_an_unknown_argument(capsys):
    spec = importlib.util.spec_from_file_location("run_training", ROOT / "cli" / "run_training.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the __main__ block does not run
    forwarded = module._forward(["--sweep-config", "sweep.yaml", "--parallel", "2", "--bogus"])
    assert forwarded == ["sweep", "sweep.yaml", "--parallel", "2", "--bogus"]
    with pytest.raises(SystemExit) as exc:
        main(forwarded)
    assert exc.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


def _jobs(*args: str) -> int:
    return main(["jobs", "--queue", "q.db", *args])


def _queued() -> int:
    if not Path("q.db").exists():
        return 0
    with sqlite3.connect("q.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])


def test_jobs_submit_checks_its_arguments_before_queueing(capsys):
    with pytest.raises(SystemExit) as exc:  # --nproc is for `trainforge train`, not for queue jobs
        _jobs("submit", "train", "--nproc", "2")
    assert exc.value.code == 2 and "unrecognized arguments: --nproc 2" in capsys.readouterr().err
    assert _jobs("submit", "train", "lerning_rate=0.1") == 2  # a misspelt field fails now, not in the worker
    assert "did you mean 'learning_rate'" in capsys.readouterr().err
    assert _jobs("submit", "train", "--config", "missing.yaml") == 2
    assert "file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        _jobs("submit", "export", "ck.pt", "--bogus")
    assert exc.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _jobs("submit", "sweep-trial", "--sweep", "s.yaml", "--bogus")
    assert _queued() == 0


def test_jobs_submit_train_keeps_space_separated_overrides_in_order(capsys):
    assert _jobs("submit", "train", "--preset", "tiny", "--learning_rate", "0.002", "--epochs", "1") == 0
    from trainforge.jobs import JobQueue

    (job,) = JobQueue("q.db").list()
    assert job.payload["preset"] == "tiny"
    assert job.payload["overrides"] == ["--learning_rate", "0.002", "--epochs", "1"]


def test_the_same_run_spec_trains_the_same_model_whatever_the_rng_state_before():
    # The model is built before Trainer.train seeds; train_spec seeds first, so a sweep's first trial in a fresh
    # worker process and its re-run elsewhere start from the same weights (the optuna pruning test relies on it).
    import torch

    from trainforge.cli.main import load_run_spec
    from trainforge.runspec import train_spec

    fast = ["epochs=1", "max_steps=2", "data.max_bytes=12000", "progress_bar=false", "model.n_layer=1",
            "track_runs=false", "plots=false"]
    losses = []
    for n, state in enumerate((1, 12345)):
        torch.manual_seed(state)
        spec = load_run_spec(None, "tiny", [*fast, f"run_name=r{n}"])
        losses.append(train_spec(spec)["metrics_summary"]["val/loss"].tolist())
    assert losses[0] == losses[1]
