"""A trial that runs the user's own script (W&B's ``program`` / ``command``), as the W&B agent would.

The contract, for a script to be a sweep's trial:

* **In**: the command runs with the W&B agent's arguments: ``${args}`` is ``--key=value`` per parameter (dotted
  names stay dotted, ``--model.n_layer=2``; values are written as JSON, strings as they are). The working
  directory is the sweep file's directory. The environment has ``TRAINFORGE_TRIAL_DIR`` (the trial's own
  directory: write files there), ``TRAINFORGE_TRIAL_NUMBER``, ``TRAINFORGE_SWEEP_NAME`` and
  ``TRAINFORGE_SWEEP_METRIC``.
* **Out**: the script prints its metrics to standard output as JSON objects, one line per epoch, e.g.
  ``print(json.dumps({"epoch": 1, "val/loss": 2.31}), flush=True)``; a script that trains with trainforge calls
  ``trainforge.sweeps.report_metrics(results)``, which prints its ``metrics_summary`` rows that way. Other lines
  are ordinary output. The trial's value is the best value of the sweep's metric over those rows, so every row
  is also what a pruner (Optuna Hyperband / median, Ray ASHA) sees: a pruned trial's process is stopped
  (SIGTERM) and recorded as pruned.
* A script that exits with a non-zero code fails the trial (its last output lines are the error); one that never
  prints the metric fails it with the fix.

Everything the script writes to stdout/stderr goes to the trial's ``train.log``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trainforge.errors import TrainforgeError
from trainforge.sweeps.spec import SweepSpec


class ScriptFailed(TrainforgeError):
    """The trial's script exited with a non-zero code."""


def arg_value(value: Any) -> str:
    """How a parameter value is written on the command line: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def expand_command(words: Sequence[str], params: dict[str, Any], trial_dir: Path) -> list[str]:
    """The W&B agent's macros expanded for one trial (``${program}`` was made absolute when the file was read)."""
    out: list[str] = []
    for word in words:
        if word == "${env}":
            continue  # W&B's `/usr/bin/env`: the environment is passed directly
        if word == "${interpreter}":
            out.append(sys.executable)
        elif word == "${args}":
            out += [f"--{k}={arg_value(v)}" for k, v in params.items()]
        elif word == "${args_no_hyphens}":
            out += [f"{k}={arg_value(v)}" for k, v in params.items()]
        elif word == "${args_no_boolean_flags}":
            out += [f"--{k}" if v is True else f"--{k}={arg_value(v)}" for k, v in params.items() if v is not False]
        elif word == "${args_json}":
            out.append(json.dumps(params))
        elif word == "${args_json_file}":
            path = trial_dir / "params.json"
            path.write_text(json.dumps(params), encoding="utf-8")
            out.append(str(path))
        else:
            out.append(word)
    return out


def metrics_row(line: str) -> dict[str, Any] | None:
    """The metrics of one output line: the numbers of a JSON object holding at least one finite number, else
    None."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    row = {str(k): v for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return row if any(math.isfinite(v) for v in row.values()) else None


def report_metrics(results: dict[str, Any], file: Any = None) -> None:
    """Print ``results['metrics_summary']`` (a trainforge run's) as the JSON lines a script trial reports."""
    stream = file or sys.stdout
    for row in results["metrics_summary"].to_dict(orient="records"):
        clean = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        print(json.dumps({k: v for k, v in clean.items() if not (isinstance(v, float) and math.isnan(v))}),
              file=stream, flush=True)


class ScriptState:
    """What callbacks (pruners, the lost-job watch, Ray reports) see of a script trial: its rows so far."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []
        self.stop_requested = False
        self.stop_reason: str | None = None
        self.global_step = 0

    def request_stop(self, reason: str = "stopped") -> None:
        self.stop_requested = True
        self.stop_reason = reason


def run_script_trial(spec: SweepSpec, number: int, params: dict[str, Any], run_dir: Path,
                     callbacks: Sequence[Any] = (),
                     on_epoch: Callable[[list[dict[str, Any]]], None] | None = None) -> dict[str, Any]:
    """Run the sweep's command for trial ``number``; returns ``{history, stop_reason, epochs_completed}``."""
    assert spec.command is not None
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = expand_command(spec.command, params, run_dir)
    env = {**os.environ, "TRAINFORGE_TRIAL_DIR": str(run_dir), "TRAINFORGE_TRIAL_NUMBER": str(number),
           "TRAINFORGE_SWEEP_NAME": spec.name, "TRAINFORGE_SWEEP_METRIC": spec.metric, "PYTHONUNBUFFERED": "1"}
    print(f"[sweep] trial {number} runs: {' '.join(argv)}", flush=True)
    state = ScriptState()
    tail: deque[str] = deque(maxlen=20)
    proc = subprocess.Popen(argv, cwd=spec.workdir or None, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            tail.append(line.rstrip("\n"))
            state.global_step += 1
            row = metrics_row(line)
            if row is not None:
                row.setdefault("epoch", len(state.history) + 1)
                state.history.append(row)
                if on_epoch is not None:
                    on_epoch(list(state.history))
                _fire(callbacks, "on_epoch_end", state)
            _fire(callbacks, "on_step_end", state)
            if state.stop_requested:
                proc.terminate()
                break
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
    sys.stdout.flush()
    if code != 0 and not state.stop_requested:
        last = "\n".join(tail)
        raise ScriptFailed(f"{' '.join(argv)} exited with code {code}; its last output lines:\n{last}")
    return {"history": state.history, "stop_reason": state.stop_reason, "epochs_completed": len(state.history)}


def _fire(callbacks: Sequence[Any], name: str, state: ScriptState) -> None:
    for cb in callbacks:
        method = getattr(cb, name, None)
        if method is not None:
            method(state)
