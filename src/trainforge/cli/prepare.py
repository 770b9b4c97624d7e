"""``trainforge prepare TEXT... --tokenizer byte|char|bpe|DIR --out DIR [--val-fraction F] [--workers N]``.

Tokenises text files once into memory-mapped token files (see :mod:`trainforge.data.prepare`); a run file then
trains on them with ``data: {tokens: DIR}``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["add_prepare_parser", "run_prepare"]


def add_prepare_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``prepare`` sub-command to ``subparsers`` (from ``parser.add_subparsers()``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "prepare",
        help="tokenise text files once into memory-mapped token files (train.bin, val.bin, meta.json)",
        description="Tokenise text files (a folder: every .txt under it) into DIR/train.bin and DIR/val.bin, with "
                    "DIR/meta.json and DIR/tokenizer/. Streaming (constant memory) and parallel. Train on the result "
                    "with a run file holding `data: {tokens: DIR}`.",
    )
    parser.add_argument("inputs", nargs="+", metavar="TEXT", help="text files or folders of .txt files")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--tokenizer", default="byte",
                        help="byte (UTF-8 bytes, no training), char (one id per character seen), bpe (byte-level BPE "
                             "trained on the text) or the folder of a saved tokenizer (default: byte)")
    parser.add_argument("--val-fraction", type=float, default=0.1, metavar="F",
                        help="the last fraction F of each file goes to val.bin (default 0.1; 0: no val.bin)")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8), metavar="N",
                        help="encoding processes; the output is identical for any N (default: the CPU count, at most 8)")
    parser.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary size (default 4096)")
    parser.add_argument("--chunk-bytes", type=int, default=1 << 20, help=argparse.SUPPRESS)  # tests, benchmarks
    parser.set_defaults(handler=run_prepare)
    return parser


def run_prepare(args: argparse.Namespace) -> int:
    """Run ``trainforge prepare``; 0 on success, 2 on an error (the message says what to fix)."""
    from trainforge.data.prepare import prepare
    from trainforge.errors import TrainforgeError

    try:
        prepare(args.inputs, args.out, tokenizer=args.tokenizer, val_fraction=args.val_fraction,
                workers=args.workers, vocab_size=args.vocab_size, chunk_bytes=args.chunk_bytes, say=print)
    except TrainforgeError as exc:
        print(f"trainforge prepare: error: {exc}", file=sys.stderr)
        return 2
    return 0
