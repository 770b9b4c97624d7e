"""``trainforge`` command line: ``train`` (the main job) and ``presets``.

``trainforge train`` with no arguments trains the ``tiny`` GPT on the embedded default corpus (the Python
standard library's own source, byte-level), prints the results table and the run directory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Keys of a run file that are not TrainingConfig fields.
_SECTIONS = ("preset", "model", "data", "task")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trainforge", description="Train custom PyTorch models.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model (default: tiny GPT on the embedded corpus)")
    train.add_argument("--config", help="YAML/JSON run file: TrainingConfig fields plus model:, data:, preset:")
    train.add_argument("--preset", help="training preset (see `trainforge presets`)")
    train.add_argument("overrides", nargs="*", help="key=value overrides, e.g. epochs=3 model.n_layer=4")
    train.add_argument("--nproc", type=int, default=None,
                       help="train with N processes (DDP): re-runs this command under torchrun --standalone")
    sub.add_parser("presets", help="list training and model presets")
    from trainforge.export.cli import add_export_parser  # argparse only; onnx etc. load when exporting

    add_export_parser(sub)
    from trainforge.cli.runs import add_runs_parser  # argparse only; the database loads when used

    add_runs_parser(sub)
    from trainforge.cli.jobs import add_jobs_parser  # argparse only, like the others
    from trainforge.cli.sweep import add_sweep_parser

    add_sweep_parser(sub)
    add_jobs_parser(sub)
    args, unknown = parser.parse_known_args(argv)
    from trainforge.errors import TrainforgeError

    try:
        if args.command == "presets":
            return _presets()
        if args.command in ("export", "runs", "sweep", "jobs"):
            return int(args.handler(args))
        if args.nproc is not None and args.nproc > 1:
            from trainforge.distributed.launch import launched_by_torchrun, relaunch, strip_nproc

            if not launched_by_torchrun():
                return relaunch(args.nproc, strip_nproc(list(argv) if argv is not None else sys.argv[1:]))
        return _train(args.config, args.preset, [*args.overrides, *unknown])
    except TrainforgeError as exc:
        print(f"trainforge: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.command == "train":
            from trainforge.distributed.env import shutdown

            shutdown()  # leave the process group of a torchrun launch (no-op in one process)


def _presets() -> int:
    from trainforge.config import list_presets
    from trainforge.models import MODEL_PRESETS

    print("Training presets:")
    for name, text in list_presets().items():
        print(f"  {name:10s} {text}")
    print("Model presets:")
    for name, values in MODEL_PRESETS.items():
        print(f"  {name:10s} {values}")
    return 0


def load_run_spec(config: str | None, preset: str | None, overrides: list[str]) -> dict[str, Any]:
    """Merge preset → run file → overrides into one dict with ``training``, ``model``, ``data`` keys."""
    from trainforge.config import get_preset, parse_overrides
    from trainforge.config.io import read_mapping
    from trainforge.errors import ConfigError

    spec: dict[str, Any] = {}
    if config:
        if not Path(config).is_file():
            raise ConfigError([f"--config: file not found, got {config!r}. Fix: give the path of a YAML or JSON "
                               "run file (e.g. one written by TrainingConfig.save)."], what="command line")
        spec = dict(read_mapping(config))
    _deep_update(spec, parse_overrides(overrides))
    name = preset or spec.pop("preset", None) or "tiny"
    spec.pop("preset", None)
    training = dict(get_preset(name))
    training.update({k: v for k, v in spec.items() if k not in _SECTIONS})
    return {"training": training, "model": spec.get("model") or {}, "data": spec.get("data") or {},
            "task": spec.get("task") or {}, "preset": name, "source": config or "the command line"}


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


def _train(config: str | None, preset: str | None, overrides: list[str]) -> int:
    from trainforge.cli.runspec import train_spec

    results = train_spec(load_run_spec(config, preset, overrides), say=print if _is_main() else None)
    _print_results(results)
    return 0


def _is_main() -> bool:
    """Rank 0 of a torchrun launch, or a single process: the one that prints."""
    import os

    return os.environ.get("RANK", "0") == "0"


def _print_results(results: dict[str, Any]) -> None:
    if not _is_main():
        return
    print()
    print(results["metrics_summary"].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nbest epoch: {results['best_epoch']}   run directory: {results['run_dir']}")
    if results["checkpoint_paths"]:
        print(f"checkpoints: {', '.join(results['checkpoint_paths'])}")


if __name__ == "__main__":
    raise SystemExit(main())
