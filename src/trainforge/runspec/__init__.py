"""Run specs: a run file (preset → file → overrides) as one dict, and building and training what it names.

Used by the CLI, queue jobs and sweeps; it imports none of them (layers import downward only:
cli → sweeps → jobs → runspec → trainer). ``spec`` merges and edits the dict, ``metrics`` says what it will log,
``model`` builds its model, ``train`` (with ``tokens`` for prepared token folders) trains it.
"""

from trainforge.runspec.metrics import BASE_METRICS, logged_metrics, task_of_run
from trainforge.runspec.model import build_model_from_spec
from trainforge.runspec.spec import SECTIONS, apply_params, deep_update, import_function, load_run_spec
from trainforge.runspec.train import train_spec

__all__ = [
    "BASE_METRICS",
    "SECTIONS",
    "apply_params",
    "build_model_from_spec",
    "deep_update",
    "import_function",
    "load_run_spec",
    "logged_metrics",
    "task_of_run",
    "train_spec",
]
