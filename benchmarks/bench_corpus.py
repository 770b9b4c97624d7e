"""Corpora larger than memory: ``trainforge prepare`` speed and memory, and training from a ``TokenFile``.

Run (from the repository root)::

    python benchmarks/bench_corpus.py                          # full run, ~15-25 minutes on 2 busy cores; writes
                                                               # benchmarks/results/corpus.md and corpus.json
    python benchmarks/bench_corpus.py --quick --out-dir /tmp/c # small sizes, 1 repeat (checks the script)

The text is Python's own standard library (every ``.py`` file under ``os.__file__``'s folder that is UTF-8, in
sorted order, each after a ``# ==== path ====`` line, as the embedded default corpus does), repeated to the size
needed. Everything runs on this machine, nothing is downloaded. Cases, side by side in one run:

* (a) ``prepare`` throughput, MB of text per second, ``--workers 2``. Byte tokenizer (200 MB) against
  ``ByteTokenizer.encode`` over the same 1 MiB chunks; BPE (a 4096-token byte-level BPE trained once on the text,
  reused as a saved tokenizer folder so that only encoding is timed) against the tokenizer's own
  ``Tokenizer.encode_batch`` (Rust, its own thread pool on both cores) over the same text in memory, cut into the
  same 1 MiB chunks (5 MB of text). Pairs alternate, medians reported. Goal: BPE prepare >= 0.8x encode_batch.
  Also the whole BPE ``prepare`` with the tokenizer trained (the vocabulary pass), once.
* (b) peak memory of ``trainforge prepare`` on a 200 MB text file (byte; BPE on 20 MB: it encodes at about 1 MB/s
  per core here), ``--workers 2``, a separate process polled every 20 ms from /proc with its workers: the peak
  of the summed PSS (proportional set size: pages
  the forked workers share with the parent are counted once, so this is the memory the command really holds) and
  the peak RSS of the largest process. Goal: <= 400 MB.
* (c) peak RSS (VmRSS polled every 20 ms) of ``trainforge train --config run.yaml`` (the ``tiny`` preset, 20
  steps, ``data: {tokens: DIR}``, ``max_val_samples: 64``) on a 200 MB ``train.bin`` vs a 2 MB one. Goal: <= 1.2x.
* (d) training tokens/s (``batch * (seq - 1)`` per step over the steps after warm-up, step ends taken by a
  callback) of ``Trainer.train`` on ``TokenFile(train.bin)`` vs on the same windows as an in-memory tensor
  ``[N, T]`` (the same samples in the same order), the GPT ``bench`` preset (batch 16 x 128), pairs alternating.
  Goal: >= 0.98x. ``bench_tiny`` (batch 8 x 32, a few ms per step: per-step costs show) is reported too.

The machine is shared (other developers' tests run beside it): the load average is printed with each case, and
ratios come from pairs run back to back.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine_info import describe, load_avg, malloc_note, rerun_with_steady_malloc  # benchmarks/ is on sys.path

from trainforge import TaskSpec, Trainer, TrainingConfig
from trainforge.data import TokenFile
from trainforge.data.prepare import CHUNK_BYTES, plan_chunks, prepare
from trainforge.data.tokenizers import ByteTokenizer, load_tokenizer
from trainforge.models.gpt import GPT, MODEL_PRESETS, GPTConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT_DIR = ROOT / "benchmarks" / "results"
GOALS = {"bpe_ratio": 0.8, "prepare_peak_mb": 400.0, "train_rss_ratio": 1.2, "tokens_ratio": 0.98}


@dataclass(frozen=True)
class Plan:
    big_mb: float  # (a) byte, (b): the text file
    bpe_mb: float  # (a) BPE text
    bpe_memory_mb: float  # (b) BPE text (BPE at ~1 MB/s per core on this shared machine: 200 MB would take an hour)
    token_file_mb: float  # (c), (d): the size of the large train.bin
    small_token_file_mb: float
    train_steps: int  # (c)
    repeats: int  # pairs in (a) and (d)
    speed_steps: int  # (d) timed steps (bench); bench_tiny takes 10x as many
    warmup: int


FULL = Plan(big_mb=200, bpe_mb=5, bpe_memory_mb=20, token_file_mb=200, small_token_file_mb=2, train_steps=20,
            repeats=2, speed_steps=6, warmup=2)
QUICK = Plan(big_mb=4, bpe_mb=1, bpe_memory_mb=1, token_file_mb=4, small_token_file_mb=0.5, train_steps=3,
             repeats=1, speed_steps=3, warmup=1)


# ------------------------------------------------------------------------------------------------------ text
def stdlib_text() -> bytes:
    root = Path(os.__file__).parent
    parts = []
    for path in sorted(root.rglob("*.py")):
        data = path.read_bytes().replace(b"\r\n", b"\n")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        parts.append(f"# ==== {path.relative_to(root)} ====\n".encode() + data)
    return b"".join(parts)


def write_text(path: Path, n_bytes: int, blob: bytes) -> Path:
    """``n_bytes`` of the stdlib text (repeated), cut at a line end."""
    with open(path, "wb") as f:
        left = n_bytes
        while left > 0:
            piece = blob[:left]
            if len(piece) == left:
                piece = piece[: piece.rfind(b"\n") + 1] or piece
                left = len(piece)
            f.write(piece)
            left -= len(piece)
    return path


# ------------------------------------------------------------------------------------------------- (a) speed
def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def byte_baseline(path: Path) -> None:
    tok = ByteTokenizer()
    chunks, _ = plan_chunks([path], 0.0, CHUNK_BYTES)
    with open(path, "rb") as f:
        for c in chunks:
            f.seek(c.start)
            tok.encode(f.read(c.end - c.start).decode("utf-8"))


def throughput(work: Path, text: Path, bpe_text: Path, plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {"load": load_avg()}
    mb = text.stat().st_size / 1e6
    pairs = []
    for i in range(plan.repeats):
        runs = {"prepare": lambda: prepare([text], work / "a_byte", workers=2),
                "ByteTokenizer.encode": lambda: byte_baseline(text)}
        order = list(runs) if i % 2 == 0 else list(runs)[::-1]
        seconds = {name: timed(runs[name]) for name in order}
        pairs.append({k: mb / v for k, v in seconds.items()})
    out["byte"] = {"mb": mb, "pairs": pairs,
                   "prepare_mb_s": statistics.median(p["prepare"] for p in pairs),
                   "baseline_mb_s": statistics.median(p["ByteTokenizer.encode"] for p in pairs)}
    # BPE: train once (the whole prepare, timed once), then encode-only runs with the saved tokenizer
    bpe_mb = bpe_text.stat().st_size / 1e6
    full = prepare([bpe_text], work / "a_bpe_full", tokenizer="bpe", vocab_size=4096, workers=2)
    tok_dir = work / "a_bpe_full" / "tokenizer"
    tok = load_tokenizer(tok_dir).tok
    chunks, _ = plan_chunks([bpe_text], 0.0, CHUNK_BYTES)
    raw = bpe_text.read_bytes()
    pieces = [raw[c.start:c.end].decode("utf-8") for c in chunks]
    del raw
    pairs = []
    for i in range(plan.repeats):
        runs = {"prepare": lambda: prepare([bpe_text], work / "a_bpe", tokenizer=str(tok_dir), workers=2),
                "encode_batch": lambda: tok.encode_batch(pieces, add_special_tokens=False)}
        order = list(runs) if i % 2 == 0 else list(runs)[::-1]
        seconds = {name: timed(runs[name]) for name in order}
        pairs.append({k: bpe_mb / v for k, v in seconds.items()} | {"ratio": seconds["encode_batch"] / seconds["prepare"]})
    out["bpe"] = {"mb": bpe_mb, "pairs": pairs, "prepare_mb_s": statistics.median(p["prepare"] for p in pairs),
                  "baseline_mb_s": statistics.median(p["encode_batch"] for p in pairs),
                  "ratio": statistics.median(p["ratio"] for p in pairs),
                  "with_training_s": full["seconds"], "tokens": full["train_tokens"] + full["val_tokens"]}
    return out


# ------------------------------------------------------------------------------------------------ (b) memory
def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                todo.extend(int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split())
    return out


def _kb(path: str, key: str) -> int:
    with contextlib.suppress(OSError, AttributeError):
        return int(re.search(rf"^{key}:\s+(\d+) kB", Path(path).read_text(), re.M).group(1))  # type: ignore[union-attr]
    return 0


def peak_memory(cmd: list[str]) -> dict[str, float]:
    """Run ``cmd``; poll its process tree every 20 ms: peak summed PSS, peak single RSS (MB), and wait4's maxrss."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_pss = peak_rss = 0
    while proc.poll() is None:
        pids = _tree(proc.pid)
        peak_pss = max(peak_pss, sum(_kb(f"/proc/{p}/smaps_rollup", "Pss") for p in pids))
        peak_rss = max(peak_rss, *(_kb(f"/proc/{p}/status", "VmRSS") for p in pids))
        time.sleep(0.02)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {proc.stderr.read() if proc.stderr else ''}")
    return {"tree_pss_mb": peak_pss / 1024, "largest_rss_mb": peak_rss / 1024}


def prepare_memory(work: Path, text: Path, bpe_text: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"mb": text.stat().st_size / 1e6, "bpe_mb": bpe_text.stat().st_size / 1e6,
                           "load": load_avg()}
    for kind, path in (("byte", text), ("bpe", bpe_text)):
        out[kind] = peak_memory([sys.executable, "-m", "trainforge", "prepare", str(path), "--out",
                                 str(work / f"b_{kind}"), "--tokenizer", kind, "--workers", "2"])
    return out


# ---------------------------------------------------------------------------------------------- (c) train RSS
def train_rss(work: Path, big: Path, small: Path, plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {"load": load_avg()}
    samples: dict[str, list[float]] = {"big": [], "small": []}
    for i in range(1):
        for name in (("big", "small") if i % 2 == 0 else ("small", "big")):
            run = work / f"c_{name}.yaml"
            run.write_text(f"preset: tiny\nepochs: 1\nmax_steps: {plan.train_steps}\nmax_val_samples: 64\n"
                           f"progress_bar: false\noutput_dir: {work / f'c_run_{name}_{i}'}\nmodel: {{preset: tiny}}\n"
                           f"data: {{tokens: {big if name == 'big' else small}}}\n")
            # polled VmRSS, not wait4's ru_maxrss: that one keeps the high-water mark of the forked copy of this
            # (large) process from before the child's exec
            peak = peak_memory([sys.executable, "-m", "trainforge", "train", "--config", str(run)])
            samples[name].append(peak["largest_rss_mb"])
    out.update({name: statistics.median(v) for name, v in samples.items()})
    out["samples"] = samples
    out["ratio"] = out["big"] / out["small"]
    out["big_file_mb"] = (big / "train.bin").stat().st_size / 1e6
    out["small_file_mb"] = (small / "train.bin").stat().st_size / 1e6
    return out


# ----------------------------------------------------------------------------------------- (d) tokens/s
class StepClock:
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_step_end(self, state: Any) -> None:
        self.stamps.append(time.perf_counter())


def train_speed(directory: Path, preset: str, batch: int, seq: int, goal: bool, plan: Plan, work: Path
                ) -> dict[str, Any]:
    tf = TokenFile(directory / "train.bin", seq)
    tokens = np.fromfile(directory / "train.bin", dtype=tf.dtype)[: len(tf) * seq]
    tensor = torch.from_numpy(tokens.astype(np.int64)).view(len(tf), seq)  # the same windows, in memory
    del tokens
    vocab = tf.vocab_size
    timed_steps = plan.speed_steps * (1 if goal else 10)
    repeats = plan.repeats + 1  # pairs, alternating which side runs first
    steps = plan.warmup + timed_steps

    def run(data: Any) -> float:
        torch.manual_seed(0)
        model = GPT(GPTConfig.from_dict({**MODEL_PRESETS[preset], "vocab_size": vocab, "max_seq_len": seq}))
        cfg = TrainingConfig(epochs=1, max_steps=steps, batch_size=batch, progress_bar=False, log_every_n_steps=10_000,
                             output_dir=str(work / "d_run"), overwrite=True, track_runs=False)
        task = TaskSpec.language_modeling(name="bench", vocab_size=vocab, max_seq_len=seq)
        clock = StepClock()
        with contextlib.redirect_stdout(io.StringIO()):
            Trainer(model, model.config, cfg, task, callbacks=[clock]).train(data)
        window = clock.stamps[-1] - clock.stamps[plan.warmup - 1]
        return timed_steps * batch * (seq - 1) / window

    pairs = []
    load = load_avg()
    for i in range(repeats):
        names = ("TokenFile", "tensor") if i % 2 == 0 else ("tensor", "TokenFile")
        got = {name: run(tf if name == "TokenFile" else tensor) for name in names}
        pairs.append({**got, "ratio": got["TokenFile"] / got["tensor"]})
    return {"preset": preset, "batch": batch, "seq": seq, "steps": timed_steps, "goal": goal, "load": load, "pairs": pairs,
            "token_file": statistics.median(p["TokenFile"] for p in pairs),
            "tensor": statistics.median(p["tensor"] for p in pairs),
            "ratio": statistics.median(p["ratio"] for p in pairs)}


# ------------------------------------------------------------------------------------------------ report
def mark(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(r: dict[str, Any], quick: bool) -> str:
    a, b, c = r["throughput"], r["prepare_memory"], r["train_rss"]
    lines = [
        "# Corpora larger than memory: `trainforge prepare` and `TokenFile`", "",
        f"`python benchmarks/bench_corpus.py{' --quick' if quick else ''}` — one run, every case side by side.", "",
        r["machine"], malloc_note(), "- the machine is shared with other developers' test runs: load averages "
        "(1/5/15 min) are given per case; ratios are medians of back-to-back pairs", "",
        f"## (a) prepare throughput, --workers 2 (load {a['load']})", "",
        "| tokenizer | text MB | prepare MB/s | baseline | baseline MB/s | prepare / baseline |", "|---|---|---|---|---|---|",
        f"| byte | {a['byte']['mb']:.0f} | {a['byte']['prepare_mb_s']:.1f} | ByteTokenizer.encode, same chunks | "
        f"{a['byte']['baseline_mb_s']:.1f} | {a['byte']['prepare_mb_s'] / a['byte']['baseline_mb_s']:.2f}x |",
        f"| BPE 4096 (saved) | {a['bpe']['mb']:.0f} | {a['bpe']['prepare_mb_s']:.2f} | tokenizers encode_batch "
        f"(2 threads), in memory | {a['bpe']['baseline_mb_s']:.2f} | **{a['bpe']['ratio']:.2f}x** "
        f"(goal >= {GOALS['bpe_ratio']}x: {mark(a['bpe']['ratio'] >= GOALS['bpe_ratio'])}) |", "",
        f"BPE pairs (prepare / encode_batch): {', '.join(format(p['ratio'], '.2f') for p in a['bpe']['pairs'])}. "
        f"The whole BPE prepare with the tokenizer trained first: vocabulary pass "
        f"{a['bpe']['with_training_s']['vocabulary']:.1f} s + encoding {a['bpe']['with_training_s']['encode']:.1f} s "
        f"for {a['bpe']['mb']:.0f} MB.", "",
        f"## (b) peak memory of `trainforge prepare`, --workers 2 (load {b['load']})",
        "", "| tokenizer | text | peak PSS, whole process tree | largest single RSS | goal <= 400 MB |",
        "|---|---|---|---|---|",
        *(f"| {k} | {b['mb' if k == 'byte' else 'bpe_mb']:.0f} MB | {b[k]['tree_pss_mb']:.0f} MB | "
          f"{b[k]['largest_rss_mb']:.0f} MB | "
          f"{mark(b[k]['tree_pss_mb'] <= GOALS['prepare_peak_mb'])} |" for k in ("byte", "bpe")), "",
        "Most of it is the parent's `import trainforge` (torch: ~245 MB RSS), shared by the forked workers.", "",
        f"## (c) peak RSS of a {r['plan']['train_steps']}-step `trainforge train` (tiny preset) (load {c['load']})", "",
        "| train.bin | peak RSS (median) |", "|---|---|",
        f"| {c['big_file_mb']:.0f} MB | {c['big']:.0f} MB |", f"| {c['small_file_mb']:.1f} MB | {c['small']:.0f} MB |",
        f"| ratio | **{c['ratio']:.3f}x** (goal <= {GOALS['train_rss_ratio']}x: "
        f"{mark(c['ratio'] <= GOALS['train_rss_ratio'])}) |", "",
        "## (d) training tokens/s from a TokenFile vs the same windows as an in-memory tensor", "",
        "| model | batch x seq, timed steps | TokenFile tok/s | tensor tok/s | TokenFile / tensor | pairs |",
        "|---|---|---|---|---|---|",
    ]
    for d in r["speed"]:
        goal = f" (goal >= {GOALS['tokens_ratio']}x: {mark(d['ratio'] >= GOALS['tokens_ratio'])})" \
            if d["goal"] else " (informational)"
        lines.append(f"| {d['preset']} | {d['batch']} x {d['seq']}, {d['steps']} | {d['token_file']:,.0f} | {d['tensor']:,.0f} | "
                     f"**{d['ratio']:.3f}x**{goal} | {', '.join(format(p['ratio'], '.3f') for p in d['pairs'])} "
                     f"(load {d['load']}) |")
    return "\n".join(lines) + "\n"


def partial(out_dir: Path, results: dict[str, Any]) -> None:
    """The cases measured so far, in case a long run is stopped."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "corpus.partial.json").write_text(json.dumps(results, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repeat (checks the script)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="where corpus.md and corpus.json go")
    parser.add_argument("--default-malloc", action="store_true", help="keep glibc's heap defaults")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    torch.set_num_threads(2)
    results: dict[str, Any] = {"machine": describe("2"), "plan": plan.__dict__}
    blob = stdlib_text()
    with tempfile.TemporaryDirectory(prefix="bench_corpus_") as tmp:
        work = Path(tmp)
        big = write_text(work / "big.txt", int(plan.big_mb * 1e6), blob)
        bpe_text = write_text(work / "bpe.txt", int(plan.bpe_mb * 1e6), blob)
        print(f"(a) prepare throughput ... (load {load_avg()})", flush=True)
        results["throughput"] = throughput(work, big, bpe_text, plan)
        partial(args.out_dir, results)
        print(f"(b) prepare peak memory ... (load {load_avg()})", flush=True)
        bpe_memory_text = write_text(work / "bpe_memory.txt", int(plan.bpe_memory_mb * 1e6), blob)
        results["prepare_memory"] = prepare_memory(work, big, bpe_memory_text)
        # token files of the asked sizes: byte ids are 2 bytes each, 90% of the text goes to train.bin
        dirs = {}
        for name, mb in (("big", plan.token_file_mb), ("small", plan.small_token_file_mb)):
            text = write_text(work / f"{name}_tokens.txt", int(mb * 1e6 / 2 / 0.9), blob)
            prepare([text], work / f"tokens_{name}", workers=2)
            text.unlink()
            dirs[name] = work / f"tokens_{name}"
        partial(args.out_dir, results)
        print(f"(c) training peak RSS ... (load {load_avg()})", flush=True)
        results["train_rss"] = train_rss(work, dirs["big"], dirs["small"], plan)
        partial(args.out_dir, results)
        print(f"(d) training tokens/s ... (load {load_avg()})", flush=True)
        # the goal is for a model of real size (bench: ~200 ms steps); bench_tiny shows per-step costs
        cases = [("bench", 16, 128, True), ("bench_tiny", 8, 32, False)] if not args.quick else [
            ("bench_tiny", 4, 16, True)]
        results["speed"] = [train_speed(dirs["big"], *case, plan, work) for case in cases]
    text = report(results, args.quick)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "corpus.md").write_text(text)
    (args.out_dir / "corpus.json").write_text(json.dumps(results, indent=1) + "\n")
    print(text)
    (args.out_dir / "corpus.partial.json").unlink(missing_ok=True)
    print(f"written to {args.out_dir / 'corpus.md'} and {args.out_dir / 'corpus.json'}")
    return 0


if __name__ == "__main__":
    rerun_with_steady_malloc()
    raise SystemExit(main())
