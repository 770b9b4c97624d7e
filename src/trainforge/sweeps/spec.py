"""The sweep file: parsed and validated as a whole before any trial runs.

Schema (close to W&B's sweep configuration, so an existing W&B file mostly works)::

    name: lr-sweep                  # default: the file name; results go to sweeps/<name> (or output_dir:);
                                    # one path component (letters, digits, - _ .), checked by --validate
    method: grid                    # grid | random | optuna  (W&B's "bayes" runs as optuna)
    metric: {name: val/loss, goal: minimize}     # goal: minimize | maximize
    parameters:
      learning_rate: {values: [1.0e-3, 3.0e-3]}  # a list (grid and random)
      batch_size: {value: 16}                    # a constant
      weight_decay: {min: 0.0, max: 0.1}         # uniform (floats) / int_uniform (ints)
      warmup_ratio: {min: 0.0, max: 0.2, distribution: uniform}
      lr: {min: 1.0e-4, max: 1.0e-2, distribution: log_uniform_values}   # or log-uniform
      model.n_layer: {values: [1, 2]}            # dotted: model / data / task keys
    n_trials: 8                     # random/optuna (default 10); caps a grid. W&B's run_cap is the same.
                                    # Trials are made one at a time: any grid size and n_trials are fine.
    parallel: 2                     # worker processes (local) or concurrent trials (ray); default: one per
                                    # visible GPU (each local worker sees its own GPU), else 1
    backend: local                  # local | ray
    base_config: tiny               # a training preset, or a TrainingConfig / run file (.yaml/.json)
    model: {preset: tiny}           # or "my_models.py:build" / "pkg.mod:build"
    data: {max_bytes: 20000}        # or {train: path, ...} or "my_data.py:load" returning (train, val)
    seed: 0                         # sampling seed (random, optuna)
    pruner: {type: median, n_startup_trials: 5, n_warmup_steps: 0}   # optuna; type none disables; or
                                    # {type: hyperband, min_resource: 1, max_resource: auto, reduction_factor: 3}
    scheduler: asha                 # ray only: asha | fifo
    ray: {address: null, gpus_per_trial: 1}   # ray only: null starts a local instance; "auto" or
                                    # "ray://host:10001"; gpus_per_trial (default 1 with GPUs, may be 0.5)
    trial_plots: false              # per-trial plots/*.png (off: the sweep writes its own plot at the end)

Distributions: ``uniform``, ``log_uniform_values`` (alias ``log-uniform``, ``loguniform``), ``int_uniform``
(alias ``int``), ``categorical`` (with ``values``), ``constant`` (with ``value``), and W&B's ``log_uniform`` whose
min/max are natural-log exponents. W&B's ``program``, ``command``, ``early_terminate``, ``project``, ``entity``
and ``description`` are honoured (see :mod:`trainforge.sweeps.wandb_keys`: ``program: train.py`` runs that
script as each trial); any W&B key that is not is named in one warning at start-up.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainforge.config._suggest import did_you_mean, quote_list
from trainforge.errors import ConfigError, bounded_repr
from trainforge.safe_paths import NAME_RULE, name_problem

METHODS = ("grid", "random", "optuna")
METHOD_ALIASES = {"bayes": "optuna", "tpe": "optuna"}
GOALS = ("minimize", "maximize")
BACKENDS = ("local", "ray")
DISTRIBUTIONS = {
    "uniform": "uniform",
    "log_uniform_values": "log_uniform",
    "log-uniform": "log_uniform",
    "loguniform": "log_uniform",
    "int_uniform": "int_uniform",
    "int": "int_uniform",
    "categorical": "categorical",
    "constant": "constant",
    "log_uniform": "log_uniform_exponent",  # W&B: min/max are exponents of e
}
KEYS = ("name", "method", "metric", "parameters", "n_trials", "run_cap", "parallel", "backend", "base_config",
        "model", "data", "task", "seed", "output_dir", "pruner", "scheduler", "ray", "lease_s", "max_attempts",
        "trial_plots")
WANDB_ONLY_KEYS = ("program", "command", "project", "entity", "description", "early_terminate", "controller")
SECTIONS = ("model", "data", "task")


@dataclass
class Param:
    """One searched (or fixed) parameter. ``kind`` is ``values``, ``value`` or ``range``."""

    name: str
    kind: str
    values: list[Any] = field(default_factory=list)
    value: Any = None
    low: float | int | None = None
    high: float | int | None = None
    distribution: str | None = None  # uniform | log_uniform | int_uniform (range only)

    def samples(self) -> list[Any]:
        """The values that validation tries: every listed value, the constant, or both ends of a range."""
        if self.kind == "values":
            return list(self.values)
        if self.kind == "value":
            return [self.value]
        return [self.low, self.high]


@dataclass
class SweepSpec:
    """A validated sweep. ``base_run`` is the resolved run spec every trial starts from."""

    name: str
    method: str
    metric: str
    goal: str
    parameters: dict[str, Param]
    n_trials: int
    parallel: int
    backend: str
    base_run: dict[str, Any]
    output_dir: str
    seed: int = 0
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "median", "n_startup_trials": 5,
                                                            "n_warmup_steps": 0})
    scheduler: str | None = None
    ray_address: str | None = None
    lease_s: float = 60.0
    max_attempts: int = 3
    trial_plots: bool = False
    source: str | None = None
    command: list[str] | None = None  # a user script runs each trial (W&B program/command); None: built-in
    workdir: str | None = None  # the script's working directory
    gpus_per_trial: float | None = None  # ray: None = 1 when the cluster has GPUs
    asha: dict[str, Any] = field(default_factory=dict)  # ray ASHA settings (from early_terminate)
    description: str | None = None
    ignored: list[str] = field(default_factory=list)  # W&B keys not honoured (the start-up warning)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSpec:
        values = dict(data)
        values["parameters"] = {k: Param(**v) for k, v in values["parameters"].items()}
        return cls(**values)

    def fingerprint(self) -> dict[str, Any]:
        """What must not change when a sweep is resumed (``parallel`` and ``n_trials`` may)."""
        data = self.to_dict()
        return {k: data[k] for k in ("method", "metric", "goal", "parameters", "base_run", "seed", "command")}

    @property
    def grid_size(self) -> int:
        """Points of the grid of listed values (a product; never materialised)."""
        return math.prod(len(p.values) for p in self.parameters.values() if p.kind == "values")

    @property
    def searched(self) -> list[str]:
        """Names of the parameters that vary (not constants)."""
        return [n for n, p in self.parameters.items() if p.kind != "value"]


def load_sweep(path: str | os.PathLike[str], *, parallel: int | None = None, n_trials: int | None = None,
               output_dir: str | None = None, backend: str | None = None) -> SweepSpec:
    """Read and validate a sweep file; command-line values (``parallel`` ...) override the file's."""
    from trainforge.config.io import read_mapping

    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"sweep file: {bounded_repr(str(path))} not found. Fix: give the path of a .yaml sweep file."],
                          what="sweep")
    data = read_mapping(path)
    for key, value in (("parallel", parallel), ("n_trials", n_trials), ("output_dir", output_dir),
                       ("backend", backend)):
        if value is not None:
            data[key] = value
    return parse_sweep(data, source=str(path), base_dir=path.parent)


def parse_sweep(data: dict[str, Any], *, source: str | None = None, base_dir: Path | None = None) -> SweepSpec:
    """Validate a sweep mapping; every problem is reported in one ``ConfigError``."""
    what = f"sweep file {source}" if source else "sweep"
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError([f"sweep: must be a mapping, got {bounded_repr(data)}."], what)
    base_dir = base_dir or Path.cwd()
    for key in data:
        if key not in KEYS and key not in WANDB_ONLY_KEYS:
            hint = did_you_mean(str(key), KEYS)
            problems.append(f"{key}: unknown sweep key. Fix: {hint}Known keys: {quote_list(KEYS)}.")

    method = _method(data.get("method"), problems)
    metric, goal = _metric(data.get("metric", {"name": "val/loss", "goal": "minimize"}), problems)
    params = _parameters(data.get("parameters"), problems)
    if method == "grid":
        for p in params.values():
            if p.kind == "range":
                problems.append(f"parameters.{p.name}: method grid needs a list of values, got a range "
                                f"min={bounded_repr(p.low)} max={bounded_repr(p.high)}. Fix: give values: [...], or use method random.")
    # A product of list lengths: 10^12 points cost nothing until walked (trials are made one at a time).
    grid_size = math.prod(len(p.values) for p in params.values() if p.kind == "values") if params else 0
    n_trials = data.get("n_trials", data.get("run_cap"))
    if n_trials is None:
        n_trials = grid_size if method == "grid" else 10
    elif not _is_int(n_trials) or n_trials < 1:
        problems.append(f"n_trials: must be a positive integer, got {bounded_repr(n_trials)}. Fix: e.g. n_trials: 8.")
        n_trials = 1
    elif method == "grid":
        n_trials = min(int(n_trials), grid_size)
    parallel = data.get("parallel")
    if parallel is None:
        from trainforge.sweeps.devices import default_parallel, visible_gpus

        parallel = default_parallel(visible_gpus())
    if not _is_int(parallel) or parallel < 1:
        problems.append(f"parallel: must be a positive integer, got {bounded_repr(parallel)}. Fix: e.g. parallel: 2.")
        parallel = 1
    backend = data.get("backend", "local")
    if backend not in BACKENDS:
        problems.append(f"backend: unknown backend, got {bounded_repr(backend)}. Fix: choose one of {quote_list(BACKENDS)}.")
    seed = data.get("seed", 0)
    if not _is_int(seed):
        problems.append(f"seed: must be an integer, got {bounded_repr(seed)}.")
        seed = 0
    pruner = _pruner(data.get("pruner"), problems)
    scheduler = data.get("scheduler")
    if scheduler is not None and scheduler not in ("asha", "fifo"):
        problems.append(f"scheduler: unknown Ray Tune scheduler, got {bounded_repr(scheduler)}. Fix: asha or fifo.")
    ray = data.get("ray") or {}
    if not isinstance(ray, dict) or set(ray) - {"address", "gpus_per_trial"}:
        problems.append(f"ray: expected {{address: null | auto | ray://host:port, gpus_per_trial: 1}}, got "
                        f"{bounded_repr(ray)}.")
        ray = {}
    gpus_per_trial = ray.get("gpus_per_trial")
    if gpus_per_trial is not None and (not _is_number(gpus_per_trial) or gpus_per_trial < 0):
        problems.append(f"ray.gpus_per_trial: must be a number >= 0 (0.5 shares a GPU between two trials), got "
                        f"{bounded_repr(gpus_per_trial)}.")
        gpus_per_trial = None
    lease_s = data.get("lease_s", 60.0)
    if not isinstance(lease_s, (int, float)) or isinstance(lease_s, bool) or lease_s <= 0:
        problems.append(f"lease_s: must be a positive number of seconds, got {bounded_repr(lease_s)}.")
        lease_s = 60.0
    max_attempts = data.get("max_attempts", 3)
    if not _is_int(max_attempts) or max_attempts < 1:
        problems.append(f"max_attempts: must be a positive integer, got {bounded_repr(max_attempts)}.")
        max_attempts = 3
    trial_plots = data.get("trial_plots", False)
    if not isinstance(trial_plots, bool):
        problems.append(f"trial_plots: must be true or false, got {bounded_repr(trial_plots)}.")
        trial_plots = False
    name = _name(data.get("name"), source, problems)
    from trainforge.sweeps.wandb_keys import parse_wandb_keys

    wandb = parse_wandb_keys(data, method, str(backend), base_dir, problems)
    if wandb.pruner is not None:
        pruner = wandb.pruner
    if wandb.asha is not None:
        scheduler = "asha"
    base_run = _base_run(data, base_dir, problems, wandb.trainforge_args)
    if base_run is not None:
        for key, value in wandb.training.items():
            base_run["training"].setdefault(key, value)
            if base_run["training"][key] is None:
                base_run["training"][key] = value
    if base_run is not None and params and wandb.command is None:
        # A user script takes the parameters as its own arguments and reports its own metrics: only the
        # built-in trial can be checked against TrainingConfig and the task's metrics.
        problems += _check_against_base(base_run, params, metric)
    if problems:
        raise ConfigError(problems, what)
    assert base_run is not None
    output_dir = str(data.get("output_dir") or Path("sweeps") / name)
    spec = SweepSpec(name=name, method=method, metric=metric, goal=goal, parameters=params, n_trials=int(n_trials),
                     parallel=int(parallel), backend=str(backend), base_run=base_run, output_dir=output_dir,
                     seed=int(seed), pruner=pruner, scheduler=scheduler, ray_address=ray.get("address"),
                     lease_s=float(lease_s), max_attempts=int(max_attempts), trial_plots=trial_plots,
                     source=source, command=wandb.command, workdir=wandb.workdir, gpus_per_trial=gpus_per_trial,
                     asha=wandb.asha or {}, description=wandb.description, ignored=wandb.ignored)
    from trainforge.sweeps.wandb_keys import ignored_warning

    message = ignored_warning(wandb)
    if message:
        warnings.warn(f"sweep {name!r}: {message}", UserWarning, stacklevel=2)
    return spec


# ---------------------------------------------------------------------- pieces


# One path component: the sweep's name becomes sweeps/<name>, each trial's run_name (<name>-trial-NNNN, itself a
# directory name: at most 100 characters) and the Optuna study name. The characters are those of a safe run name.
def check_path_component(value: Any, where: str) -> str | None:
    """A problem line when the sweep name ``value`` cannot name the folder ``sweeps/<name>`` and each trial's
    run_name ``<name>-trial-NNNN`` (the run-name rule of ``safe_paths``), else None."""
    why = name_problem(value) or (name_problem(f"{value}-trial-0000") if isinstance(value, str) else None)
    if why is None:
        return None
    return (f"{where}: it names the directory sweeps/<name> and each trial's run_name '<name>-trial-NNNN', and it "
            f"{why}, got {bounded_repr(value)}. Fix: use a plain name such as 'lr-sweep' ({NAME_RULE}).")


def _name(name: Any, source: str | None, problems: list[str]) -> str:
    if name is None or name == "":
        name = Path(source).stem if source else "sweep"
        if check_path_component(name, "name") is None:
            return str(name)
        problems.append(f"name: the sweep file's name {name!r} cannot name a folder. Fix: add name: lr-sweep.")
        return "sweep"
    problem = check_path_component(name, "name")
    if problem:
        problems.append(problem)
        return "sweep"
    return str(name)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _method(method: Any, problems: list[str]) -> str:
    if method is None:
        problems.append(f"method: missing. Fix: add method: with one of {quote_list(METHODS)}.")
        return "grid"
    method = METHOD_ALIASES.get(method, method) if isinstance(method, str) else method
    if method not in METHODS:
        hint = did_you_mean(method, METHODS) if isinstance(method, str) else ""
        problems.append(f"method: unknown method, got {bounded_repr(method)}. Fix: {hint}choose one of {quote_list(METHODS)}.")
        return "grid"
    return str(method)


def _metric(metric: Any, problems: list[str]) -> tuple[str, str]:
    if isinstance(metric, str):
        metric = {"name": metric}
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
        problems.append(f"metric: expected {{name: val/loss, goal: minimize}}, got {bounded_repr(metric)}.")
        return "val/loss", "minimize"
    goal = metric.get("goal", "minimize")
    if goal not in GOALS:
        problems.append(f"metric.goal: must be one of {quote_list(GOALS)}, got {bounded_repr(goal)}.")
        goal = "minimize"
    return metric["name"], str(goal)


def _flatten(parameters: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """W&B nests with ``{model: {parameters: {n_layer: {...}}}}``; that is ``model.n_layer`` here."""
    out: dict[str, Any] = {}
    for name, spec in parameters.items():
        full = f"{prefix}{name}"
        if isinstance(spec, dict) and isinstance(spec.get("parameters"), dict):
            out.update(_flatten(spec["parameters"], prefix=f"{full}."))
        else:
            out[full] = spec
    return out


def _parameters(parameters: Any, problems: list[str]) -> dict[str, Param]:
    if not isinstance(parameters, dict) or not parameters:
        problems.append(f"parameters: the parameter list is empty or missing, got {bounded_repr(parameters)}. Fix: add at "
                        "least one, e.g. parameters: {learning_rate: {values: [1.0e-3, 3.0e-3]}}.")
        return {}
    out: dict[str, Param] = {}
    for name, spec in _flatten(parameters).items():
        param = _param(str(name), spec, problems)
        if param is not None:
            out[param.name] = param
    return out


def _param(name: str, spec: Any, problems: list[str]) -> Param | None:
    where = f"parameters.{name}"
    if not isinstance(spec, dict):
        problems.append(f"{where}: expected {{values: [...]}}, {{value: x}} or {{min: a, max: b}}, got {bounded_repr(spec)}.")
        return None
    dist_given = spec.get("distribution")
    dist = DISTRIBUTIONS.get(dist_given) if isinstance(dist_given, str) else None
    if dist_given is not None and dist is None:
        problems.append(f"{where}.distribution: unsupported distribution, got {bounded_repr(dist_given)}. Fix: choose one of "
                        f"{quote_list(DISTRIBUTIONS)}.")
        return None
    unknown = set(spec) - {"values", "value", "min", "max", "distribution", "probabilities"}
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}. Fix: use values, value, or min/max/distribution.")
        return None
    forms = [k for k in ("values", "value") if k in spec] + (["min/max"] if "min" in spec or "max" in spec else [])
    if len(forms) != 1:
        problems.append(f"{where}: give exactly one of values, value, or min and max; got {forms or 'none'} in "
                        f"{bounded_repr(spec)}.")
        return None
    if "values" in spec:
        values = spec["values"]
        if not isinstance(values, list) or not values:
            problems.append(f"{where}.values: must be a non-empty list, got {bounded_repr(values)}.")
            return None
        return Param(name=name, kind="values", values=list(values))
    if "value" in spec:
        return Param(name=name, kind="value", value=spec["value"])
    low: Any = spec.get("min")
    high: Any = spec.get("max")
    if not _is_number(low) or not _is_number(high):
        problems.append(f"{where}: min and max must both be numbers, got min={bounded_repr(low)} max={bounded_repr(high)}.")
        return None
    if low > high:
        problems.append(f"{where}: min > max (min={bounded_repr(low)}, max={bounded_repr(high)}). Fix: swap them, so that min <= max.")
        return None
    if dist is None:
        dist = "int_uniform" if _is_int(low) and _is_int(high) else "uniform"
    if dist in ("categorical", "constant"):
        problems.append(f"{where}: distribution {bounded_repr(dist_given)} takes values/value, not min/max.")
        return None
    if dist == "log_uniform_exponent":
        low, high, dist = math.exp(low), math.exp(high), "log_uniform"
    if dist == "log_uniform" and low <= 0:
        problems.append(f"{where}: a log-uniform range needs min > 0, got min={bounded_repr(low)}. Fix: e.g. min: 1.0e-5.")
        return None
    if dist == "int_uniform":
        if not (float(low).is_integer() and float(high).is_integer()):
            problems.append(f"{where}: int_uniform needs integer bounds, got min={bounded_repr(low)} max={bounded_repr(high)}.")
            return None
        low, high = int(low), int(high)
    else:
        low, high = float(low), float(high)
    return Param(name=name, kind="range", low=low, high=high, distribution=dist)


_HYPERBAND = {"type": "hyperband", "min_resource": 1, "max_resource": "auto", "reduction_factor": 3}


def _pruner(pruner: Any, problems: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "median", "n_startup_trials": 5, "n_warmup_steps": 0}
    if pruner is None:
        return out
    if isinstance(pruner, str):
        pruner = {"type": pruner}
    if isinstance(pruner, dict) and pruner.get("type") == "hyperband" and not set(pruner) - set(_HYPERBAND):
        return {**_HYPERBAND, **pruner}
    if not isinstance(pruner, dict) or pruner.get("type", "median") not in ("median", "none") or (
        set(pruner) - set(out)
    ):
        problems.append(f"pruner: expected {{type: median | none, n_startup_trials: N, n_warmup_steps: N}} or "
                        f"{{type: hyperband, min_resource: 1, max_resource: auto, reduction_factor: 3}}, got "
                        f"{bounded_repr(pruner)}.")
        return out
    out.update(pruner)
    return out


def _base_run(data: dict[str, Any], base_dir: Path, problems: list[str],
              command_args: list[str] | None = None) -> dict[str, Any] | None:
    """The run spec every trial starts from: base_config (preset or file), then the fixed arguments of a W&B
    ``command: [trainforge, train, ...]``, then the file's model/data/task."""
    from trainforge.config.presets import PRESETS
    from trainforge.runspec import load_run_spec

    options, overrides = _split_command_args(command_args or [])
    base = data.get("base_config", options.get("config") or options.get("preset") or "tiny")
    if "base_config" in data and options:
        problems.append(f"command: sets {' and '.join('--' + k for k in options)} and the file sets base_config. "
                        "Fix: keep one of them.")
    preset: str | None = None
    config_file: str | None = None
    inline: dict[str, Any] = {}
    if isinstance(base, dict):
        inline = copy.deepcopy(base)
    elif isinstance(base, str) and base in PRESETS:
        preset = base
    elif isinstance(base, str) and Path(base).suffix.lower() in (".yaml", ".yml", ".json"):
        found = next((p for p in (base_dir / base, Path(base)) if p.is_file()), None)
        if found is None:
            problems.append(f"base_config: file {bounded_repr(base)} not found (looked next to the sweep file and in the current "
                            "directory). Fix: give the path of a TrainingConfig or run file.")
            return None
        config_file = str(found.resolve())
    else:
        hint = did_you_mean(str(base), PRESETS)
        problems.append(f"base_config: expected a training preset ({quote_list(PRESETS)}) or a .yaml/.json file, "
                        f"got {bounded_repr(base)}. Fix: {hint}")
        return None
    try:
        if not inline:
            spec = load_run_spec(config_file, preset, [])
        else:
            spec = load_run_spec(None, inline.pop("preset", None), [])
            spec["training"].update({k: v for k, v in inline.items() if k not in SECTIONS})
            for section in SECTIONS:
                if section in inline:
                    spec[section] = inline[section]
    except ConfigError as exc:
        problems += [f"base_config: {p}" for p in exc.problems]
        return None
    if overrides:
        from trainforge.config import parse_overrides
        from trainforge.runspec import deep_update

        try:
            fixed = parse_overrides(overrides)
        except ConfigError as exc:
            problems += [f"command: {p}" for p in exc.problems]
            return None
        deep_update(spec, {k: v for k, v in fixed.items() if k in SECTIONS})
        spec["training"].update({k: v for k, v in fixed.items() if k not in SECTIONS})
    for section in SECTIONS:
        if section in data and data[section] is not None:
            value = data[section]
            if isinstance(value, dict) and isinstance(spec.get(section), dict):
                spec[section] = {**spec[section], **value}
            else:
                spec[section] = value
    for section in ("model", "data"):
        spec[section] = _absolute_target(spec.get(section), base_dir)
    return spec


def _split_command_args(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """``trainforge train`` arguments of a W&B command → ({config/preset: value}, overrides)."""
    options: dict[str, str] = {}
    overrides: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        key = word.split("=", 1)[0]
        if key in ("--config", "--preset"):
            if "=" in word:
                options[key[2:]] = word.split("=", 1)[1]
            elif i + 1 < len(args):
                options[key[2:]] = args[i + 1]
                i += 1
        else:
            overrides.append(word)
        i += 1
    return options, overrides


def _absolute_target(value: Any, base_dir: Path) -> Any:
    """``file.py:function`` next to the sweep file → an absolute path, so workers anywhere find it."""
    if isinstance(value, str) and ".py:" in value:
        target, _, func = value.partition(":")
        for candidate in (base_dir / target, Path(target)):
            if candidate.is_file():
                return f"{candidate.resolve()}:{func}"
    return value


def _check_against_base(base_run: dict[str, Any], params: dict[str, Param], metric: str) -> list[str]:
    """Every value of every parameter builds a valid TrainingConfig; the metric is one the runs log."""
    from trainforge.config import TrainingConfig
    from trainforge.config.schema import _defaults
    from trainforge.runspec import apply_params, logged_metrics

    problems: list[str] = []
    fields = set(_defaults())
    from trainforge.config.keys import ALIASES

    for name in params:
        head = name.split(".")[0]
        if "." in name and head not in SECTIONS:
            problems.append(f"parameters.{name}: dotted names must start with {quote_list(SECTIONS)}, got {bounded_repr(name)}.")
        elif "." not in name and name not in fields and name not in ALIASES:
            hint = did_you_mean(name, sorted(fields))
            problems.append(f"parameters.{name}: not a TrainingConfig field. Fix: {hint}or use model.<key> / "
                            "data.<key> for the model and data.")
    bad = {p.split(":")[0].removeprefix("parameters.") for p in problems}
    params = {n: p for n, p in params.items() if n not in bad}
    first = {n: p.samples()[0] for n, p in params.items()}
    seen: set[str] = set()
    for name, param in params.items():
        if "." in name:
            continue
        for value in param.samples():
            run = apply_params(base_run, {**first, name: value})
            try:
                TrainingConfig.from_dict(run["training"])
            except ConfigError as exc:
                for p in exc.problems:
                    line = f"parameters.{name}={bounded_repr(value)}: {p}"
                    if line not in seen:
                        seen.add(line)
                        problems.append(line)
    logged = logged_metrics(apply_params(base_run, first))
    if metric not in logged:
        hint = did_you_mean(metric, logged)
        problems.append(f"metric.name: {bounded_repr(metric)} is never logged by these runs, so no trial could be ranked. Fix: "
                        f"{hint}choose one of {quote_list(logged)}.")
    return problems
