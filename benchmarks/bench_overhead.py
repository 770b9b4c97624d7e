"""trainforge's overhead against a hand-written minimal PyTorch loop, and its import cost.

Run (from the repository root)::

    python benchmarks/bench_overhead.py            # full run, several minutes; writes benchmarks/results/overhead.md
    python benchmarks/bench_overhead.py --quick    # a few seconds, tiny sizes; writes nothing (checks the script)
    python benchmarks/bench_overhead.py --quick --out /tmp/x.md   # quick run, table written to /tmp/x.md

What is measured, in ONE process, repeats interleaved (raw, trainforge, trainforge without progress bar; the order
is reversed on every other repeat so drift hits all sides alike):

* ``big``: the GPT ``bench`` preset, batch 16, seq 128; ``tiny``: ``bench_tiny``, batch 8, seq 32 (per-step
  overhead shows here). Both sides build the same model from the same seed, visit the same blocks in the same
  order (a seeded ``randperm``, the formula of trainforge's sampler), use AdamW with the same parameter groups
  (decay only on >= 2-D parameters, ``foreach=True``), ``clip_grad_norm_(..., 1.0, foreach=True)``, a per-step
  ``LambdaLR`` with linear warmup and cosine decay, and ``zero_grad(set_to_none=True)``. The raw side computes
  ``F.cross_entropy`` on the shifted logits; trainforge its own token-normalised loss (the same math).
* Tokens/s = trained target tokens (``batch * (seq - 1)`` per step) / wall time between the end of the last
  warm-up step and the end of the last step. Both sides take these two timestamps the same way: trainforge
  through a callback's ``on_step_end``, the raw loop by calling the same timer after each step. Model
  construction, trainforge's pre-step setup (probe forward, run files) and its end-of-epoch bookkeeping are thus
  outside the window; they are reported separately as the fixed cost per ``train()`` call.
* trainforge runs with a user's defaults (progress bar on, a log line every 10 steps, CSV/console loggers) and,
  as a second row, with ``progress_bar=False``. Its console output goes to a buffer and the bar to ``os.devnull``.
* Threads: torch's default thread settings (or ``--threads N``), identical for both sides (same process); printed
  in the header.
* Import: the median wall time of fresh ``python -c "import torch"`` vs ``python -c "import torch, trainforge"``
  subprocesses (alternated); when the difference exceeds 0.1 s, ``-X importtime`` names the slowest modules.

A sanity check compares the final parameters of the first raw and trainforge runs of each case (they train the
same model on the same data; only float rounding of sum/count vs mean may differ).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from machine_info import (  # benchmarks/ is the script's directory: on sys.path
    DEFAULT_MALLOC_FLAG,
    describe,
    load_avg,
    malloc_note,
    rerun_with_steady_malloc,
)
from reference import lr_factor  # benchmarks/ is the script's directory: on sys.path

from trainforge import TaskSpec, Trainer, TrainingConfig
from trainforge.data.corpus import default_lm_dataset
from trainforge.models.gpt import GPT, MODEL_PRESETS, GPTConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "overhead.md"

SEED = 1234
LEARNING_RATE = 3e-4
WEIGHT_DECAY = 0.1
WARMUP_RATIO = 0.1
MAX_GRAD_NORM = 1.0
TARGETS = {"big": 0.99, "tiny": 0.97}
IMPORT_TARGET_S = 0.3


@dataclass(frozen=True)
class Case:
    name: str
    preset: str
    batch_size: int
    seq_len: int
    steps: int  # timed steps
    warmup: int  # untimed steps before them

    @property
    def total_steps(self) -> int:
        return self.warmup + self.steps

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * (self.seq_len - 1)  # next-token targets of a row of seq_len tokens


FULL_CASES = (
    Case("big", "bench", batch_size=16, seq_len=128, steps=30, warmup=3),
    Case("tiny", "bench_tiny", batch_size=8, seq_len=32, steps=600, warmup=3),
)
QUICK_CASES = (
    Case("big", "bench_tiny", batch_size=4, seq_len=16, steps=10, warmup=3),
    Case("tiny", "bench_tiny", batch_size=4, seq_len=16, steps=20, warmup=3),
)


# ------------------------------------------------------------------------------------------------ timing
class StepTimer:
    """Timestamps at the end of every step; the window runs from the end of warm-up to the last step."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total
        self.stamps: list[float] = []

    def step_end(self, step: int) -> None:
        if step >= self.warmup:
            self.stamps.append(time.perf_counter())

    def seconds(self) -> float:
        if len(self.stamps) != self.total - self.warmup + 1:
            raise RuntimeError(f"expected {self.total - self.warmup + 1} timestamps, got {len(self.stamps)}")
        return self.stamps[-1] - self.stamps[0]

    def step_times(self) -> list[float]:
        return [b - a for a, b in zip(self.stamps, self.stamps[1:])]


class TimerCallback:
    """A trainforge callback that feeds the timer at every step end."""

    def __init__(self, timer: StepTimer) -> None:
        self.timer = timer

    def on_step_end(self, state: Any) -> None:
        self.timer.step_end(state.global_step)


@dataclass
class RunResult:
    seconds: float  # the timed window
    step_times: list[float]
    fixed_s: float  # whole call minus the timed window (setup, warm-up steps, teardown)
    final_state: dict[str, torch.Tensor] = field(repr=False)


def epoch_order(n: int, seed: int, epoch: int = 0) -> torch.Tensor:
    """The visiting order of epoch ``epoch`` (the same seeded randperm as trainforge's sampler)."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch) % (2**63 - 1))
    return torch.randperm(n, generator=g)


def new_model(case: Case) -> tuple[GPT, GPTConfig]:
    torch.manual_seed(SEED)
    config = GPTConfig.from_dict({**MODEL_PRESETS[case.preset], "max_seq_len": case.seq_len})
    return GPT(config), config


# ------------------------------------------------------------------------------------------------ raw loop
def run_raw(case: Case, blocks: torch.Tensor) -> RunResult:
    called = time.perf_counter()
    model, config = new_model(case)
    model.train()
    vocab = config.vocab_size
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    params = decay + no_decay
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LEARNING_RATE, betas=(0.9, 0.999), eps=1e-8, foreach=True,
    )
    total = case.total_steps
    warmup_steps = int(WARMUP_RATIO * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup_steps))
    order = epoch_order(len(blocks), SEED)
    timer = StepTimer(case.warmup, total)
    b = case.batch_size
    for step in range(total):
        x = blocks[order[step * b:(step + 1) * b]]
        logits = model(x)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM, foreach=True)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        timer.step_end(step + 1)
    whole = time.perf_counter() - called
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return RunResult(timer.seconds(), timer.step_times(), whole - timer.seconds(), state)


# ------------------------------------------------------------------------------------------------ trainforge
def run_trainforge(case: Case, blocks: torch.Tensor, progress_bar: bool) -> RunResult:
    called = time.perf_counter()
    model, config = new_model(case)
    timer = StepTimer(case.warmup, case.total_steps)
    with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
        training = TrainingConfig(
            epochs=1, max_steps=case.total_steps, batch_size=case.batch_size, learning_rate=LEARNING_RATE,
            weight_decay=WEIGHT_DECAY, warmup_ratio=WARMUP_RATIO, lr_schedule="cosine", max_grad_norm=MAX_GRAD_NORM,
            seed=SEED, shuffle=True, output_dir=tmp, progress_bar=progress_bar,
        )
        task = TaskSpec.language_modeling(name="bench", vocab_size=config.vocab_size, max_seq_len=case.seq_len)
        trainer = Trainer(model, config, training, task, callbacks=[TimerCallback(timer)])
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(devnull):
            results = trainer.train(blocks)
    whole = time.perf_counter() - called
    if results["global_step"] != case.total_steps:
        raise RuntimeError(f"trainforge ran {results['global_step']} steps, expected {case.total_steps}")
    return RunResult(timer.seconds(), timer.step_times(), whole - timer.seconds(), results["final_model_state"])


# ------------------------------------------------------------------------------------------------ stats
def median_range(values: list[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def max_param_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a if k in b)


SIDES: dict[str, Callable[[Case, torch.Tensor], RunResult]] = {
    "raw": run_raw,
    "trainforge": lambda c, d: run_trainforge(c, d, progress_bar=True),
    "trainforge (progress_bar=False)": lambda c, d: run_trainforge(c, d, progress_bar=False),
}


def bench_case(case: Case, repeats: int) -> dict[str, Any]:
    blocks = default_lm_dataset(block_size=case.seq_len, val_fraction=0.0)[0]
    need = case.total_steps * case.batch_size
    if len(blocks) < need:
        raise RuntimeError(f"{case.name}: the corpus gives {len(blocks)} blocks, {need} needed for one epoch")
    runs: dict[str, list[RunResult]] = {name: [] for name in SIDES}
    names = list(SIDES)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            gc.collect()
            runs[name].append(SIDES[name](case, blocks))
            res = runs[name][-1]
            print(f"  {case.name} #{r + 1} {name:34s} {case.tokens_per_step * case.steps / res.seconds:>10,.0f} tok/s"
                  f"  ({res.seconds:.2f} s, fixed {res.fixed_s:.2f} s)", flush=True)
    tokens = case.tokens_per_step * case.steps
    rates = {name: [tokens / r.seconds for r in rs] for name, rs in runs.items()}
    step_ms = {name: [statistics.median(r.step_times) * 1e3 for r in rs] for name, rs in runs.items()}
    fixed = {name: [r.fixed_s for r in rs] for name, rs in runs.items()}
    return {
        "case": case, "rates": rates, "step_ms": step_ms, "fixed": fixed,
        "param_diff": max_param_diff(runs["raw"][0].final_state, runs["trainforge"][0].final_state),
    }


# ------------------------------------------------------------------------------------------------ import time
def python_env(bytecode_cache: bool) -> dict[str, str]:
    """The environment of the import subprocesses.

    ``bytecode_cache=True`` is what a user has after ``pip install`` (compiled ``.pyc`` files): bytecode is written
    to and read from a cache directory under the system temp dir (``PYTHONPYCACHEPREFIX``), never into the repo.
    ``False`` keeps this process's environment as it is (which may set ``PYTHONDONTWRITEBYTECODE``).
    """
    env = dict(os.environ)
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "trainforge-bench-pycache")
    return env


def time_subprocess(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)
    return time.perf_counter() - started


def import_times(repeats: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    time_subprocess("import torch, trainforge", env)  # warm the page cache (and write the bytecode cache)
    torch_only: list[float] = []
    both: list[float] = []
    for r in range(repeats):
        pair = [("torch", "import torch"), ("both", "import torch, trainforge")]
        for name, code in pair if r % 2 == 0 else pair[::-1]:
            (torch_only if name == "torch" else both).append(time_subprocess(code, env))
    return torch_only, both


def import_offenders(limit: int = 10) -> tuple[float, list[tuple[str, float, float]], list[tuple[str, float]]]:
    """trainforge's own import cost after torch, its slowest modules by self time, and the packages it pulls in."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import torch; import trainforge"],
                          capture_output=True, text=True, check=True, cwd=ROOT, env=python_env(True))
    rows: list[tuple[str, float, float]] = []
    seen_torch = False
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line[len("import time:"):].split("|", 2)
        if not seen_torch:
            seen_torch = name.strip() == "torch" and not name.startswith("  ", 1)
            continue
        rows.append((name.rstrip(), float(self_us) / 1e6, float(cum_us) / 1e6))
    total = next((cum for name, _, cum in rows if name.strip() == "trainforge" and name == " trainforge"), 0.0)
    by_self = sorted(((n.strip(), s, c) for n, s, c in rows), key=lambda t: -t[1])[:limit]
    packages: dict[str, float] = {}
    for name, _, cum in rows:
        top = name.strip().split(".")[0]
        if top != "trainforge" and "." not in name.strip() and not top.startswith("_"):
            packages[top] = max(packages.get(top, 0.0), cum)
    third = sorted(packages.items(), key=lambda t: -t[1])[:limit]
    return total, by_self, third


# ------------------------------------------------------------------------------------------------ report
def machine() -> str:
    return describe(f"{torch.get_num_threads()} intra-op / {torch.get_num_interop_threads()} inter-op (the same for "
                    "both sides)") + "\n" + malloc_note()


def report(results: list[dict[str, Any]], imports: tuple[list[float], list[float]],
           uncached: tuple[list[float], list[float]], offenders: Any, repeats: int, quick: bool) -> str:
    lines = [
        "| case | raw tokens/s median (min–max) | trainforge tokens/s median (min–max) | ratio trainforge/raw "
        "| target | median step ms raw → trainforge | fixed cost per call s raw / trainforge |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in results:
        case: Case = res["case"]
        raw = statistics.median(res["rates"]["raw"])
        for name in list(SIDES)[1:]:
            ratio = statistics.median(res["rates"][name]) / raw
            pairs = [t / r for t, r in zip(res["rates"][name], res["rates"]["raw"])]
            target = TARGETS[case.name]
            verdict = "✅" if ratio >= target else "❌"
            label = f"{case.name} ({case.preset}, b{case.batch_size} s{case.seq_len}, {case.steps} steps)"
            if name != "trainforge":
                label += ", progress_bar=False"
            lines.append(
                f"| {label} | {median_range(res['rates']['raw'])} | {median_range(res['rates'][name])} "
                f"| {ratio:.3f} (per repeat {min(pairs):.3f}–{max(pairs):.3f}) | ≥ {target} {verdict} "
                f"| {statistics.median(res['step_ms']['raw']):.2f} → {statistics.median(res['step_ms'][name]):.2f} "
                f"| {statistics.median(res['fixed']['raw']):.2f} / {statistics.median(res['fixed'][name]):.2f} |"
            )
    torch_s, both_s = imports
    delta = statistics.median(both_s) - statistics.median(torch_s)
    lines += [
        "",
        "| import (fresh subprocess, bytecode cached as after pip install) | seconds median (min–max) |",
        "|---|---|",
        f"| `python -c \"import torch\"` | {median_range(torch_s, '{:.3f}')} |",
        f"| `python -c \"import torch, trainforge\"` | {median_range(both_s, '{:.3f}')} |",
        f"| delta | {delta:.3f} (target ≤ {IMPORT_TARGET_S} {'✅' if delta <= IMPORT_TARGET_S else '❌'}) |",
        f"| delta without a bytecode cache (this shell's environment, PYTHONDONTWRITEBYTECODE="
        f"{os.environ.get('PYTHONDONTWRITEBYTECODE', 'unset')}) "
        f"| {statistics.median(uncached[1]) - statistics.median(uncached[0]):.3f} |",
    ]
    if offenders is not None:
        total, by_self, third = offenders
        lines += ["", f"`-X importtime` after torch: `import trainforge` cumulative {total:.3f} s. "
                  "Slowest modules by self time:", "", "| module | self s | cumulative s |", "|---|---|---|"]
        lines += [f"| {n} | {s:.3f} | {c:.3f} |" for n, s, c in by_self]
        lines += ["", "Packages (outside trainforge) first imported by `import trainforge`, cumulative s: "
                  + ", ".join(f"{n} {c:.3f}" for n, c in third)]
    diffs = ", ".join(f"{r['case'].name} {r['param_diff']:.2e}" for r in results)
    lines += [
        "",
        f"{repeats} repeats per side, interleaved. Tokens/s: target tokens of the timed steps / their wall time "
        "(warm-up steps excluded). Median step ms: the median over runs of each run's median step time. "
        "Fixed cost: the whole call minus the timed window (model build, setup, warm-up steps, teardown). "
        f"Max |param diff| raw vs trainforge after training (same work check): {diffs}."
        + (" QUICK MODE: tiny sizes, numbers are not meaningful." if quick else ""),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds; writes no results file")
    parser.add_argument("--out", type=Path, default=None, help=f"where to write the table (default {DEFAULT_OUT} "
                        "in a full run, nothing in --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per side (default 5, quick 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for both sides "
                        "(default: torch's own default)")
    parser.add_argument(DEFAULT_MALLOC_FLAG, action="store_true",
                        help="keep glibc's default heap thresholds (see machine_info.STEADY_MALLOC)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    quick = args.quick
    repeats = args.repeats or (1 if quick else 5)
    cases = QUICK_CASES if quick else FULL_CASES
    out = args.out if args.out is not None else (None if quick else DEFAULT_OUT)

    header = machine() + f"\n- load average before: {load_avg()}"
    print(header, flush=True)
    results = []
    for case in cases:
        print(f"case {case.name}: {case.preset}, batch {case.batch_size}, seq {case.seq_len}, "
              f"{case.warmup} warm-up + {case.steps} timed steps, {repeats} repeats", flush=True)
        results.append(bench_case(case, repeats))
    print("import times ...", flush=True)
    imports = import_times(1 if quick else 7, python_env(True))
    uncached = import_times(1 if quick else 5, python_env(False))
    delta = statistics.median(imports[1]) - statistics.median(imports[0])
    offenders = import_offenders() if delta > 0.1 else None
    header += f"; after: {load_avg()} (other processes share this machine; see the min–max spread)"
    table = report(results, imports, uncached, offenders, repeats, quick)
    print()
    print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"# trainforge overhead vs a minimal PyTorch loop\n\n`python benchmarks/bench_overhead.py"
                       f"{''.join(' ' + a for a in (sys.argv[1:] if argv is None else argv))}`\n\n{header}\n\n{table}\n")
        print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    rerun_with_steady_malloc()
    sys.exit(main())
