"""``trainforge jobs submit | list | worker | cancel``: the persistent SQLite job queue (``trainforge.jobs``).

    trainforge jobs submit --priority 5 train --preset tiny epochs=1
    trainforge jobs submit export runs/r/checkpoints/best.pt --out bundle
    trainforge jobs submit sweep-trial --sweep sweep.yaml --params learning_rate=0.003
    trainforge jobs worker --until-empty
The queue file is ``--queue`` (default ``$TRAINFORGE_QUEUE`` or ``trainforge-jobs.db``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

DEFAULT_QUEUE = "trainforge-jobs.db"


def add_jobs_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("jobs", help="persistent job queue: submit | list | worker | cancel",
                                   allow_abbrev=False)
    parser.add_argument("--queue", default=os.environ.get("TRAINFORGE_QUEUE", DEFAULT_QUEUE),
                        help=f"queue file (default: $TRAINFORGE_QUEUE or {DEFAULT_QUEUE})")
    sub = parser.add_subparsers(dest="jobs_command", required=True)
    submit = sub.add_parser("submit", help="queue a train, export or sweep-trial job")
    submit.add_argument("kind", choices=("train", "export", "sweep-trial"))
    submit.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    submit.add_argument("--max-attempts", type=int, default=3, help="attempts before the job fails (default 3)")
    submit.add_argument("--sweep", help="sweep-trial: the sweep file whose base config the trial uses")
    submit.add_argument("--params", nargs="*", default=[], help="sweep-trial: key=value parameters")
    submit.add_argument("args", nargs=argparse.REMAINDER,
                        help="train: [--config F] [--preset P] key=value ...; export: trainforge export arguments")
    listing = sub.add_parser("list", help="list jobs")
    listing.add_argument("--status", default=None, help="only jobs with this status")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    worker = sub.add_parser("worker", help="claim and run jobs")
    worker.add_argument("--until-empty", action="store_true", help="exit when nothing is left to claim")
    worker.add_argument("--max-jobs", type=int, default=None)
    worker.add_argument("--lease", type=float, default=60.0, help="lease seconds, renewed by heartbeats")
    worker.add_argument("--kinds", nargs="*", default=None, help="only these job kinds")
    cancel = sub.add_parser("cancel", help="cancel queued or running jobs")
    cancel.add_argument("ids", nargs="+", type=int)
    parser.set_defaults(handler=run_jobs_command)
    return parser


def run_jobs_command(args: argparse.Namespace) -> int:
    from trainforge.jobs import JobQueue

    queue = JobQueue(args.queue)
    if args.jobs_command == "submit":
        payload = _payload(args)
        job_id = queue.submit(args.kind, payload, priority=args.priority, max_attempts=args.max_attempts)
        trial = f", trial {payload['trial']}" if args.kind == "sweep-trial" else ""
        print(f"submitted job {job_id} ({args.kind}{trial}, priority {args.priority}) to {args.queue}")
        return 0
    if args.jobs_command == "list":
        jobs = queue.list(status=args.status)
        if args.json:
            for job in jobs:
                print(json.dumps({k: v for k, v in vars(job).items() if k != "payload"} | {"payload": job.payload}))
            return 0
        print(f"{'id':>4}  {'kind':11s} {'prio':>4}  {'status':9s} {'tries':5s} {'age':>7s}  worker / error")
        now = time.time()
        for job in jobs:
            note = job.worker or ""
            if job.error:
                note = f"{note} {job.error.splitlines()[0]}".strip()
            print(f"{job.id:>4}  {job.kind:11s} {job.priority:>4}  {job.status:9s} "
                  f"{job.attempts}/{job.max_attempts:<3d} {now - job.created_at:>6.0f}s  {note}")
        return 0
    if args.jobs_command == "worker":
        from trainforge.jobs import run_worker

        ran = run_worker(args.queue, until_empty=args.until_empty, max_jobs=args.max_jobs, lease_s=args.lease,
                         kinds=args.kinds)
        print(f"worker ran {ran} job(s)")
        return 0
    for job_id in args.ids:
        print(f"job {job_id}: {'cancelled' if queue.cancel(job_id) else 'not queued or running, unchanged'}")
    return 0


def _payload(args: argparse.Namespace) -> dict[str, Any]:
    from trainforge.errors import ConfigError

    rest = [a for a in args.args if a != "--"]
    if args.kind == "export":
        from trainforge.export.cli import add_export_parser

        check = argparse.ArgumentParser(prog="trainforge jobs submit", add_help=False, allow_abbrev=False)
        add_export_parser(check.add_subparsers(dest="command"))
        check.parse_args(["export", *rest])  # unknown or missing arguments fail now (exit 2), not in the worker
        return {"argv": rest}
    if args.kind == "train":
        from trainforge.cli.train_args import split_train_args
        from trainforge.config import TrainingConfig
        from trainforge.runspec import load_run_spec

        options, overrides = split_train_args(rest)
        parser = argparse.ArgumentParser(prog="trainforge jobs submit train", add_help=False, allow_abbrev=False)
        parser.add_argument("--config")
        parser.add_argument("--preset")
        known = parser.parse_args(options)  # --nproc (not for queue jobs) is an error here
        # A bad file, override or TrainingConfig value fails now, with the CLI's message, not in the worker.
        run = load_run_spec(known.config, known.preset, overrides)
        try:
            TrainingConfig.from_dict(run["training"])
        except ConfigError as exc:
            raise ConfigError(exc.problems, what=f"jobs submit train (from {run['source']})") from exc
        return {"config": os.path.abspath(known.config) if known.config else None, "preset": known.preset,
                "overrides": overrides}
    extra = argparse.ArgumentParser(prog="trainforge jobs submit sweep-trial", add_help=False, allow_abbrev=False)
    extra.add_argument("--sweep", default=args.sweep)
    extra.add_argument("--params", nargs="*", default=list(args.params))
    args.sweep, args.params = (lambda ns: (ns.sweep, ns.params))(extra.parse_args(rest))
    if not args.sweep:
        raise ConfigError(["--sweep: a sweep-trial job needs the sweep file. Fix: --sweep sweep.yaml "
                           "--params key=value ..."], what="jobs submit")
    from trainforge.config import parse_overrides
    from trainforge.runspec import apply_params
    from trainforge.sweeps import load_sweep

    spec = load_sweep(args.sweep)
    flat = _flatten(parse_overrides(args.params))
    unknown = sorted(set(flat) - set(spec.parameters))
    if unknown:
        raise ConfigError([f"--params: {unknown} are not parameters of {args.sweep} "
                           f"({sorted(spec.parameters)})."], what="jobs submit")
    params = {name: flat.get(name, p.samples()[0]) for name, p in spec.parameters.items()}
    apply_params(spec.base_run, params)
    from trainforge.sweeps.store import SweepStore

    # The number comes from the sweep's own store, in a write transaction: unique among the sweep's trials and
    # every other submission, so no two trials share a directory or a run name.
    number = SweepStore(spec.output_dir).allocate_number("submitted")
    return {"sweep": spec.to_dict(), "trial": number, "params": params,
            "sweep_dir": os.path.abspath(spec.output_dir)}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
