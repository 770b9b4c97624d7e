"""The keys of a W&B sweep file that trainforge's own schema does not have: each honoured, or named in the one
warning a sweep gives at start-up.

* ``program`` / ``command``: the trial runs the user's script (see :mod:`trainforge.sweeps.script`) with the
  W&B agent's macros: ``${env}``, ``${interpreter}``, ``${program}``, ``${args}`` (``--key=value`` per parameter),
  ``${args_no_hyphens}`` (``key=value``), ``${args_no_boolean_flags}``, ``${args_json}`` and ``${args_json_file}``.
  The default command is W&B's, ``${env} ${interpreter} ${program} ${args}``. A command that runs trainforge's
  own CLI (``trainforge train ...`` / ``python -m trainforge train ...``, or ``program: trainforge``) is the
  built-in trial: its fixed arguments (``--preset=tiny``, ``--epochs=2``) become the base run's values.
* ``early_terminate: {type: hyperband, min_iter, max_iter, eta}``: Optuna's ``HyperbandPruner`` for
  ``method: optuna`` / ``bayes``, ASHA for ``backend: ray``; epochs are the resource. Grid and random search on the
  local backend have no pruner: the warning says so.
* ``project`` / ``entity``: the trials' ``wandb_project`` / ``wandb_entity`` (used when ``use_wandb`` is on).
* ``description``: printed when the sweep starts.
* ``metric.target``, ``controller``: not supported; named in the warning.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainforge.errors import bounded_repr

MACROS = ("${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}", "${args_no_boolean_flags}",
          "${args_json}", "${args_json_file}")
DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
IGNORED_KEYS = ("controller",)
_MACRO = re.compile(r"\$\{[^}]*\}")


@dataclass
class WandbKeys:
    """What the W&B keys of a sweep file mean here."""

    command: list[str] | None = None  # a user script's command (macros kept; ${program} made absolute); None: built-in
    workdir: str | None = None  # where the script runs: the directory the sweep file was read from
    trainforge_args: list[str] = field(default_factory=list)  # fixed args of a `trainforge train` command
    pruner: dict[str, Any] | None = None  # from early_terminate (optuna)
    asha: dict[str, Any] | None = None  # from early_terminate (ray)
    training: dict[str, Any] = field(default_factory=dict)  # wandb_project / wandb_entity for the trials
    description: str | None = None
    ignored: list[str] = field(default_factory=list)  # named in the start-up warning


def parse_wandb_keys(data: dict[str, Any], method: str, backend: str, base_dir: Path,
                     problems: list[str]) -> WandbKeys:
    """Read ``program``, ``command``, ``early_terminate``, ``project``, ``entity``, ``description`` (and note the
    unsupported ones); each problem goes to ``problems``."""
    out = WandbKeys()
    _command(data.get("program"), data.get("command"), base_dir, out, problems)
    _early_terminate(data.get("early_terminate"), data.get("pruner"), method, backend, out, problems)
    for key, name in (("project", "wandb_project"), ("entity", "wandb_entity")):
        value = data.get(key)
        if value is not None:
            if isinstance(value, str) and value:
                out.training[name] = value
            else:
                problems.append(f"{key}: the W&B {key} must be a name, got {bounded_repr(value)}.")
    description = data.get("description")
    out.description = str(description) if description is not None else None
    metric = data.get("metric")
    if isinstance(metric, dict) and "target" in metric:
        out.ignored.append("metric.target (the sweep runs all its trials)")
    out.ignored += [f"{key} (W&B's own controller; trials are scheduled here)" for key in IGNORED_KEYS if key in data]
    return out


def ignored_warning(keys: WandbKeys) -> str | None:
    """The one start-up warning naming every W&B key this sweep does not honour, or None."""
    if not keys.ignored:
        return None
    return "this sweep file has W&B keys trainforge does not honour: " + "; ".join(keys.ignored) + "."


# ------------------------------------------------------------------------------------------------ program/command

def _trainforge_args(words: list[str]) -> list[str] | None:
    """The fixed arguments of ``train`` when ``words`` run trainforge's CLI (``trainforge train ...``,
    ``python -m trainforge train ...``, ``${interpreter} -m trainforge train ...``), else None."""
    plain = [w for w in words if w != "${env}"]
    if plain[:2] == ["trainforge", "train"]:
        rest = plain[2:]
    elif plain[1:4] == ["-m", "trainforge", "train"]:
        rest = plain[4:]
    else:
        return None
    return [w for w in rest if not _MACRO.fullmatch(w)]


def _command(program: Any, command: Any, base_dir: Path, out: WandbKeys, problems: list[str]) -> None:
    if program is None and command is None:
        return
    if program is not None and (not isinstance(program, str) or not program.strip()):
        problems.append(f"program: expected the path of the training script, got {bounded_repr(program)}. Fix: e.g. "
                        "program: train.py.")
        return
    if command is not None and (not isinstance(command, list) or not command
                                or not all(isinstance(w, str) for w in command)):
        problems.append(f"command: expected a list of strings (W&B's form), got {bounded_repr(command)}. Fix: e.g. "
                        "command: ['${env}', '${interpreter}', '${program}', '${args}'].")
        return
    words = list(command) if command is not None else list(DEFAULT_COMMAND)
    unknown = sorted({m for w in words for m in _MACRO.findall(w) if m not in MACROS})
    if unknown:
        problems.append(f"command: unknown macros {unknown}. Fix: use {', '.join(MACROS)}.")
        return
    if program == "trainforge" and command is None:
        return  # W&B's default command around trainforge's CLI: the built-in trial
    fixed = _trainforge_args(words)
    if fixed is not None:  # trainforge's own CLI: the built-in trial, with the command's fixed arguments
        out.trainforge_args = fixed
        return
    if "${program}" in words:
        if program is None:
            problems.append("command: uses ${program} but the sweep file has no program. Fix: add program: "
                            "train.py (the script the agent runs), or write its path into the command.")
            return
        found = next((p for p in (base_dir / program, Path(program)) if p.is_file()), None)
        if found is None:
            problems.append(f"program: {program!r} not found (looked next to the sweep file and in the current "
                            "directory). Fix: give the path of the training script, relative to the sweep file.")
            return
        words = [str(found.resolve()) if w == "${program}" else w for w in words]
        if found.suffix != ".py":  # as the W&B agent does: ${interpreter} is Python's, for Python programs only
            words = [w for w in words if w != "${interpreter}"]
    elif shutil.which(words[0]) is None and not Path(base_dir / words[0]).is_file() and not _MACRO.fullmatch(words[0]):
        problems.append(f"command: {words[0]!r} is not a program found on PATH or next to the sweep file. Fix: give "
                        "the script as program: and ${program} in the command.")
        return
    out.command = words
    out.workdir = str(base_dir.resolve())


# ------------------------------------------------------------------------------------------------ early_terminate

def _positive_int(spec: dict[str, Any], key: str, problems: list[str], default: int | None) -> int | None:
    value = spec.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        problems.append(f"early_terminate.{key}: must be a positive integer (epochs), got {bounded_repr(value)}.")
        return default
    return value


def _early_terminate(spec: Any, pruner: Any, method: str, backend: str, out: WandbKeys,
                     problems: list[str]) -> None:
    if spec is None:
        return
    if not isinstance(spec, dict) or spec.get("type") != "hyperband":
        problems.append(f"early_terminate: only W&B's {{type: hyperband, min_iter, max_iter, eta}} is supported, got "
                        f"{bounded_repr(spec)}. Fix: use type: hyperband, or pruner: for Optuna's pruners.")
        return
    unknown = sorted(set(spec) - {"type", "min_iter", "max_iter", "eta", "s", "strict"})
    if unknown:
        problems.append(f"early_terminate: unknown keys {unknown}. Fix: use min_iter, max_iter, eta (and s).")
        return
    if pruner is not None:
        problems.append("early_terminate and pruner: both say how to stop poor trials. Fix: keep one of them.")
        return
    min_iter = _positive_int(spec, "min_iter", problems, 1) or 1
    max_iter = _positive_int(spec, "max_iter", problems, None)
    eta = _positive_int(spec, "eta", problems, 3) or 3
    if max_iter is not None and min_iter > max_iter:
        problems.append(f"early_terminate: min_iter ({min_iter}) is above max_iter ({max_iter}). Fix: min_iter <= "
                        "max_iter (both in epochs).")
        return
    if eta < 2:
        problems.append(f"early_terminate.eta: must be at least 2, got {eta}.")
        eta = 3
    if "s" in spec or "strict" in spec:
        out.ignored.append("early_terminate.s/strict (the bracket count follows from min_iter, max_iter and eta)")
    if backend == "ray":
        out.asha = {"grace_period": min_iter, "reduction_factor": eta, "max_t": max_iter}
    elif method == "optuna":
        out.pruner = {"type": "hyperband", "min_resource": min_iter,
                      "max_resource": max_iter if max_iter is not None else "auto", "reduction_factor": eta}
    else:
        out.ignored.append(f"early_terminate (method {method} on the local backend has no pruner; use method: "
                           "bayes/optuna, or backend: ray for ASHA)")
