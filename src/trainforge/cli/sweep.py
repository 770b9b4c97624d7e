"""``trainforge sweep SWEEP.yaml``: run or resume a hyperparameter sweep (see ``trainforge.sweeps.spec``)."""

from __future__ import annotations

import argparse
from typing import Any

SHOWN = 20  # trials --validate prints


def add_sweep_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("sweep", help="run or resume a hyperparameter sweep from a YAML file")
    parser.add_argument("sweep_file", help="sweep YAML (method, metric, parameters, n_trials, parallel, ...)")
    parser.add_argument("--parallel", type=int, default=None, help="worker processes (overrides the file)")
    parser.add_argument("--n-trials", type=int, default=None, help="number of trials (overrides the file)")
    parser.add_argument("--backend", choices=("local", "ray"), default=None, help="overrides the file")
    parser.add_argument("--dir", default=None, help="sweep directory (default: sweeps/<name>)")
    parser.add_argument("--validate", action="store_true", help="only check the file and print the trials")
    parser.set_defaults(handler=run_sweep_command)
    return parser


def run_sweep_command(args: argparse.Namespace) -> int:
    from trainforge.sweeps import load_sweep, print_summary, run_sweep

    spec = load_sweep(args.sweep_file, parallel=args.parallel, n_trials=args.n_trials, output_dir=args.dir,
                      backend=args.backend)
    if args.validate:
        import itertools

        from trainforge.sweeps.space import trial_params

        print(f"{args.sweep_file}: valid; method {spec.method}, {spec.n_trials} trials, parallel {spec.parallel}, "
              f"backend {spec.backend}, metric {spec.metric} ({spec.goal})")
        if spec.command is not None:
            print(f"  each trial runs: {' '.join(spec.command)}")
        # Trials are made one at a time: the first few are shown, never the whole (possibly huge) list.
        for number, params in enumerate(itertools.islice(trial_params(spec), SHOWN)):
            print(f"  trial {number}: {params if params is not None else '(chosen by the optuna sampler)'}")
        if spec.n_trials > SHOWN:
            print(f"  ... and {spec.n_trials - SHOWN} more")
        return 0
    result = run_sweep(spec)
    print_summary(result)
    return 0
