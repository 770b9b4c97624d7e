"""``trainforge runs list | show RUN | compare RUN RUN ...``: the experiment database from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_runs_parser", "run_runs"]


def add_runs_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``runs`` subcommand (with ``list``, ``show``, ``compare``) to ``subparsers``."""
    runs = subparsers.add_parser("runs", help="list, show and compare recorded runs (the SQLite experiment database)")
    runs.add_argument("--db", help="database file or the folder holding trainforge_runs.db (default: runs/)")
    sub = runs.add_subparsers(dest="runs_command", required=True)
    lst = sub.add_parser("list", help="one line per run")
    lst.add_argument("--status", choices=["running", "finished", "failed", "interrupted"])
    show = sub.add_parser("show", help="one run: status, config, results and its epochs")
    show.add_argument("run", help="run name, run directory, unique name prefix, or id as #12")
    cmp = sub.add_parser("compare", help="a table of several runs, optionally a PNG of their curves")
    cmp.add_argument("runs", nargs="+", help="two or more runs (name, run directory, or id as #12)")
    cmp.add_argument("--metrics", nargs="+", help="metrics to compare (default: every metric of the last epoch)")
    cmp.add_argument("--plot", help="write the curves of these runs to this PNG file")
    runs.set_defaults(handler=run_runs)
    return runs


def _table(df: Any) -> str:
    if df.empty:
        return "(no runs)"
    return str(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def run_runs(args: argparse.Namespace) -> int:
    """Run ``trainforge runs ...``; 0 on success, 1 when the database or a run is missing."""
    from trainforge.tracking.api import compare_runs, list_runs, load_run

    try:
        if args.runs_command == "list":
            print(_table(list_runs(args.db, status=args.status)))
        elif args.runs_command == "show":
            _show(load_run(args.run, args.db))
        else:
            print(_table(compare_runs(args.runs, args.db, metrics=args.metrics, plot=args.plot)))
            if args.plot:
                print(f"\nplot: {args.plot}")
    except (FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"trainforge runs: error: {message}", file=sys.stderr)
        return 1
    return 0


def _show(run: dict[str, Any]) -> None:
    head = ["id", "name", "status", "task", "task_type", "run_dir", "wall_time_s", "training_time_s",
            "epochs_completed", "global_step", "best_epoch", "best_metric", "monitor", "final_loss",
            "best_checkpoint", "export_dir", "error"]
    for key in head:
        if run.get(key) is not None:
            print(f"{key:18s} {run[key]}")
    if run.get("checkpoint_paths"):
        print(f"{'checkpoints':18s} {', '.join(run['checkpoint_paths'])}")
    telemetry = (run.get("telemetry") or {}).get("telemetry")
    if telemetry:
        print(f"{'telemetry':18s} {json.dumps(telemetry, default=str)}")
    config = run.get("config") or {}
    if config:
        print("config:")
        for key, value in config.items():
            print(f"  {key} = {value!r}")
    print("epochs:")
    print(_table(run["metrics_summary"]))
