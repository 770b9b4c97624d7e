"""Hyperparameter sweeps: one YAML schema (close to W&B's), trials in SQLite, local workers, Optuna, Ray Tune.

    trainforge sweep sweep.yaml                      # or: python cli/run_training.py --sweep-config sweep.yaml

    from trainforge.sweeps import run_sweep
    result = run_sweep("sweep.yaml")                 # resumes when run again; result.table, result.best

See ``trainforge.sweeps.spec`` for the file format. Optuna and Ray are imported only by sweeps that use them.

W&B sweeps drive ``trainforge train`` directly: its CLI takes the ``--key=value`` arguments the agent passes::

    # wandb_sweep.yaml — then: wandb sweep wandb_sweep.yaml; wandb agent <entity/project/sweep_id>
    program: trainforge
    command: [trainforge, train, --preset=tiny, --use_wandb=true, "${args}"]
    method: random
    metric: {name: val/loss, goal: minimize}
    parameters:
      learning_rate: {min: 1.0e-4, max: 1.0e-2, distribution: log_uniform_values}
      model.n_layer: {values: [1, 2, 4]}

The same file runs here too (``trainforge sweep wandb_sweep.yaml``): a ``trainforge train`` command is the
built-in trial with the command's fixed arguments. ``program: train.py`` runs your own script as each trial with
the agent's ``--key=value`` arguments; it reports its metrics as JSON lines (``report_metrics(results)`` does it
for a trainforge run; see ``trainforge.sweeps.script``). ``early_terminate: {type: hyperband}`` prunes with
Optuna's Hyperband (``method: bayes``/``optuna``) or Ray's ASHA.
"""

from trainforge.sweeps.run import SweepResult, print_summary, run_sweep
from trainforge.sweeps.script import report_metrics
from trainforge.sweeps.spec import Param, SweepSpec, load_sweep, parse_sweep
from trainforge.sweeps.store import SweepStore, TrialRecord

__all__ = [
    "Param",
    "SweepResult",
    "SweepSpec",
    "SweepStore",
    "TrialRecord",
    "load_sweep",
    "parse_sweep",
    "print_summary",
    "report_metrics",
    "run_sweep",
]
