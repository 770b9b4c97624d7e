"""Inference latency of an exported trainforge GPT: eager PyTorch vs TorchScript vs ONNX Runtime, batch 1 and 8.

Run (from the repository root)::

    python benchmarks/bench_export.py --quick                # tiny GPT, a few seconds
    python benchmarks/bench_export.py                        # tiny GPT, more iterations
    python benchmarks/bench_export.py --preset bench --seq-len 128 --out exports/bench   # keep the bundle

The model is exported with :func:`trainforge.export.export_bundle` (ONNX + TorchScript, each checked against the
eager model); then every backend runs the same int64 ``input_ids`` ``[batch, seq_len]`` in this process, after
warm-up, and the median wall time per forward is reported. The numbers are also written into the bundle's
``manifest.json`` under ``latency`` (replacing the quick measurement ``export_bundle`` takes itself).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from trainforge import TaskSpec
from trainforge.export import export_bundle
from trainforge.export.latency import measure_latency
from trainforge.models.gpt import build_model

BACKENDS = ("eager", "torchscript", "onnxruntime")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", help="GPT model preset (tiny, small, bench, bench_tiny)")
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default: min(64, max_seq_len))")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a few seconds in all)")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads for torch and ONNX Runtime alike (default 1: stable on a shared machine)")
    parser.add_argument("--out", default=None, help="keep the bundle here (default: a temporary directory)")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, config = build_model(args.preset)
    model.eval()
    seq_len = args.seq_len or min(64, config.max_seq_len)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    task = TaskSpec.language_modeling(name=f"gpt-{args.preset}", vocab_size=config.vocab_size,
                                      max_seq_len=config.max_seq_len)

    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "bundle"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            manifest = export_bundle(model, task, out, ("onnx", "torchscript"), measure_latency=False)
        for fmt, rec in manifest["formats"].items():
            diff = (rec.get("parity") or {}).get("max_abs_diff")
            print(f"export {fmt:12s} {rec['status']:6s} via {rec.get('method')}, {rec['seconds']:.1f}s, "
                  f"max abs diff vs eager {diff}")

        gen = torch.Generator().manual_seed(0)
        inputs = {b: (torch.randint(0, config.vocab_size, (b, seq_len), generator=gen),) for b in batch_sizes}
        latency = measure_latency(
            model,
            lambda b: inputs[b],
            ["input_ids"],
            onnx_path=out / "model.onnx" if manifest["formats"]["onnx"]["status"] == "ok" else None,
            torchscript_path=out / "model.torchscript.pt" if manifest["formats"]["torchscript"]["status"] == "ok" else None,
            batch_sizes=batch_sizes,
            iters=15 if args.quick else 100,
            budget_s=0.5 if args.quick else 5.0,
        )
        latency.update(preset=args.preset, seq_len=seq_len, quick=args.quick, source="benchmarks/bench_export.py")

        manifest["latency"] = latency
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")

    print(f"\nGPT preset {args.preset!r} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params), "
          f"seq_len {seq_len}, torch threads {latency['threads']}, median ms per forward"
          + (" (quick)" if args.quick else ""))
    header = f"{'backend':<12}" + "".join(f"{'batch ' + str(b):>12}" for b in batch_sizes)
    print(header)
    print("-" * len(header))
    for backend in BACKENDS:
        row = latency.get(backend)
        if not isinstance(row, dict):
            continue
        if "error" in row and not any(row.get(f"batch_{b}") for b in batch_sizes):
            print(f"{backend:<12}  error: {row['error']}")
            continue
        cells = "".join(f"{row.get(f'batch_{b}') or float('nan'):>12.3f}" for b in batch_sizes)
        print(f"{backend:<12}{cells}")
    if args.out:
        print(f"\nbundle (manifest latency updated): {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
