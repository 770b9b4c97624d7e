"""Search spaces: grid enumeration, seeded random sampling, and applying a trial's parameters to a run spec.

Pure functions. Random trial ``i`` draws from its own ``random.Random`` seeded by ``(seed, i)``, so a trial's
parameters do not depend on which worker runs it or on how often the sweep was resumed.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from typing import Any

from trainforge.sweeps.spec import Param, SweepSpec


def grid(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of the listed values, in file order (the last parameter varies fastest)."""
    names = list(spec.parameters)
    choices = [p.values if p.kind == "values" else [p.value] for p in spec.parameters.values()]
    return [dict(zip(names, combo)) for combo in itertools.product(*choices)]


def sample(param: Param, rng: random.Random) -> Any:
    """One draw of ``param``."""
    if param.kind == "value":
        return param.value
    if param.kind == "values":
        return param.values[rng.randrange(len(param.values))]
    assert param.low is not None and param.high is not None
    if param.distribution == "int_uniform":
        return rng.randint(int(param.low), int(param.high))
    if param.distribution == "log_uniform":
        return math.exp(rng.uniform(math.log(param.low), math.log(param.high)))
    return rng.uniform(float(param.low), float(param.high))


def random_params(spec: SweepSpec, number: int) -> dict[str, Any]:
    """The parameters of random trial ``number`` (deterministic for a given seed)."""
    rng = random.Random(f"trainforge-sweep-{spec.seed}-{number}")
    return {name: sample(p, rng) for name, p in spec.parameters.items()}


def trial_params(spec: SweepSpec) -> list[dict[str, Any] | None]:
    """The parameters of each of the sweep's ``n_trials`` trials; None where the sampler decides at run time
    (optuna)."""
    if spec.method == "grid":
        return list(grid(spec)[: spec.n_trials])
    if spec.method == "random":
        return [random_params(spec, i) for i in range(spec.n_trials)]
    return [None] * spec.n_trials


def apply_params(base_run: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of the run spec with the parameters set: plain names are TrainingConfig fields, dotted names go
    into ``model`` / ``data`` / ``task`` (a ``module:function`` model cannot take keys)."""
    run = copy.deepcopy(base_run)
    for name, value in params.items():
        section, _, key = name.partition(".")
        if not key:
            run["training"][name] = value
            continue
        target = run.get(section)
        if not isinstance(target, dict):
            target = {} if target is None else target
            if not isinstance(target, dict):
                raise ValueError(f"parameter {name!r}: {section} is {target!r}, which takes no keys")
            run[section] = target
        node = target
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return run
