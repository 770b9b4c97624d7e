"""The validation sets of a run: ``val_data`` (one set, or a dict of named sets) as ``{name: loader}``.

``val_data`` may be one set in any form ``as_dataset`` accepts (its metrics are logged as ``val/loss``...), or a dict
of named sets ``{"wiki": ds1, "code": ds2}``, each in any of those forms (logged as ``val/wiki/loss``,
``val/code/loss``...). One unnamed set has the name ``""`` (:data:`UNNAMED`); :func:`metric_key` spells a metric's
logged name either way. Each set is capped at ``max_val_samples``, and in distributed runs each is sharded with its
own :class:`EvalShardSampler` (every sample once over all ranks), so the summed metrics equal one process's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from trainforge.data.inputs import as_dataset, limit_samples
from trainforge.distributed.sampling import EvalShardSampler
from trainforge.errors import DataError

if TYPE_CHECKING:
    from trainforge.config import TrainingConfig
    from trainforge.distributed.env import DistEnv
    from trainforge.tasks import TaskSpec

__all__ = ["UNNAMED", "metric_key", "set_names", "val_datasets", "val_loaders"]

#: The name of the one validation set of a run whose ``val_data`` is not a dict.
UNNAMED = ""


def metric_key(set_name: str, metric: str) -> str:
    """The logged name of ``metric`` on a validation set: ``val/<metric>``, or ``val/<set>/<metric>`` for a named
    set."""
    return f"val/{set_name}/{metric}" if set_name else f"val/{metric}"


def set_names(val_data: Any) -> list[str]:
    """The validation sets' names, checked: ``[UNNAMED]`` for one set, the dict's keys (in order) for named sets."""
    if not isinstance(val_data, Mapping):
        return [UNNAMED]
    if not val_data:
        raise DataError("val_data is an empty dict. Fix: name at least one validation set, e.g. "
                        "val_data={'wiki': wiki_val}, or pass val_data=None for no validation.")
    bad = [name for name in val_data if not isinstance(name, str) or not name or "/" in name or name != name.strip()]
    if bad:
        raise DataError(f"val_data: validation set names must be non-empty strings without '/' or surrounding spaces "
                        f"(they become part of the metric names, val/<name>/loss), got {bad!r}. Fix: e.g. "
                        "val_data={'wiki': wiki_val, 'code': code_val}.")
    missing = [name for name, data in val_data.items() if data is None]
    if missing:
        raise DataError(f"val_data: the validation set(s) {missing!r} are None. Fix: pass data for each named set, "
                        "or leave the name out.")
    return list(val_data)


def val_datasets(val_data: Any, task: TaskSpec, what: str = "val_data") -> dict[str, Dataset[Any] | DataLoader[Any]]:
    """``{name: dataset or the user's DataLoader}`` for ``val_data`` (one set or a dict of named sets)."""
    names = set_names(val_data)
    if names == [UNNAMED]:
        return {UNNAMED: as_dataset(val_data, task, what)}
    return {name: as_dataset(val_data[name], task, f"{what}[{name!r}]") for name in names}


def val_loaders(
    sets: Mapping[str, Dataset[Any] | DataLoader[Any]],
    cfg: TrainingConfig,
    dist_env: DistEnv,
    make_loader: Callable[[Dataset[Any], Sampler[int] | None], Any],
) -> dict[str, Any]:
    """``{name: loader}``: a user's DataLoader as it is; a dataset capped at ``max_val_samples`` and loaded by
    ``make_loader(dataset, sampler)`` (the run's collator and ``eval_batch_size``), sharded over the ranks of a
    distributed run."""
    loaders: dict[str, Any] = {}
    for name, val in sets.items():
        if isinstance(val, DataLoader):
            loaders[name] = val
            continue
        val = limit_samples(val, cfg.max_val_samples)
        sampler = None
        if dist_env.enabled and not isinstance(val, IterableDataset):
            n_val = len(val)  # type: ignore[arg-type]
            if dist_env.sharded and n_val < dist_env.world_size:
                label = "val_data" if not name else f"val_data[{name!r}]"
                raise DataError(f"strategy='fsdp' evaluates in lock step (the sharded forward is collective), so each "
                                f"of the {dist_env.world_size} processes needs a validation sample, but {label} has "
                                f"{n_val}. Fix: use at least {dist_env.world_size} validation samples, or no "
                                "validation.")
            # every sample once over all ranks (no padding): the summed metrics equal one process's
            sampler = EvalShardSampler(n_val, dist_env.rank, dist_env.world_size)
        loaders[name] = make_loader(val, sampler)
    return loaders
