"""``method: optuna``: TPE sampling and median (or Hyperband) pruning, with the study in the sweep's own SQLite file.

Workers share the study through Optuna's RDB storage (``sqlite:///<sweep dir>/sweep.db``). Samplers and pruners
are not stored by Optuna, so each trial builds them again from the sweep: the TPE sampler is seeded with
``(seed, trial number)`` so that parallel workers do not propose the same startup points.
Imported only for optuna sweeps (``pip install trainforge[optuna]``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from trainforge.sweeps.spec import Param, SweepSpec


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from trainforge.errors import ConfigError

        raise ConfigError(["method: optuna needs the optuna package. Fix: pip install 'trainforge[optuna]'."],
                          what="sweep") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def storage(db_path: str | Path) -> Any:
    optuna = _optuna()
    url = f"sqlite:///{Path(db_path).resolve()}"
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})


def _pruner(spec: SweepSpec) -> Any:
    optuna = _optuna()
    if spec.pruner.get("type") == "none":
        return optuna.pruners.NopPruner()
    if spec.pruner.get("type") == "hyperband":  # W&B's early_terminate: {type: hyperband}; epochs are the resource
        return optuna.pruners.HyperbandPruner(min_resource=spec.pruner.get("min_resource", 1),
                                              max_resource=spec.pruner.get("max_resource", "auto"),
                                              reduction_factor=int(spec.pruner.get("reduction_factor", 3)))
    return optuna.pruners.MedianPruner(n_startup_trials=int(spec.pruner.get("n_startup_trials", 5)),
                                       n_warmup_steps=int(spec.pruner.get("n_warmup_steps", 0)))


def study(spec: SweepSpec, db_path: str | Path, number: int = 0) -> Any:
    """The sweep's study (created on first use), with this trial's sampler and the sweep's pruner."""
    optuna = _optuna()
    sampler = optuna.samplers.TPESampler(seed=spec.seed * 100_003 + number)
    return optuna.create_study(study_name=spec.name, storage=storage(db_path), load_if_exists=True,
                               direction=spec.goal, sampler=sampler, pruner=_pruner(spec))


def create_study(spec: SweepSpec, db_path: str | Path) -> None:
    """Create the sweep's study in its SQLite file (if new) and close the connections, so that the coordinator
    holds none when it forks workers (an SQLite connection must not be shared across a fork)."""
    created = study(spec, db_path)
    backend = getattr(created._storage, "_backend", created._storage)  # optuna wraps RDBStorage in a cache
    engine = getattr(backend, "engine", None)
    if engine is not None:
        engine.dispose()


def suggest(trial: Any, param: Param) -> Any:
    if param.kind == "value":
        return param.value
    if param.kind == "values":
        return trial.suggest_categorical(param.name, param.values)
    assert param.low is not None and param.high is not None
    if param.distribution == "int_uniform":
        return trial.suggest_int(param.name, int(param.low), int(param.high))
    return trial.suggest_float(param.name, float(param.low), float(param.high),
                               log=param.distribution == "log_uniform")


def ask(spec: SweepSpec, db_path: str | Path, number: int) -> tuple[Any, Any, dict[str, Any]]:
    """(study, optuna trial, params) for sweep trial ``number``."""
    st = study(spec, db_path, number)
    trial = st.ask()
    trial.set_user_attr("sweep_trial", number)
    params = {name: suggest(trial, p) for name, p in spec.parameters.items()}
    return st, trial, params


def tell_failed(spec: SweepSpec, db_path: str | Path, optuna_number: int) -> None:
    """Close an Optuna trial left running by a worker that died, so the sampler does not wait on it."""
    optuna = _optuna()
    st = study(spec, db_path)
    frozen = next((t for t in st.get_trials(deepcopy=False) if t.number == optuna_number), None)
    if frozen is not None and frozen.state == optuna.trial.TrialState.RUNNING:
        st.tell(optuna_number, state=optuna.trial.TrialState.FAIL)


def tell(st: Any, trial: Any, value: float | None, pruned: bool, failed: bool = False) -> None:
    optuna = _optuna()
    if failed or value is None or (isinstance(value, float) and math.isnan(value)):
        st.tell(trial, state=optuna.trial.TrialState.FAIL)
    elif pruned:
        st.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        st.tell(trial, value)


class OptunaPruning:
    """Callback: report the metric to Optuna at each epoch end and stop the run when the pruner says so."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial = trial
        self.metric = metric

    def on_epoch_end(self, state: Any) -> None:
        row = state.history[-1]
        value = row.get(self.metric)
        if value is None:
            return
        self.trial.report(float(value), int(row["epoch"]))
        if self.trial.should_prune():
            state.request_stop(f"pruned by optuna at epoch {row['epoch']} ({self.metric}={float(value):.4g})")
