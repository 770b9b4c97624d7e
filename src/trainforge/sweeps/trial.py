"""One trial: the base run spec plus the trial's parameters, trained in its own run directory.

Shared by every backend (local workers, Ray trainables, queue jobs). ``value`` is the best value of the sweep's
metric over the trial's epochs (lowest for ``minimize``), the epoch ``best.pt`` would hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trainforge.errors import TrainforgeError
from trainforge.runspec import apply_params, train_spec
from trainforge.sweeps.spec import SweepSpec


class MetricMissing(TrainforgeError):
    """The trial finished but never logged the sweep's metric."""


def trial_dir(sweep_dir: str | Path, number: int) -> Path:
    return Path(sweep_dir) / "trials" / f"trial-{number:04d}"


def trial_run_spec(spec: SweepSpec, number: int, params: dict[str, Any], sweep_dir: str | Path) -> dict[str, Any]:
    """The trial's run spec: its parameters applied, its own run directory, no progress bar, no plots unless
    ``trial_plots``. When the base config checkpoints, the trial checkpoints into its run directory and a re-run
    resumes from there."""
    run = apply_params(spec.base_run, params)
    out = trial_dir(sweep_dir, number).resolve()
    training = run["training"]
    training["output_dir"] = str(out)
    training["run_name"] = f"{spec.name}-trial-{number:04d}"
    training["progress_bar"] = False
    training["plots"] = spec.trial_plots  # the sweep plots metric vs parameters itself; per-trial PNGs are opt-in
    if training.get("checkpoint_dir"):
        training["checkpoint_dir"] = str(out / "checkpoints")
        training["resume_from_checkpoint"] = "auto"
    else:  # nothing to resume: a re-run of the trial (a retried job) starts its own directory over
        training["overwrite"] = True
    return run


def best_value(history: Sequence[dict[str, Any]], metric: str, goal: str) -> tuple[float | None, int | None]:
    """(best value, its epoch) of ``metric`` over the epoch rows; NaN values are skipped."""
    best: tuple[float | None, int | None] = (None, None)
    for row in history:
        value = row.get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        value = float(value)
        if best[0] is None or (value < best[0] if goal == "minimize" else value > best[0]):
            best = (value, int(row.get("epoch", 0)))
    return best


def run_trial(spec: SweepSpec, number: int, params: dict[str, Any], sweep_dir: str | Path,
              callbacks: Sequence[Any] = (), on_epoch: Callable[[list[dict[str, Any]]], None] | None = None,
              ) -> dict[str, Any]:
    """Train trial ``number``; returns ``{value, best_epoch, history, run_dir, pruned, params, stop_reason,
    epochs_completed}``. With a W&B ``program``/``command`` the user's script is the trial
    (:mod:`trainforge.sweeps.script`). Raises whatever training raises, and :class:`MetricMissing` when the
    metric never appeared."""
    if spec.command is not None:
        from trainforge.sweeps.script import run_script_trial

        run_dir = trial_dir(sweep_dir, number).resolve()
        results = run_script_trial(spec, number, params, run_dir, callbacks=callbacks, on_epoch=on_epoch)
        fix = ("print one JSON object per epoch to stdout, e.g. print(json.dumps({'epoch': 1, "
               f"{spec.metric!r}: value}}), flush=True) (see trainforge.sweeps.script)")
    else:
        from trainforge.jobs.training import summarize

        run = trial_run_spec(spec, number, params, sweep_dir)
        run_dir = Path(run["training"]["output_dir"])
        extra = [_EpochHook(on_epoch)] if on_epoch is not None else []
        results = summarize(train_spec(run, callbacks=[*extra, *callbacks]))
        fix = "set metric.name to one of them"
    value, epoch = best_value(results["history"], spec.metric, spec.goal)
    if value is None:
        logged = sorted({k for row in results["history"] for k in row})
        raise MetricMissing(f"metric {spec.metric!r} was never logged by trial {number}; its epochs logged "
                            f"{logged}. Fix: {fix}.")
    reason = results.get("stop_reason") or ""
    return {**results, "value": value, "best_epoch": epoch, "params": params, "pruned": reason.startswith("pruned"),
            "run_dir": str(run_dir), "epochs_completed": len(results["history"])}


class _EpochHook:
    def __init__(self, fn: Callable[[list[dict[str, Any]]], None]) -> None:
        self.fn = fn

    def on_epoch_end(self, state: Any) -> None:
        from trainforge.jobs.training import _plain

        self.fn([{k: _plain(v) for k, v in row.items()} for row in state.history])
