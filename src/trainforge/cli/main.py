"""``trainforge`` command line: ``train`` (the main job), ``generate``, ``presets`` and the others below.

``trainforge train`` with no arguments trains the ``tiny`` GPT on the embedded default corpus (the Python
standard library's own source, byte-level), prints the results table, the run directory, a short sample from the
trained model and the path of its loss plot.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from trainforge.cli.train_args import split_train_args
from trainforge.runspec import load_run_spec, train_spec  # load_run_spec re-exported: tests import it from here

__all__ = ["load_run_spec", "main", "split_train_args"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trainforge", description="Train custom PyTorch models.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model (default: tiny GPT on the embedded corpus)")
    train.add_argument("--config", help="YAML/JSON run file: TrainingConfig fields plus model:, data:, preset:")
    train.add_argument("--preset", help="training preset (see `trainforge presets`)")
    train.add_argument("overrides", nargs="*",
                       help="overrides: key=value, --key=value or --key value, e.g. epochs=3 --model.n_layer 4")
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
    from trainforge.cli.generate import add_generate_parser
    from trainforge.cli.prepare import add_prepare_parser  # argparse only; numpy/tokenizers load when preparing

    add_prepare_parser(sub)
    add_generate_parser(sub)
    from trainforge.cli.evaluate import add_evaluate_parser

    add_evaluate_parser(sub)
    words = list(argv) if argv is not None else sys.argv[1:]
    if words[:1] == ["train"]:
        # Overrides are free-form (key=value, --key=value, --key value: the forms the W&B agent passes), so
        # argparse only sees the options; the rest stays in order for parse_overrides, which reports bad items.
        options, overrides = split_train_args(words[1:])
        args = parser.parse_args(["train", *options])
    else:  # every other subcommand: an unknown argument is an error (argparse's usage message, exit code 2)
        args = parser.parse_args(words)
        overrides = list(getattr(args, "overrides", None) or [])
    from trainforge.errors import TrainforgeError

    trained = False  # only a finished run waits for its peers before leaving the process group
    try:
        if args.command == "presets":
            return _presets()
        if args.command in ("export", "runs", "sweep", "jobs", "prepare", "generate", "evaluate"):
            return int(args.handler(args))
        if args.nproc is not None and args.nproc > 1:
            from trainforge.distributed.launch import launched_by_torchrun, relaunch, strip_nproc

            if not launched_by_torchrun():
                return relaunch(args.nproc, strip_nproc(words))
        code = _train(args.config, args.preset, overrides)
        trained = True
        return code
    except TrainforgeError as exc:
        print(f"trainforge: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.command == "train":
            from trainforge.distributed.env import shutdown

            # Leave the process group of a torchrun launch (no-op in one process). After an error, a peer may be
            # gone or stuck in a collective: waiting for it would hang, so only a finished run waits.
            shutdown(wait_for_peers=trained)


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


def _train(config: str | None, preset: str | None, overrides: list[str]) -> int:
    spec = load_run_spec(config, preset, overrides)
    results = train_spec(spec, say=print if _is_main() else None)
    _print_results(results)
    if _is_main():
        _show_what_was_learned(spec, results)
    return 0


def _show_what_was_learned(spec: dict[str, Any], results: dict[str, Any]) -> None:
    """The end of the main job: the final weights recorded for `trainforge generate`, a short sample, the plot."""
    import warnings

    from trainforge.cli.generate import record_final_model, sample_after_training

    try:  # the run is trained and its results printed: nothing here may turn it into a failure
        weights = record_final_model(spec, results)
        sample = sample_after_training(spec, results)
    except Exception as exc:
        warnings.warn(f"Recording the final weights or sampling failed: {type(exc).__name__}: {exc}", stacklevel=2)
        weights, sample = None, None
    if sample is not None:
        print(f"\nsample (temperature 0.8, top-k 40):\n{sample}\n")
    if weights is not None:
        print(f"final weights: {weights}   (more text: trainforge generate {results['run_dir']} --prompt '...')")
    plots = results.get("plot_paths") or []
    if plots:
        print(f"loss plot: {plots[0]}")
    else:
        print("loss plot: none (install matplotlib: pip install 'trainforge[plots]')")


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
