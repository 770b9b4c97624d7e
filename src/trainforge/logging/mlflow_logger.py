"""MLflow backend, by default into a local file store. ``mlflow`` is imported only when an :class:`MLflowLogger` is built.

The tracking URI is, in order: the ``tracking_uri`` argument, ``MLFLOW_TRACKING_URI``, else
``file:<run_dir parent>/mlruns`` (a local store beside the run directories; view it with
``mlflow ui --backend-store-uri <that dir>``). MLflow >= 3.7 refuses new file stores unless
``MLFLOW_ALLOW_FILE_STORE=true``; this logger sets that (if unset) when it uses a ``file:`` store.

It talks to MLflow through an ``MlflowClient`` and its own run id, never through the global "active
run", so a run the user started themselves is left alone. Config → params (flattened, ``training.lr``)
plus a ``config.json`` artifact; step and epoch values → metrics (step metrics buffered, sent at each epoch end) (epoch rows as ``epoch/<key>`` when the
key is also a step metric, like the TensorBoard backend); summary → ``summary.json`` artifact, numeric
entries as ``summary/<key>`` metrics, and the run ends FINISHED (FAILED when closed without a summary).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from trainforge.logging.base import MID_EPOCH
from trainforge.logging.csv_logger import to_jsonable
from trainforge.logging.tensorboard_logger import STEP_KEYS, _number

__all__ = ["MLFLOW_MISSING_MESSAGE", "MLflowLogger", "default_tracking_uri"]

MLFLOW_MISSING_MESSAGE = (
    "MLflow logging needs the 'mlflow' package: pip install mlflow-skinny (or mlflow) "
    "(or remove 'mlflow' from loggers; metrics are always written to metrics.csv in the run directory)"
)
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")
_MAX_PARAM = 500
_FLUSH_AT = 500  # buffered step metrics are sent at each epoch end, and whenever this many are waiting


def default_tracking_uri(run_dir: str | os.PathLike[str]) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``file:<run_dir parent>/mlruns``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return "file:" + str(Path(run_dir).resolve().parent / "mlruns")


def _remember_run_dir(client: Any, experiment_id: str, run_id: str) -> None:
    """Make a file store look this run's directory up once instead of once per metric value.

    MLflow's ``FileStore`` finds the run directory for every metric value it appends, with two directory listings
    of the store root (about half of the ~0.4 ms CPU per 8-metric log line). The run's directory cannot move while
    the run is live, so the answer for this run is kept; other runs, and stores that are not file stores (no
    ``_get_run_dir``), go through MLflow unchanged. Not public MLflow API, hence the defensive lookups: if MLflow
    changes it, this does nothing and logging stays correct, only slower.
    """
    store: Any = getattr(getattr(client, "_tracking_client", None), "store", None)
    lookup = getattr(store, "_get_run_dir", None)
    if not callable(lookup):
        return
    try:
        path = lookup(experiment_id, run_id)
    except Exception:  # an unexpected signature: leave the store as it is
        return
    if not path:
        return

    def run_dir(exp_id: Any, run_uuid: Any) -> Any:
        return path if (str(exp_id), run_uuid) == (str(experiment_id), run_id) else lookup(exp_id, run_uuid)

    store._get_run_dir = run_dir


def _key(name: str) -> str:
    return _BAD_CHARS.sub("_", name)


def _flatten(d: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    value = to_jsonable(d)
    out[_key(prefix[:-1])] = str(value)[:_MAX_PARAM]
    return out


class MLflowLogger:
    """Log one MLflow run: params + config artifact, step/epoch metrics, summary, status.

    Args:
        run_dir: the trainforge run directory (default store location, and the run's ``run_dir`` tag).
        experiment: MLflow experiment name (created when missing).
        run_name: the MLflow run name.
        tracking_uri: where the store is (see module doc for the default).
        tags: extra run tags.

    Raises:
        ImportError: mlflow is not installed.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        experiment: str = "trainforge",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        uri = tracking_uri or default_tracking_uri(run_dir)
        if uri.startswith("file:") or "://" not in uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            from mlflow.entities import Metric, Param
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise ImportError(MLFLOW_MISSING_MESSAGE) from exc
        self._Metric, self._Param = Metric, Param
        self.tracking_uri = uri
        self.client: Any = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)
        run_tags = {"trainforge.run_dir": str(Path(run_dir).resolve()), **(tags or {})}
        self.run_id: str = self.client.create_run(experiment_id, run_name=run_name, tags=run_tags).info.run_id
        _remember_run_dir(self.client, experiment_id, self.run_id)
        self._step_keys: set[str] = set(STEP_KEYS)
        self._summarised = False
        self._closed = False
        self._pending: list[Any] = []  # step metrics, sent in batches (a file store writes a file per metric)

    def _metrics(self, values: dict[str, Any], step: int, rename: bool = False) -> None:
        now = int(time.time() * 1000)
        metrics = []
        for key, value in values.items():
            number = _number(value)
            if number is None or key in ("epoch", "step") and rename:
                continue
            name = f"epoch/{key}" if rename and key in self._step_keys else key
            if not rename:
                self._step_keys.add(key)
            metrics.append(self._Metric(_key(name), number, now, int(step)))
        self._pending.extend(metrics)
        if len(self._pending) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Send the buffered metrics (MLflow takes at most 1000 per call)."""
        while self._pending:
            batch, self._pending = self._pending[:1000], self._pending[1000:]
            self.client.log_batch(self.run_id, metrics=batch)

    def log_config(self, config: dict[str, Any]) -> None:
        """Flattened params (values cut to 500 characters) and the whole config as ``config.json``."""
        params = [self._Param(k, v) for k, v in _flatten(config).items()]
        for i in range(0, len(params), 100):  # MLflow's batch limit is 100 params
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        self.client.log_dict(self.run_id, to_jsonable(config), "config.json")

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        """Step metrics at ``step``; a mid-epoch validation row's ``val/`` values join the epoch rows' series."""
        if metrics.get(MID_EPOCH):
            self._metrics({k: v for k, v in metrics.items() if k.startswith("val/")}, step, rename=True)
            return
        self._metrics(metrics, step)

    def log_epoch(self, row: dict[str, Any], step: int) -> None:
        """Epoch metrics at ``step`` (the epoch number is the step's; a file store cannot hold a metric ``epoch``
        next to the ``epoch/`` folder)."""
        self._metrics(row, step, rename=True)
        self.flush()

    def log_summary(self, summary: dict[str, Any]) -> None:
        """``summary.json`` artifact and ``summary/<key>`` metrics for the numeric entries."""
        self.client.log_dict(self.run_id, to_jsonable(summary), "summary.json")
        step = summary.get("global_step")
        step = step if isinstance(step, int) else 0
        self._metrics({f"summary/{k}": v for k, v in summary.items()}, step)
        self.flush()
        self._summarised = True

    def close(self) -> None:
        """End the run (FINISHED after a summary, else FAILED); calling again is fine."""
        if self._closed:
            return
        self._closed = True
        self.flush()
        self.client.set_terminated(self.run_id, status="FINISHED" if self._summarised else "FAILED")
