"""Generation speed of the built-in GPT with and without its key/value cache: tokens/s at 256 new tokens, CPU.

    python benchmarks/bench_generate.py [--pairs 5] [--new-tokens 256] [--threads 1]
                                        [--out benchmarks/results/generate.md]

The model is the ``bench`` preset (4 layers, d_model 192, 1.85M parameters) with ``max_seq_len=512``, so that a
16-token prompt plus 256 new tokens fits the context (past it, both paths recompute the last window and the cache
cannot help). Greedy decoding (``temperature=0``), so both paths must produce the same tokens: checked every pair.

The machine may be shared with other work, so the two are measured as interleaved pairs (cache, no cache, cache,
...; the order alternates per pair) and reported as medians and as the median of the per-pair ratios, with the
load average before and after (a busy neighbour slows both runs of a pair alike, not the ratio).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trainforge import generate  # noqa: E402
from trainforge.models import build_model  # noqa: E402

PROMPT_LEN = 16


def timed(model: torch.nn.Module, prompt: torch.Tensor, new_tokens: int, use_cache: bool) -> tuple[float, torch.Tensor]:
    started = time.perf_counter()
    out = generate(model, prompt, new_tokens, temperature=0, use_cache=use_cache)
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the markdown summary here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, cfg = build_model("bench", max_seq_len=PROMPT_LEN + args.new_tokens)
    model.eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, PROMPT_LEN), generator=torch.Generator().manual_seed(0))
    timed(model, prompt, 8, True), timed(model, prompt, 8, False)  # warm-up (kernels, allocator)
    load_before = os.getloadavg()[0]
    cached_s, plain_s, ratios = [], [], []
    for i in range(args.pairs):
        order = (True, False) if i % 2 == 0 else (False, True)
        runs = {use: timed(model, prompt, args.new_tokens, use) for use in order}
        assert torch.equal(runs[True][1], runs[False][1]), "the cache changed the greedy tokens"
        cached_s.append(runs[True][0])
        plain_s.append(runs[False][0])
        ratios.append(runs[False][0] / runs[True][0])
        print(f"pair {i + 1}: cache {args.new_tokens / runs[True][0]:8.1f} tok/s   no cache "
              f"{args.new_tokens / runs[False][0]:8.1f} tok/s   ratio {ratios[-1]:.2f}x", flush=True)
    load_after = os.getloadavg()[0]
    n = args.new_tokens
    lines = [
        f"# Generation: built-in GPT with and without the KV cache ({n} new tokens, CPU)",
        "",
        f"Command: `python benchmarks/bench_generate.py --pairs {args.pairs} --new-tokens {n} --threads "
        f"{args.threads}`",
        f"Model: `bench` preset, max_seq_len={PROMPT_LEN + n}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M "
        f"params; prompt {PROMPT_LEN} tokens, greedy; torch {torch.__version__}, {args.threads} thread(s), "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average {load_before:.1f} before, "
        f"{load_after:.1f} after (a machine shared with other developers).",
        "",
        "| | median s per run | median tokens/s |",
        "|---|---|---|",
        f"| KV cache | {statistics.median(cached_s):.3f} | {n / statistics.median(cached_s):.1f} |",
        f"| no cache (window recomputed) | {statistics.median(plain_s):.3f} | {n / statistics.median(plain_s):.1f} |",
        "",
        f"Speed-up with the cache: median of {args.pairs} per-pair ratios **{statistics.median(ratios):.2f}x** "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}x; goal >= 5x). Same tokens in every pair.",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
