"""Search spaces: grid points and seeded random sampling (a trial's parameters are set in its run spec by
:func:`trainforge.runspec.apply_params`, re-exported here).

Pure functions, lazy: trial ``i``'s parameters are computed from ``i`` alone (a grid point by its index, a random
draw by its seed), so no sweep ever materialises its trials. Random trial ``i`` draws from its own ``random.Random`` seeded by ``(seed, i)``, so a trial's
parameters do not depend on which worker runs it or on how often the sweep was resumed.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from typing import Any

from trainforge.runspec.spec import apply_params  # re-exported: a trial's parameters set in its run spec
from trainforge.sweeps.spec import Param, SweepSpec

__all__ = ["apply_params", "grid", "grid_point", "params_of_trial", "random_params", "sample", "trial_params"]


def grid_point(spec: SweepSpec, index: int) -> dict[str, Any]:
    """Point ``index`` of the grid in file order (the last parameter varies fastest), computed from the index
    alone (mixed-radix digits), so a grid of 10^12 points costs nothing until a trial asks for its point."""
    out: dict[str, Any] = {}
    for name, p in reversed(spec.parameters.items()):
        choices = p.values if p.kind == "values" else [p.value]
        index, digit = divmod(index, len(choices))
        out[name] = choices[digit]
    return {name: out[name] for name in spec.parameters}


def grid(spec: SweepSpec) -> Iterator[dict[str, Any]]:
    """Every combination of the listed values, in file order (the last parameter varies fastest), lazily."""
    names = list(spec.parameters)
    choices = [p.values if p.kind == "values" else [p.value] for p in spec.parameters.values()]
    return (dict(zip(names, combo)) for combo in itertools.product(*choices))


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


def params_of_trial(spec: SweepSpec, number: int) -> dict[str, Any] | None:
    """The parameters of the sweep's own trial ``number`` (0 .. n_trials-1); None where the sampler decides at
    run time (optuna). Constant time and memory for any grid size or ``n_trials``."""
    if spec.method == "grid":
        return grid_point(spec, number)
    if spec.method == "random":
        return random_params(spec, number)
    return None


def trial_params(spec: SweepSpec, start: int = 0) -> Iterator[dict[str, Any] | None]:
    """The parameters of each of the sweep's ``n_trials`` trials from ``start`` on, one at a time (a generator:
    nothing is built before it is asked for)."""
    return (params_of_trial(spec, number) for number in range(start, spec.n_trials))
