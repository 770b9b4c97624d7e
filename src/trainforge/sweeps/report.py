"""The end of a sweep: the results table (``results.csv`` and printed), the best trial's config
(``best_config.yaml``, a TrainingConfig file; ``best_run.yaml``, a run file with its model/data for
``trainforge train --config``; for a sweep of a user script, ``best_params.yaml``: its parameters and command),
and ``metric_vs_params.png`` (the metric against each searched parameter)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from trainforge.runspec import apply_params
from trainforge.sweeps.spec import SweepSpec
from trainforge.sweeps.store import TrialRecord

# Per-trial fields that must not be copied into the best config: they name that trial's own directories.
_TRIAL_ONLY = ("output_dir", "run_name", "checkpoint_dir", "resume_from_checkpoint")


def results_table(spec: SweepSpec, trials: list[TrialRecord]) -> Any:
    """A pandas DataFrame, one row per trial, best first (failed and unfinished trials last)."""
    import pandas as pd

    rows = []
    for t in trials:
        # The sampled parameters keep their own columns (a searched `epochs` is the value the trial asked for);
        # what the trial did is in columns no parameter can be named (not TrainingConfig fields).
        row: dict[str, Any] = {"trial": t.number, "status": t.status}
        row.update({name: t.params.get(name) for name in spec.parameters if name in spec.searched})
        row[spec.metric] = t.value
        row["best_epoch"] = t.best_epoch
        row["epochs_completed"] = len(t.history)
        row["attempts"] = t.attempts
        row["duration_s"] = round(t.duration_s, 2) if t.duration_s is not None else None
        row["run_dir"] = t.run_dir
        row["error"] = " ".join(t.error.split())[:300] if t.error else None
        rows.append(row)
    table = pd.DataFrame(rows)
    if not rows:
        return table
    ascending = spec.goal == "minimize"
    table["_ok"] = table["status"] == "completed"
    table = table.sort_values(["_ok", spec.metric, "trial"], ascending=[False, ascending, True], na_position="last")
    return table.drop(columns="_ok").reset_index(drop=True)


def best_trial(spec: SweepSpec, trials: list[TrialRecord]) -> TrialRecord | None:
    done = [t for t in trials if t.status == "completed" and t.value is not None and not math.isnan(t.value)]
    if not done:
        return None
    pick = min if spec.goal == "minimize" else max
    return pick(done, key=lambda t: (t.value if spec.goal == "minimize" else t.value, -t.number))


def write_best(spec: SweepSpec, best: TrialRecord, directory: Path) -> tuple[Path, Path]:
    """``best_config.yaml`` (TrainingConfig) and ``best_run.yaml`` (run file with model/data/task)."""
    from trainforge.config import TrainingConfig
    from trainforge.config.io import write_mapping

    run = apply_params(spec.base_run, best.params)
    training = {k: v for k, v in run["training"].items() if k not in _TRIAL_ONLY}
    config_path = TrainingConfig.from_dict(training).save(directory / "best_config.yaml")
    run_file: dict[str, Any] = dict(training)
    for section in ("model", "data", "task"):
        if run.get(section):
            run_file[section] = run[section]
    run_path = write_mapping(run_file, directory / "best_run.yaml")
    return config_path, run_path


def plot(spec: SweepSpec, trials: list[TrialRecord], path: Path) -> Path | None:
    """The metric against each searched parameter (log axis for log-uniform ones); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = spec.searched or list(spec.parameters)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        param = spec.parameters[name]
        for status, color, marker in (("completed", "tab:blue", "o"), ("pruned", "tab:gray", "x")):
            points = [(t.params.get(name), t.value) for t in trials if t.status == status and t.value is not None]
            if not points:
                continue
            xs, ys = zip(*points)
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
                labels = [str(v) for v in (param.values or sorted({str(x) for x in xs}))]
                xs = tuple(labels.index(str(x)) if str(x) in labels else -1 for x in xs)
                ax.set_xticks(range(len(labels)), labels, rotation=30)
            ax.scatter(xs, ys, c=color, marker=marker, label=status)
        if param.distribution == "log_uniform" or (
            param.kind == "values" and all(isinstance(v, float) and v > 0 for v in param.values)
            and max(param.values) / min(param.values) >= 100
        ):
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(spec.metric)
        ax.grid(alpha=0.3)
    if axes[0][0].get_legend_handles_labels()[0]:  # no finished trial: nothing to label
        axes[0][0].legend(fontsize=8)
    fig.suptitle(f"sweep {spec.name}: {spec.metric} ({spec.goal})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(spec: SweepSpec, trials: list[TrialRecord], directory: Path) -> dict[str, Any]:
    """Write every end-of-sweep file; returns their paths, the table and the best trial."""
    table = results_table(spec, trials)
    csv_path = directory / "results.csv"
    table.to_csv(csv_path, index=False)
    best = best_trial(spec, trials)
    out: dict[str, Any] = {"table": table, "results_csv": csv_path, "best": best, "best_config": None,
                           "best_run": None, "best_params": None, "plot": None}
    if best is not None and spec.command is not None:  # a user script's parameters are its own arguments
        from trainforge.config.io import write_mapping
        from trainforge.sweeps.script import expand_command

        command = expand_command(spec.command, best.params, directory)
        out["best_params"] = write_mapping({"trial": best.number, spec.metric: best.value, "params": best.params,
                                            "command": command}, directory / "best_params.yaml")
    elif best is not None:
        out["best_config"], out["best_run"] = write_best(spec, best, directory)
    out["plot"] = plot(spec, trials, directory / "metric_vs_params.png")
    return out
