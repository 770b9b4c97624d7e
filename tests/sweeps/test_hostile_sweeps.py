"""Sweeps under hostile or unlucky input: names that become paths, huge grids, searched epochs, metrics the task
never logs, W&B-only keys (program, early_terminate, ...)."""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from tests.sweeps.sweep_helpers import FAST_BASE, sweep_dict, trial_rows, write_sweep
from trainforge.errors import ConfigError
from trainforge.sweeps import load_sweep, parse_sweep, run_sweep


def problems_of(**changes) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_sweep(sweep_dict(**changes))
    return info.value.problems


def test_a_sweep_name_with_a_slash_is_refused_at_validation(tmp_path, capsys):
    path = write_sweep(Path("sweep.yaml"), name="team/lr")
    from trainforge.cli.main import main

    assert main(["sweep", str(path), "--validate"]) == 2
    err = capsys.readouterr().err
    assert "name: it names the directory sweeps/<name>" in err and "got 'team/lr'" in err
    for bad in ("..", "", "my sweep", "a\\b", "x" * 90, "lr=1"):
        if bad:
            assert any(p.startswith("name: it names the directory sweeps/<name>") for p in problems_of(name=bad)), bad
    assert not Path("sweeps").exists()


def test_a_10_to_the_12_point_grid_with_n_trials_3_validates_and_runs_3_trials(tmp_path, capsys):
    # Six parameters of 100 values: 10^12 points, walked lazily. `epochs` is searched (last: it varies fastest)
    # while max_steps stops every trial after its first epoch, so results.csv must keep both numbers apart.
    values = {"learning_rate": [1e-3 + i * 1e-5 for i in range(100)], "warmup_ratio": [i / 1000 for i in range(100)],
              "weight_decay": [i / 1000 for i in range(100)], "seed": list(range(100)),
              "max_grad_norm": [0.5 + i / 100 for i in range(100)], "epochs": list(range(2, 102))}
    path = write_sweep(Path("sweep.yaml"), n_trials=3, parallel=1,
                       base_config={**FAST_BASE, "max_steps": 3},  # 48 samples / 16 = 3 steps: one epoch
                       parameters={k: {"values": v} for k, v in values.items()})
    spec = load_sweep(path)
    assert spec.grid_size == 10**12 and spec.n_trials == 3
    from trainforge.cli.main import main

    assert main(["sweep", str(path), "--validate"]) == 0
    out = capsys.readouterr().out
    assert "method grid, 3 trials" in out and "trial 2: {" in out and "trial 3" not in out
    result = run_sweep(spec, log=lambda _: None)
    rows = trial_rows(Path("sweeps/t/sweep.db"))
    assert len(rows) == 3 and all(r["status"] == "done" for r in rows)  # only the 3 trials were ever queued
    table = pd.read_csv("sweeps/t/results.csv").sort_values("trial")
    assert list(table["epochs"]) == [2, 3, 4]  # the sampled values, not overwritten
    assert list(table["epochs_completed"]) == [1, 1, 1]  # what the trials did, in its own column
    assert result.counts() == {"completed": 3}


def test_the_metric_is_checked_against_what_the_task_logs(tmp_path):
    Path("train.csv").write_text("text,label\nab,0\ncd,1\n")
    classification = {"train": "train.csv", "val": "train.csv"}
    (problem,) = problems_of(metric={"name": "val/perplexity", "goal": "minimize"}, data=classification)
    assert problem.startswith("metric.name: 'val/perplexity' is never logged by these runs")
    assert "'val/accuracy'" in problem and "'val/loss'" in problem
    assert parse_sweep(sweep_dict(metric={"name": "val/accuracy", "goal": "maximize"}, data=classification))
    assert parse_sweep(sweep_dict(metric={"name": "val/perplexity", "goal": "minimize"}))  # language modelling
    import trainforge.jobs.training as training

    assert not hasattr(training, "VAL_METRICS")  # no hard-coded list left


TRAIN_PY = '''
"""A user's training script, as a W&B agent runs it: --key=value arguments in, metrics out as JSON lines."""
import argparse, json, os
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--model.layers", dest="layers", type=int, default=1)
args = parser.parse_args()
for epoch in range(1, 6):
    loss = abs(args.lr - 0.01) * 100 + 1.0 / epoch + args.layers * 0.01
    print(f"epoch {epoch} done")  # ordinary output is fine
    print(json.dumps({"epoch": epoch, "val/loss": loss}), flush=True)
with open(os.path.join(os.environ["TRAINFORGE_TRIAL_DIR"], "args.json"), "w") as f:
    json.dump({"lr": args.lr, "layers": args.layers}, f)
'''

WANDB_SWEEP = """
program: train.py
method: bayes
run_cap: 6
parallel: 1
seed: 0
project: my-project
description: from W&B
metric: {name: val/loss, goal: minimize}
early_terminate: {type: hyperband, min_iter: 1, eta: 2}
parameters:
  lr: {min: 0.0001, max: 0.1, distribution: log_uniform_values}
  model:
    parameters:
      layers: {values: [1, 2]}
"""


def test_a_wandb_sweep_file_with_program_and_early_terminate_runs_the_users_script(tmp_path):
    optuna = pytest.importorskip("optuna")
    Path("train.py").write_text(TRAIN_PY)
    Path("wb.yaml").write_text(WANDB_SWEEP)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every key is honoured: no warning
        spec = load_sweep("wb.yaml")
    assert spec.command == ["${env}", "${interpreter}", str(Path("train.py").resolve()), "${args}"]
    assert spec.pruner == {"type": "hyperband", "min_resource": 1, "max_resource": "auto", "reduction_factor": 2}
    lines: list[str] = []
    result = run_sweep(spec, log=lines.append)
    assert "[sweep] from W&B" in lines and any("each trial runs:" in line for line in lines)
    study = optuna.load_study(study_name="wb", storage=f"sqlite:///{Path('sweeps/wb/sweep.db').resolve()}")
    states = [t.state.name for t in study.trials]
    assert len(states) == 6 and "PRUNED" in states and set(states) <= {"COMPLETE", "PRUNED"}, states
    table = pd.read_csv("sweeps/wb/results.csv")
    assert set(table["status"]) == {"completed", "pruned"} and len(table) == 6
    for row in table.to_dict(orient="records"):
        trial = Path(row["run_dir"])
        log = (trial / "train.log").read_text()
        (given,) = re.findall(r"--lr=([0-9.e+-]+) --model\.layers=([12])\n", log)  # the agent's argument form
        assert float(given[0]) == pytest.approx(row["lr"]) and int(given[1]) == row["model.layers"]
        assert "epoch 1 done" in log  # the script's own output is kept
        if row["status"] == "completed":  # the script ran to its end, with the parameters it was given
            written = json.loads((trial / "args.json").read_text())
            assert written == {"lr": pytest.approx(row["lr"]), "layers": row["model.layers"]}
            assert row["epochs_completed"] == 5
        else:
            assert row["epochs_completed"] < 5  # stopped by the Hyperband pruner
    best = result.best
    assert best is not None and best.value == pytest.approx(table["val/loss"].min())
    saved = Path("sweeps/wb/best_params.yaml").read_text()
    assert "command:" in saved and "train.py" in saved


def test_wandb_keys_are_honoured_or_named_in_one_warning(tmp_path):
    Path("train.py").write_text(TRAIN_PY)
    with pytest.warns(UserWarning) as caught:
        spec = parse_sweep(sweep_dict(metric={"name": "val/loss", "goal": "minimize", "target": 1.0},
                                      project="p", entity="e", early_terminate={"type": "hyperband", "min_iter": 1}))
    (warning,) = [w for w in caught if "W&B keys" in str(w.message)]
    message = str(warning.message)
    assert "metric.target" in message and "early_terminate (method grid on the local backend has no pruner" in message
    assert spec.base_run["training"]["wandb_project"] == "p" and spec.base_run["training"]["wandb_entity"] == "e"
    ray = parse_sweep(sweep_dict(backend="ray", method="random", n_trials=2,
                                 early_terminate={"type": "hyperband", "min_iter": 2, "max_iter": 8, "eta": 3}))
    assert ray.scheduler == "asha" and ray.asha == {"grace_period": 2, "reduction_factor": 3, "max_t": 8}
    # A trainforge command is the built-in trial with the command's own arguments.
    data = sweep_dict(command=["trainforge", "train", "--preset=fast", "--epochs=1", "${args}"])
    del data["base_config"]
    builtin = parse_sweep(data)
    assert builtin.command is None and builtin.base_run["preset"] == "fast"
    assert builtin.base_run["training"]["epochs"] == 1
    problems = problems_of(program="missing.py")
    assert problems == ["program: 'missing.py' not found (looked next to the sweep file and in the current "
                        "directory). Fix: give the path of the training script, relative to the sweep file."]
    assert problems_of(command=["${interpreter}", "${program}", "${argz}"])[0].startswith(
        "command: unknown macros ['${argz}']")
    assert problems_of(command=["${interpreter}", "${program}", "${args}"])[0].startswith(
        "command: uses ${program} but the sweep file has no program")
    assert problems_of(early_terminate={"type": "envelope"})[0].startswith(
        "early_terminate: only W&B's {type: hyperband, min_iter, max_iter, eta} is supported")


def test_a_script_that_fails_or_never_reports_the_metric_fails_its_trial_with_the_fix(tmp_path):
    Path("bad.py").write_text("import sys\nprint('working')\nsys.exit(3)\n")
    Path("quiet.py").write_text("print('no metrics here')\n")
    for script, expected in (("bad.py", "exited with code 3; its last output lines:\nworking"),
                             ("quiet.py", "print one JSON object per epoch to stdout")):
        write_sweep(Path("s.yaml"), name=script[:-3], program=script, parallel=1,
                    parameters={"lr": {"values": [0.1]}})
        result = run_sweep(load_sweep("s.yaml"), log=lambda _: None)
        (trial,) = result.trials
        assert trial.status == "failed" and expected in (trial.error or ""), trial.error
    assert sys.executable  # the scripts ran under this interpreter (${interpreter})


def test_early_terminate_on_ray_is_asha_with_the_files_settings():
    pytest.importorskip("ray.tune")
    from trainforge.sweeps.ray_backend import _tune_config

    spec = parse_sweep(sweep_dict(backend="ray", method="random", n_trials=4,
                                  early_terminate={"type": "hyperband", "min_iter": 2, "max_iter": 8, "eta": 3}))
    scheduler = _tune_config(spec).scheduler
    assert type(scheduler).__name__ == "AsyncHyperBandScheduler"  # what ASHAScheduler is
    assert scheduler._max_t == 8 and scheduler._reduction_factor == 3.0
    assert problems_of(early_terminate={"type": "hyperband", "min_iter": 5, "max_iter": 2}) == [
        "early_terminate: min_iter (5) is above max_iter (2). Fix: min_iter <= max_iter (both in epochs)."]
