"""``trainforge export CHECKPOINT [--formats onnx,torchscript,safetensors] [--out DIR]``.

Register with ``add_export_parser(subparsers)`` and dispatch ``args.command == "export"`` to
``run_export(args)``; ``main(argv)`` runs it on its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["add_export_parser", "main", "run_export"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file written by trainforge (e.g. runs/<run>/checkpoints/last.pt)")
    parser.add_argument(
        "--formats",
        default=None,
        help="comma-separated: onnx,torchscript,safetensors (default: the run's export_formats, else onnx,torchscript)",
    )
    parser.add_argument("--out", default=None, help="bundle directory (default: exports/<run_name>)")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    parser.add_argument("--tolerance", type=float, default=None, help="max abs difference vs eager (default 1e-4)")


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``export`` sub-command to ``subparsers`` (from ``parser.add_subparsers()``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX / TorchScript / safetensors with a checked, standalone bundle",
        description="Export a trainforge checkpoint into a bundle: model files, configs, inference.py, manifest.",
    )
    _configure(parser)
    parser.set_defaults(handler=run_export)
    return parser


def run_export(args: argparse.Namespace) -> int:
    """Run ``trainforge export``; 0 when every format passed, 1 when some failed, 2 on an error."""
    from trainforge.errors import TrainforgeError
    from trainforge.export.from_checkpoint import export_checkpoint

    kwargs: dict[str, Any] = {}
    if getattr(args, "tolerance", None) is not None:
        kwargs["tolerance"] = args.tolerance
    try:
        manifest = export_checkpoint(
            args.checkpoint,
            formats=args.formats,
            out_dir=args.out,
            measure_latency=not getattr(args, "no_latency", False),
            **kwargs,
        )
    except (TrainforgeError, ValueError, TypeError) as exc:
        print(f"trainforge export: error: {exc}", file=sys.stderr)
        return 2
    out_dir = manifest.get("bundle_dir", "")
    for fmt, rec in manifest["formats"].items():
        parity = rec.get("parity") or {}
        diff = parity.get("max_abs_diff")
        detail = f"max abs diff {diff:.2e}" if isinstance(diff, float) else ""
        method = f" via {rec['method']}" if rec.get("method") else ""
        line = f"  {fmt:12s} {rec['status']:7s} {rec.get('file') or '-':22s}{method} {detail}".rstrip()
        print(line)
        if rec["status"] != "ok":
            print(f"    error: {rec.get('error')}")
    print(f"bundle: {out_dir}")
    return 0 if not manifest["failed"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trainforge export", description="Export a trainforge checkpoint.")
    _configure(parser)
    return run_export(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
