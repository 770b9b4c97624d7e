"""The sweep file: validated up front, every problem in one clear error; W&B files mostly work as they are."""

from __future__ import annotations

import math

import pytest

from tests.sweeps.sweep_helpers import sweep_dict, write_sweep
from trainforge.errors import ConfigError
from trainforge.sweeps import load_sweep, parse_sweep
from trainforge.sweeps.space import apply_params, grid, grid_point, random_params, trial_params


def problems_of(**changes) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_sweep(sweep_dict(**changes))
    return info.value.problems


def test_unknown_method_is_a_clear_error_with_a_suggestion():
    (problem,) = problems_of(method="gird")
    assert "method: unknown method, got 'gird'" in problem and "did you mean 'grid'" in problem


def test_empty_parameter_list_is_an_error():
    (problem,) = problems_of(parameters={})
    assert problem.startswith("parameters: the parameter list is empty or missing, got {}")


def test_distribution_with_min_above_max_is_an_error():
    (problem,) = problems_of(method="random", parameters={"learning_rate": {"min": 0.1, "max": 0.01,
                                                                            "distribution": "log_uniform_values"}})
    assert problem == "parameters.learning_rate: min > max (min=0.1, max=0.01). Fix: swap them, so that min <= max."


def test_a_metric_never_logged_is_an_error_naming_the_logged_ones():
    (problem,) = problems_of(metric={"name": "val/f1", "goal": "maximize"})
    assert "metric.name: 'val/f1' is never logged" in problem and "'val/loss'" in problem


def test_every_problem_is_reported_at_once_and_the_cli_exits_2_before_any_trial(tmp_path):
    path = write_sweep(tmp_path / "bad.yaml", method="annealing", parallel=0,
                       parameters={"lerning_rate": {"values": [1e-3]}, "batch_size": {"values": [8, 0]},
                                   "weight_decay": {"min": 0.0, "max": 0.1, "distribution": "normal"}})
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    text = str(info.value)
    assert "5 problems" in text, text
    assert "method: unknown method, got 'annealing'" in text
    assert "parallel: must be a positive integer, got 0" in text
    assert "parameters.lerning_rate: not a TrainingConfig field. Fix: did you mean 'learning_rate'?" in text
    assert "parameters.weight_decay.distribution: unsupported distribution, got 'normal'" in text
    from trainforge.cli.main import main

    assert main(["sweep", str(path)]) == 2
    assert not (tmp_path / "sweeps").exists()  # nothing ran, nothing was written


def test_bad_values_are_checked_against_training_config():
    (problem,) = problems_of(parameters={"batch_size": {"values": [8, 0]}})
    assert problem.startswith("parameters.batch_size=0: ") and "batch_size" in problem


def test_grid_needs_lists_and_ranges_need_numbers():
    problems = problems_of(parameters={"learning_rate": {"min": 1e-4, "max": 1e-2},
                                       "weight_decay": {"min": "a", "max": 1}})
    assert any("method grid needs a list of values" in p for p in problems)
    assert any("parameters.weight_decay: min and max must both be numbers" in p for p in problems)


def test_a_wandb_sweep_file_mostly_works(tmp_path):
    path = tmp_path / "wandb.yaml"
    path.write_text(
        "program: trainforge\n"
        "command: [trainforge, train, --preset=tiny, '${args}']\n"
        "project: p\nentity: e\ndescription: from W&B\n"
        "early_terminate: {type: hyperband, min_iter: 1}\n"
        "method: bayes\n"
        "run_cap: 5\n"
        "metric: {name: val/loss, goal: minimize}\n"
        "parameters:\n"
        "  learning_rate: {min: -9.21, max: -4.61, distribution: log_uniform}\n"
        "  batch_size: {distribution: int_uniform, min: 8, max: 32}\n"
        "  model:\n"
        "    parameters:\n"
        "      n_layer: {values: [1, 2]}\n"
    )
    spec = load_sweep(path)
    assert spec.method == "optuna" and spec.n_trials == 5 and spec.name == "wandb"
    lr = spec.parameters["learning_rate"]
    assert lr.distribution == "log_uniform" and lr.low == pytest.approx(math.exp(-9.21))
    assert spec.parameters["batch_size"].distribution == "int_uniform"
    assert spec.parameters["model.n_layer"].values == [1, 2]


def test_grid_and_random_spaces_are_deterministic():
    spec = parse_sweep(sweep_dict())
    expected = [{"learning_rate": 1e-3, "warmup_ratio": 0.0}, {"learning_rate": 1e-3, "warmup_ratio": 0.1},
                {"learning_rate": 3e-3, "warmup_ratio": 0.0}, {"learning_rate": 3e-3, "warmup_ratio": 0.1}]
    assert list(grid(spec)) == expected == [grid_point(spec, i) for i in range(4)]  # walked = indexed
    rnd = parse_sweep(sweep_dict(method="random", n_trials=3, parameters={
        "learning_rate": {"min": 1e-4, "max": 1e-2, "distribution": "log-uniform"},
        "epochs": {"min": 1, "max": 3}, "model.n_layer": {"values": [1, 2]}}))
    draws = list(trial_params(rnd))
    assert draws == list(trial_params(rnd)) and len(draws) == 3 and draws[0] != draws[1]
    assert draws[0] == random_params(rnd, 0)
    for d in draws:
        assert 1e-4 <= d["learning_rate"] <= 1e-2 and d["epochs"] in (1, 2, 3) and d["model.n_layer"] in (1, 2)
    run = apply_params(rnd.base_run, draws[0])
    assert run["model"]["n_layer"] == draws[0]["model.n_layer"]
    assert run["training"]["learning_rate"] == draws[0]["learning_rate"]


def test_trials_write_no_per_run_plots_unless_asked(tmp_path):
    from trainforge.config import TrainingConfig
    from trainforge.sweeps.trial import trial_run_spec

    spec = parse_sweep(sweep_dict())
    assert spec.trial_plots is False
    run = trial_run_spec(spec, 0, {"learning_rate": 1e-3, "warmup_ratio": 0.0}, tmp_path)
    assert run["training"]["plots"] is False and TrainingConfig.from_dict(run["training"]).plots is False
    on = parse_sweep(sweep_dict(trial_plots=True))
    assert trial_run_spec(on, 0, {"learning_rate": 1e-3, "warmup_ratio": 0.0}, tmp_path)["training"]["plots"]
    assert problems_of(trial_plots="yes") == ["trial_plots: must be true or false, got 'yes'."]


def test_a_huge_n_trials_validates_at_once_and_its_trials_are_made_lazily():
    import itertools

    spec = parse_sweep(sweep_dict(method="random", n_trials=10**9))
    first = list(itertools.islice(trial_params(spec), 3))
    assert spec.n_trials == 10**9 and first == [random_params(spec, i) for i in range(3)]
    from trainforge.sweeps.space import params_of_trial

    assert params_of_trial(spec, 10**9 - 1) == random_params(spec, 10**9 - 1)  # any trial, from its index alone
