"""``backend: ray``: the same sweep on Ray Tune, for users who outgrow one machine.

Each trial is a Ray trainable (a function) that runs :func:`trainforge.sweeps.trial.run_trial` and reports every
epoch's metrics with ``ray.tune.report``; ``scheduler: asha`` stops poor trials early (ASHA), ``method: optuna``
uses Ray's OptunaSearch. ``ray: {address: null}`` starts a local Ray instance with ``parallel`` CPUs (stopped
at the end); ``address: auto``, ``host:6379`` or ``ray://host:10001`` joins an existing cluster (left running).
Tune's experiment lives in ``<sweep dir>/ray``; when it exists, the same command restores it instead of starting
again (``Tuner.restore``): finished and failed trials are kept, unfinished ones run (Ctrl-C stops Tune, which
saves its state; the command then says so and exits). At the end every finished Ray trial is written into the
sweep's SQLite file, so the report is the same as for the local backend.
Imported only for ray sweeps (``pip install 'trainforge[ray]'``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainforge.sweeps.spec import Param, SweepSpec
from trainforge.sweeps.store import KIND, SweepStore


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from trainforge.errors import ConfigError

        raise ConfigError(["backend: ray needs Ray Tune. Fix: pip install 'trainforge[ray]'."], what="sweep") from exc
    return ray


GRID_INDEX = "grid_index"


def search_space(spec: SweepSpec) -> dict[str, Any]:
    """The sweep's parameters as a Ray Tune ``param_space``. A grid is searched over the indices of its first
    ``n_trials`` points (each trial computes its point from its index), never as the full product of values."""
    from ray import tune

    if spec.method == "grid":
        return {GRID_INDEX: tune.grid_search(list(range(spec.n_trials)))}

    def one(p: Param) -> Any:
        if p.kind == "value":
            return p.value
        if p.kind == "values":
            return tune.choice(p.values)
        assert p.low is not None and p.high is not None
        if p.distribution == "int_uniform":
            return tune.randint(int(p.low), int(p.high) + 1)
        if p.distribution == "log_uniform":
            return tune.loguniform(float(p.low), float(p.high))
        return tune.uniform(float(p.low), float(p.high))

    return {name: one(p) for name, p in spec.parameters.items()}


class _TuneReport:
    """Callback: every epoch row goes to Ray Tune (which may stop the trial, e.g. ASHA)."""

    def __init__(self, number: int) -> None:
        self.number = number

    def on_epoch_end(self, state: Any) -> None:
        from ray import tune

        row = state.history[-1]
        tune.report({"trial_number": self.number, **{k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                     and math.isfinite(float(v))}})


def _trainable(config: dict[str, Any], spec_dict: dict[str, Any], sweep_dir: str) -> None:
    import torch
    from ray import tune

    from trainforge.sweeps.trial import run_trial

    torch.set_num_threads(1)
    spec = SweepSpec.from_dict(spec_dict)
    params = params_of(spec, config)
    # The trial number comes from the sweep's store, like every local or submitted trial's (unique by construction);
    # Ray's own trial counter keys it, so a restored experiment's trial gets its number again.
    ray_index = int(tune.get_context().get_trial_id().split("_")[-1])
    number = SweepStore(sweep_dir).allocate_number("ray", sweep_index=ray_index)
    # Every epoch was reported by _TuneReport; a last report without the sweep's metric would fail Tune's strict
    # metric check (TuneConfig(metric=...)), and _record computes the trial's value from the epoch rows.
    run_trial(spec, number, params, sweep_dir, callbacks=[_TuneReport(number)])


def params_of(spec: SweepSpec, config: dict[str, Any]) -> dict[str, Any]:
    """A Ray trial's parameters from its Tune config."""
    if spec.method == "grid":
        from trainforge.sweeps.space import grid_point

        return grid_point(spec, int(config[GRID_INDEX]))
    return {name: config.get(name) for name in spec.parameters}


def run_ray(spec: SweepSpec, store: SweepStore, log: Callable[[str], None] = print) -> None:
    """Run the sweep on Ray Tune and record every trial in ``store``."""
    ray = _ray()
    from ray import tune

    sweep_dir = str(store.directory.resolve())
    storage = str((store.directory / "ray").resolve())
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # trials keep the sweep's working directory
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    started_here = not ray.is_initialized()
    env_vars = {"OMP_NUM_THREADS": "1", "RAY_CHDIR_TO_TRIAL_DIR": "0"}
    if started_here:
        if spec.ray_address:  # join: never starts a cluster; an unreachable address is an error
            try:
                _check_reachable(spec.ray_address)  # Ray itself retries an unreachable address for minutes
                ray.init(address=spec.ray_address, log_to_driver=False, runtime_env={"env_vars": env_vars})
            except (ConnectionError, RuntimeError, OSError) as exc:
                from trainforge.errors import ConfigError

                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError([
                    f"ray.address: cannot connect to the Ray cluster at {spec.ray_address!r} ({first}). Fix: give "
                    "the address `ray status` prints on the head node (host:6379, auto, or ray://host:10001); a "
                    "cluster with token authentication also needs RAY_AUTH_MODE=token and its RAY_AUTH_TOKEN here.",
                ], what="sweep") from exc
            cpus = ray.cluster_resources().get("CPU", 0)
            log(f"[sweep] joined the Ray cluster at {spec.ray_address}: {len(ray.nodes())} node(s), {cpus:g} CPUs")
        else:
            ray.init(num_cpus=spec.parallel, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env_vars})
    try:
        from trainforge.sweeps.devices import ray_trial_resources

        resources = ray_trial_resources(spec.gpus_per_trial, float(ray.cluster_resources().get("GPU", 0)))
        if resources.get("gpu"):
            log(f"[sweep] each Ray trial requests {resources['gpu']:g} GPU(s)")
        trainable = tune.with_resources(tune.with_parameters(_trainable, spec_dict=spec.to_dict(),
                                                             sweep_dir=sweep_dir), resources)
        experiment = Path(storage) / spec.name
        if tune.Tuner.can_restore(str(experiment)):
            log(f"[sweep] restoring the Ray Tune experiment in {experiment}")
            tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=False)
        else:
            tuner = tune.Tuner(trainable, param_space=search_space(spec), tune_config=_tune_config(spec),
                               run_config=tune.RunConfig(name=spec.name, storage_path=storage, verbose=0))
        grid = tuner.fit()
        unfinished = _record(spec, store, grid)
    finally:
        if started_here:  # stops the local instance; for a cluster given by address, only disconnects
            ray.shutdown()
    if unfinished:  # Tune stops on SIGINT/SIGUSR1 and saves its state instead of raising
        log(f"[sweep] interrupted with {unfinished} Ray trial(s) unfinished; run the same command again to resume")
        raise KeyboardInterrupt


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Raise ``OSError`` when nothing accepts a TCP connection at ``host:port`` / ``ray://host:port`` (``auto``
    and other forms are left to Ray)."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
        pass


def _tune_config(spec: SweepSpec) -> Any:
    from ray import tune

    mode = "min" if spec.goal == "minimize" else "max"
    search_alg = None
    if spec.method == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(metric=spec.metric, mode=mode, seed=spec.seed)
    scheduler = None
    if spec.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        # A built-in trial runs `epochs` epochs; a user script decides for itself (Ray's default horizon, 100).
        epochs = int(spec.base_run["training"].get("epochs", 3)) if spec.command is None else 100
        asha = spec.asha or {}  # from W&B's early_terminate: {type: hyperband, min_iter, max_iter, eta}
        grace = int(asha.get("grace_period", 1))
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max(int(asha.get("max_t") or epochs), grace),
                                  grace_period=grace, reduction_factor=float(asha.get("reduction_factor", 4)))
    num_samples = 1 if spec.method == "grid" else spec.n_trials
    return tune.TuneConfig(metric=spec.metric, mode=mode, num_samples=num_samples, search_alg=search_alg,
                           scheduler=scheduler, max_concurrent_trials=spec.parallel)


def _record(spec: SweepSpec, store: SweepStore, grid: Any) -> int:
    """Write each finished Ray trial into the sweep's SQLite file as a finished ``sweep-trial`` job; returns how
    many were not finished (an interrupted experiment: restoring it runs them)."""
    from trainforge.sweeps.trial import best_value, trial_dir

    queue = store.queue
    worker = "ray"
    unfinished = 0
    for index, result in enumerate(grid):
        # Tune marks the last result ``done`` when the trainable returned or a scheduler (ASHA) stopped the trial;
        # a trial stopped because the experiment was interrupted is not done (and not an error): it runs again
        # when the experiment is restored.
        if result.error is None and not (result.metrics or {}).get("done"):
            unfinished += 1
            continue
        params = params_of(spec, result.config)
        frame = result.metrics_dataframe
        rows = [] if frame is None else [
            {k: int(v) if k in ("epoch", "step") else v for k, v in row.items()
             if k in ("epoch", "step", "lr") or k.startswith(("train/", "val/"))}
            for row in frame.to_dict(orient="records") if isinstance(row.get("epoch"), (int, float))
            and math.isfinite(row["epoch"])
        ]
        value, epoch = best_value(rows, spec.metric, spec.goal)
        metrics = result.metrics or {}
        number = metrics.get("trial_number")
        if number is None:  # failed before its first report: the store's number for its Ray index (taken or new)
            number = store.allocate_number("ray", sweep_index=int(str(metrics.get("trial_id", index)).split("_")[-1]))
        number = int(number)
        job_id = queue.submit(KIND, {"sweep": {}, "trial": number, "params": params, "backend": "ray"},
                              max_attempts=1, key=f"ray-{number:05d}")
        job = queue.get(job_id)
        if job is None or job.status != "queued":
            continue  # recorded by an earlier run of this command
        _hold(queue, job_id, worker, float(metrics.get("time_total_s") or 0.0))
        run_dir = str(trial_dir(store.directory, number).resolve())
        if result.error is not None:
            queue.fail(job_id, worker, f"{type(result.error).__name__}: {result.error}", retry=False,
                       result={"params": params, "history": rows, "run_dir": run_dir})
        else:
            epochs = int(spec.base_run["training"].get("epochs", 0) or 0)
            stopped_early = spec.scheduler == "asha" and spec.command is None and 0 < len(rows) < epochs
            queue.complete(job_id, worker, {"params": params, "history": rows, "value": value, "best_epoch": epoch,
                                            "pruned": stopped_early, "run_dir": run_dir})
    return unfinished


def _hold(queue: Any, job_id: int, worker: str, duration_s: float) -> None:
    """Mark a job as held by ``worker`` since ``duration_s`` ago, so completing it records Ray's timing."""
    import time

    with queue._write() as db:
        db.execute("UPDATE jobs SET status = 'running', worker = ?, attempts = attempts + 1, started_at = ? "
                   "WHERE id = ?", (worker, time.time() - duration_s, job_id))
