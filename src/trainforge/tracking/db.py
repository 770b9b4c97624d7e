"""The experiment database: one SQLite file that records every training run.

By default it is ``<run_dir parent>/trainforge_runs.db`` (``runs/trainforge_runs.db`` for the default run
directories), so all runs under one folder share one database. Each run is one row of ``runs`` keyed by its
run directory (a resumed run is the same row), plus one row per epoch in ``epochs``:

* ``runs``: id, name, run_dir, status (``running`` → ``finished`` | ``failed`` | ``interrupted``), task name
  and type, the resolved training config, task spec and model config (JSON), started/ended timestamps and
  durations, epochs and steps done, best epoch/metric, final loss, checkpoint paths, best checkpoint,
  export dir, the scalar results (JSON), telemetry (JSON), the error of a failed run, host, versions.
* ``epochs``: (run_id, epoch) → step and the epoch row's metrics (JSON).
* ``evals``: (run_id, step) → epoch and the row of a mid-epoch validation (``eval_every_n_steps``; JSON).

Every write opens its own short connection (30 s busy timeout), so parallel runs (a sweep) can share a file,
and no handle stays open in a training process. A database error is warned about once and recording is
switched off for that run: a broken database must never cost a trained model.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainforge.logging.base import MID_EPOCH
from trainforge.logging.csv_logger import to_jsonable

if TYPE_CHECKING:
    import sqlite3

    import pandas as pd

__all__ = ["DB_FILENAME", "STATUSES", "RunDB", "RunTracker", "default_db_path"]

DB_FILENAME = "trainforge_runs.db"
STATUSES = ("running", "finished", "failed", "interrupted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    run_dir TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    task TEXT,
    task_type TEXT,
    config TEXT,
    task_spec TEXT,
    model_config TEXT,
    started_at REAL,
    ended_at REAL,
    wall_time_s REAL,
    training_time_s REAL,
    epochs_completed INTEGER,
    global_step INTEGER,
    best_epoch INTEGER,
    best_metric REAL,
    monitor TEXT,
    final_loss REAL,
    checkpoint_paths TEXT,
    best_checkpoint TEXT,
    export_dir TEXT,
    results TEXT,
    telemetry TEXT,
    error TEXT,
    host TEXT,
    trainforge_version TEXT
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    step INTEGER,
    metrics TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS evals (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    epoch INTEGER,
    metrics TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX IF NOT EXISTS runs_name ON runs(name);
"""

_JSON_COLUMNS = ("config", "task_spec", "model_config", "checkpoint_paths", "results", "telemetry")
# Columns of RunDB.runs(), in order.
_LIST_COLUMNS = ["id", "name", "status", "task", "started", "wall_time_s", "epochs_completed", "global_step",
                 "best_epoch", "best_metric", "monitor", "final_loss", "run_dir"]


def default_db_path(run_dir: str | os.PathLike[str]) -> Path:
    """``<run_dir parent>/trainforge_runs.db``."""
    return Path(run_dir).resolve().parent / DB_FILENAME


def _dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), allow_nan=True)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class RunDB:
    """Read and write the experiment database at ``path`` (created on first use).

    Example::

        db = RunDB("runs/trainforge_runs.db")
        db.runs()                      # DataFrame: one row per run, newest last
        db.run("exp-1")                # dict: every column, JSON decoded
        db.epochs("exp-1")             # DataFrame: the run's per-epoch metrics
        db.compare(["exp-1", "exp-2"]) # DataFrame: final/best metrics and the config fields that differ

    A run is named by its id (an int, or ``"#12"``), its name (the newest run of that name), its run directory,
    or a unique prefix of its name. A name made of digits is a name: when it is also another run's id, the
    lookup is refused with both runs listed (write ``"#12"`` for the id).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDB({str(self.path)!r})"

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction (committed on success), with the schema in place."""
        import sqlite3

        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=30.0)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            conn.executescript(_SCHEMA)
            with conn:
                yield conn
        finally:
            conn.close()

    # ------------------------------------------------------------------ writing
    def start_run(
        self,
        name: str,
        run_dir: str | os.PathLike[str],
        *,
        config: dict[str, Any] | None = None,
        task_spec: dict[str, Any] | None = None,
        model_config: Any = None,
        version: str | None = None,
    ) -> int:
        """Insert (or, for the same run directory, reset to ``running``) the run's row; return its id."""
        run_dir = str(Path(run_dir).resolve())
        task = task_spec or {}
        values = {
            "name": name, "run_dir": run_dir, "status": "running", "task": task.get("name"),
            "task_type": task.get("task_type"), "config": _dumps(config), "task_spec": _dumps(task_spec),
            "model_config": _dumps(model_config), "started_at": time.time(), "ended_at": None, "error": None,
            "host": socket.gethostname(), "trainforge_version": version,
        }
        with self.connect() as conn:
            row = conn.execute("SELECT id FROM runs WHERE run_dir = ?", (run_dir,)).fetchone()
            if row is None:
                cols = ", ".join(values)
                marks = ", ".join("?" for _ in values)
                cur = conn.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", tuple(values.values()))
                return int(cur.lastrowid or 0)
            sets = ", ".join(f"{k} = ?" for k in values)
            conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*values.values(), row["id"]))
            return int(row["id"])

    def log_epoch(self, run_id: int, row: dict[str, Any]) -> None:
        """Store one epoch row (re-logging an epoch replaces it and drops later ones, as after a resume)."""
        epoch = row.get("epoch")
        if not isinstance(epoch, int):
            return
        step = row.get("step")
        with self.connect() as conn:
            conn.execute("DELETE FROM epochs WHERE run_id = ? AND epoch >= ?", (run_id, epoch))
            conn.execute("INSERT INTO epochs (run_id, epoch, step, metrics) VALUES (?, ?, ?, ?)",
                         (run_id, epoch, step if isinstance(step, int) else None, _dumps(row)))

    def log_eval(self, run_id: int, step: int, row: dict[str, Any]) -> None:
        """Store one mid-epoch validation row (re-logging a step replaces it and drops later ones, as after a
        resume)."""
        epoch = row.get("epoch")
        with self.connect() as conn:
            conn.execute("DELETE FROM evals WHERE run_id = ? AND step >= ?", (run_id, step))
            conn.execute("INSERT INTO evals (run_id, step, epoch, metrics) VALUES (?, ?, ?, ?)",
                         (run_id, step, epoch if isinstance(epoch, int) else None, _dumps({"step": step, **row})))

    def finish_run(
        self,
        run_id: int,
        status: str,
        results: dict[str, Any] | None = None,
        *,
        error: str | None = None,
        telemetry: dict[str, Any] | None = None,
    ) -> None:
        """Set the final status and what ``results`` holds (paths, best epoch, scalars)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        res = results or {}
        scalars = {k: v for k, v in res.items() if v is None or isinstance(v, (bool, int, float, str))}
        values: dict[str, Any] = {"status": status, "ended_at": time.time(), "error": error}
        if results is not None:
            values.update({
                "training_time_s": _finite(res.get("training_time_s")),
                "epochs_completed": res.get("epochs_completed"),
                "global_step": res.get("global_step"),
                "best_epoch": res.get("best_epoch"),
                "best_metric": _finite(res.get("best_metric")),
                "final_loss": _finite(res.get("final_loss")),
                "checkpoint_paths": _dumps(res.get("checkpoint_paths") or []),
                "best_checkpoint": res.get("best_checkpoint"),
                "export_dir": res.get("export_dir"),
                "results": _dumps(scalars),
            })
            if res.get("monitor") is not None:
                values["monitor"] = res.get("monitor")
        if telemetry is not None:
            values["telemetry"] = _dumps(telemetry)
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.connect() as conn:
            conn.execute(f"UPDATE runs SET {sets}, wall_time_s = ? - started_at WHERE id = ?",
                         (*values.values(), values["ended_at"], run_id))

    # ------------------------------------------------------------------ reading
    def _resolve(self, conn: sqlite3.Connection, key: str | int) -> sqlite3.Row:
        """The run ``key`` names. An id is an ``int`` or ``"#12"``; a string is a name (the newest run of that
        name), a run directory or a unique name prefix. A string of digits that is both one run's name and
        another run's id is refused with both listed: it never silently means the id."""
        if isinstance(key, int) and not isinstance(key, bool):
            return self._by_id(conn, key, str(key))
        text = str(key)
        if text.startswith("#") and text[1:].isdigit():
            return self._by_id(conn, int(text[1:]), text)
        by_name = conn.execute("SELECT * FROM runs WHERE name = ? ORDER BY id DESC LIMIT 1", (text,)).fetchone()
        by_id = conn.execute("SELECT * FROM runs WHERE id = ?", (int(text),)).fetchone() if text.isdigit() else None
        if by_name is not None and by_id is not None and by_name["id"] != by_id["id"]:
            raise KeyError(
                f"run {text!r} is ambiguous in {self.path}: it is the name of run #{by_name['id']} "
                f"({by_name['run_dir']}) and the id of run #{by_id['id']} named {by_id['name']!r}. Fix: write "
                f"'#{by_id['id']}' for the id, or the run directory {by_name['run_dir']!r} for the named run.")
        row = by_name or conn.execute("SELECT * FROM runs WHERE run_dir = ?",
                                      (str(Path(text).resolve()),)).fetchone() or by_id
        if row is not None:
            return row
        found = conn.execute("SELECT * FROM runs WHERE name LIKE ? ESCAPE '\\' ORDER BY id DESC",
                             (text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",)).fetchall()
        names = sorted({r["name"] for r in found})
        if len(names) == 1:
            return found[0]
        if len(names) > 1:
            raise KeyError(f"run {text!r} is ambiguous in {self.path}: it starts {', '.join(names[:8])}")
        raise KeyError(f"no run {text!r} in {self.path} (give a name, a run directory or an id as '#12'; "
                       "`trainforge runs list` shows them)")

    def _by_id(self, conn: sqlite3.Connection, run_id: int, text: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run with id {text} in {self.path} (`trainforge runs list` shows the ids)")
        return row

    def run(self, key: str | int) -> dict[str, Any]:
        """Every column of one run, JSON columns decoded, plus ``epochs`` (a list of epoch rows) and ``evals`` (the
        mid-epoch validation rows, by step)."""
        with self.connect() as conn:
            row = self._resolve(conn, key)
            out = {k: row[k] for k in row.keys()}  # noqa: SIM118 (iterating a Row gives values)
            epochs = conn.execute("SELECT metrics FROM epochs WHERE run_id = ? ORDER BY epoch",
                                  (row["id"],)).fetchall()
            evals = conn.execute("SELECT metrics FROM evals WHERE run_id = ? ORDER BY step", (row["id"],)).fetchall()
        for col in _JSON_COLUMNS:
            out[col] = _loads(out[col])
        out["epochs"] = [json.loads(e["metrics"]) for e in epochs]
        out["evals"] = [json.loads(e["metrics"]) for e in evals]
        return out

    def runs(self, status: str | None = None) -> pd.DataFrame:
        """One row per run (oldest first): id, name, status, task, started, wall time, epochs, best, run_dir."""
        import pandas as pd

        sql = "SELECT * FROM runs" + (" WHERE status = ?" if status else "") + " ORDER BY id"
        with self.connect() as conn:
            rows = conn.execute(sql, (status,) if status else ()).fetchall()
        records = []
        for r in rows:
            rec = {k: r[k] for k in r.keys()}  # noqa: SIM118 (iterating a Row gives values)
            rec["started"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"])) \
                if r["started_at"] else None
            records.append({c: rec.get(c) for c in _LIST_COLUMNS})
        return pd.DataFrame(records, columns=_LIST_COLUMNS)

    def epochs(self, key: str | int) -> pd.DataFrame:
        """The run's per-epoch metrics (the ``metrics_summary`` of its results)."""
        import pandas as pd

        return pd.DataFrame(self.run(key)["epochs"])

    def evals(self, key: str | int) -> pd.DataFrame:
        """The run's mid-epoch validation rows (``eval_every_n_steps``), one per evaluation step."""
        import pandas as pd

        return pd.DataFrame(self.run(key)["evals"])

    def compare(self, keys: Sequence[str | int], metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per run: status, epochs, best epoch, the last epoch's metrics (or ``metrics``), the best value
        of each ``val/*`` / ``train/loss`` metric over epochs, time, tokens/s, and every config field whose value
        differs between the runs (as ``config.<field>``)."""
        import pandas as pd

        runs = [self.run(k) for k in keys]
        configs = [r["config"] or {} for r in runs]
        all_fields = list(dict.fromkeys(k for c in configs for k in c))
        differing = [f for f in all_fields if len({json.dumps(c.get(f), sort_keys=True) for c in configs}) > 1]
        records = []
        for r, cfg in zip(runs, configs):
            rec: dict[str, Any] = {"id": r["id"], "name": r["name"], "status": r["status"],
                                   "epochs": r["epochs_completed"], "best_epoch": r["best_epoch"]}
            last = r["epochs"][-1] if r["epochs"] else {}
            names = list(metrics) if metrics else [k for k in last if k not in ("epoch", "step", "lr")]
            for m in names:
                rec[m] = last.get(m)
            for m in names:
                # (a NaN epoch is shown in its row, never as the best: min/max with NaN depend on the order)
                series = [e[m] for e in r["epochs"] if isinstance(e.get(m), (int, float)) and math.isfinite(e[m])]
                if series and (m.startswith("val/") or m == "train/loss"):
                    lower = "loss" in m or "perplexity" in m
                    rec[f"best {m}"] = min(series) if lower else max(series)
            rec["training_time_s"] = r["training_time_s"]
            for f in differing:
                value = cfg.get(f)
                rec[f"config.{f}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
            records.append(rec)
        return pd.DataFrame(records)


class RunTracker:
    """Records one training run in a :class:`RunDB`; also a logger backend (its ``log_epoch`` stores the row).

    Built by the trainer on the main process when ``track_runs`` is on. Every database error is warned about
    once (``RuntimeWarning``) and turns recording off for the rest of the run.
    """

    def __init__(self, db: RunDB, run_id: int | None) -> None:
        self.db = db
        self.run_id = run_id
        self._finished = False

    @classmethod
    def start(
        cls,
        db_path: str | os.PathLike[str],
        name: str,
        run_dir: str | os.PathLike[str],
        **fields: Any,
    ) -> RunTracker:
        """Open (create) the database and insert the run as ``running``."""
        tracker = cls(RunDB(db_path), None)
        tracker.run_id = tracker._guard("start", lambda: tracker.db.start_run(name, run_dir, **fields))
        return tracker

    def _guard(self, what: str, fn: Any) -> Any:
        if what != "start" and self.run_id is None:
            return None
        try:
            return fn()
        except Exception as exc:  # sqlite3.Error, OSError (read-only dir, full disk), bad data
            self.run_id = None
            warnings.warn(f"Experiment database {str(self.db.path)!r}: {what} failed ({type(exc).__name__}: {exc}); "
                          "this run is not recorded there. Training continues (metrics.csv has the metrics).",
                          RuntimeWarning, stacklevel=3)
            return None

    def finish(self, status: str, results: dict[str, Any] | None = None, *, error: str | None = None,
               telemetry: dict[str, Any] | None = None) -> None:
        """Record the final status (``finished`` | ``failed`` | ``interrupted``) once."""
        if self._finished:
            return
        self._finished = True
        run_id = self.run_id
        self._guard("finish", lambda: self.db.finish_run(run_id or 0, status, results, error=error,
                                                          telemetry=telemetry))

    # -- the logger protocol --------------------------------------------------------------
    def log_config(self, config: dict[str, Any]) -> None:
        """Nothing: the config was stored at start."""

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        """Store a mid-epoch validation row; nothing for a step line (steps are in steps.jsonl)."""
        if metrics.get(MID_EPOCH):
            run_id = self.run_id
            self._guard("log_eval", lambda: self.db.log_eval(run_id or 0, int(step), metrics))

    def log_epoch(self, row: dict[str, Any], step: int) -> None:
        """Store the epoch row."""
        run_id = self.run_id
        self._guard("log_epoch", lambda: self.db.log_epoch(run_id or 0, row))

    def log_summary(self, summary: dict[str, Any]) -> None:
        """Nothing: :meth:`finish` stores the results."""

    def close(self) -> None:
        """Nothing to release (no connection stays open)."""
