"""GPU checks for the core engine, in one short run (needs CUDA; prints a markdown report).

    PYTHONPATH=src python benchmarks/gpu_check.py [--quick] [--out report.md]

1. precision="auto" resolves to bf16 autocast on a bf16 GPU; fp16-mixed trains with a GradScaler.
2. The trainer enables the flash / memory-efficient SDPA kernels and reports the model's attention.
3. compile_mode="default" compiles (no eager fallback) and checkpoints keep canonical keys.
4. Throughput: a GPU-sized GPT in bf16 with torch.compile, a hand-written loop vs trainforge, side by side,
   interleaved, tokens/s and MFU (model FLOPs utilisation against the card's dense bf16 peak).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F

from trainforge import TaskSpec, Trainer, TrainingConfig
from trainforge.models import GPT, GPTConfig
from trainforge.trainer.optim import lr_multiplier, param_groups

# Dense bf16 peak (no sparsity), TFLOP/s.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def peak_flops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def flops_per_token(cfg: GPTConfig, n_params: int) -> float:
    # 6N for the dense matmuls (forward + backward) plus the attention score/value matmuls.
    return 6 * n_params + 12 * cfg.n_layer * cfg.d_model * cfg.max_seq_len


def check_precisions(lines: list[str]) -> None:
    cfg = GPTConfig(vocab_size=256, max_seq_len=64, n_layer=2, n_head=4, d_model=128)
    data = torch.randint(0, 256, (256, 64))
    task = TaskSpec.language_modeling(name="lm", vocab_size=256, max_seq_len=64)
    for precision in ("auto", "fp16-mixed", "fp32"):
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as d:
            tc = TrainingConfig(epochs=2, batch_size=32, learning_rate=1e-3, progress_bar=False, output_dir=d,
                                precision=precision)
            r = Trainer(GPT(cfg), cfg, tc, task).train(data, data[:64])
        lines.append(f"| precision={precision} | resolved {r['precision']}, device {r['device']}, attention "
                     f"{r['attention_implementation']}, kernels {r['sdpa_kernels']}, loss "
                     f"{r['loss_history'][0]:.3f} → {r['loss_history'][-1]:.3f} |")


def check_compile(lines: list[str]) -> None:
    cfg = GPTConfig(vocab_size=256, max_seq_len=64, n_layer=2, n_head=4, d_model=128)
    data = torch.randint(0, 256, (256, 64))
    task = TaskSpec.language_modeling(name="lm", vocab_size=256, max_seq_len=64)
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tc = TrainingConfig(epochs=2, batch_size=32, learning_rate=1e-3, progress_bar=False, output_dir=d,
                            compile_mode="default", checkpoint_dir=f"{d}/ck")
        r = Trainer(GPT(cfg), cfg, tc, task).train(data, data[:64])
        saved = torch.load(f"{d}/ck/epoch_2.pt", weights_only=True)["model"]
    fell_back = any("falling back to eager" in str(w.message) for w in caught)
    canonical = not any("_orig_mod" in k for k in saved)
    lines.append(f"| compile_mode=default | compiled without fallback: {not fell_back}; canonical checkpoint keys: "
                 f"{canonical}; loss {r['loss_history'][0]:.3f} → {r['loss_history'][-1]:.3f} |")


def raw_loop(cfg: GPTConfig, data: torch.Tensor, batch: int, steps: int, warmup: int) -> float:
    torch.manual_seed(0)
    model = GPT(cfg).cuda()
    opt = torch.optim.AdamW(param_groups(model, 0.01), lr=3e-4, fused=True)
    total = steps + warmup
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_multiplier(s, total, 0, "cosine"))
    fwd = torch.compile(model)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    start = 0.0
    for step in range(total):
        if step == warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        idx = order[(step * batch) % len(data):][:batch]
        x = data[idx].cuda(non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(x)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return steps * batch * (cfg.max_seq_len - 1) / (time.perf_counter() - start)


class StepClock:
    """Times trainforge's steps with the same brackets as the raw loop (after `warmup` steps)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_step_end(self, state) -> None:  # noqa: ANN001
        if state.global_step == self.warmup:
            torch.cuda.synchronize()
            self.start = time.perf_counter()

    def on_fit_end(self, state) -> None:  # noqa: ANN001
        torch.cuda.synchronize()
        self.end = time.perf_counter()


def trainforge_loop(cfg: GPTConfig, data: torch.Tensor, batch: int, steps: int, warmup: int) -> float:
    torch.manual_seed(0)
    model = GPT(cfg)
    clock = StepClock(warmup)
    task = TaskSpec.language_modeling(name="bench", vocab_size=cfg.vocab_size, max_seq_len=cfg.max_seq_len)
    with tempfile.TemporaryDirectory() as d:
        tc = TrainingConfig(epochs=1, max_steps=steps + warmup, batch_size=batch, learning_rate=3e-4,
                            progress_bar=False, output_dir=d, compile_mode="default", log_every_n_steps=50)
        Trainer(model, cfg, tc, task, callbacks=[clock]).train(data)
    return steps * batch * (cfg.max_seq_len - 1) / (clock.end - clock.start)


def throughput(lines: list[str], quick: bool) -> None:
    if quick:
        cfg, batch, steps, warmup, repeats = GPTConfig(vocab_size=512, max_seq_len=128, n_layer=2, n_head=4,
                                                        d_model=128), 8, 10, 3, 1
    else:
        cfg, batch, steps, warmup, repeats = GPTConfig(vocab_size=50304, max_seq_len=1024, n_layer=12, n_head=12,
                                                        d_model=768), 16, 40, 8, 2
    n_params = GPT(cfg).num_parameters()
    data = torch.randint(0, cfg.vocab_size, ((steps + warmup) * batch, cfg.max_seq_len))
    raw, tf = [], []
    for _ in range(repeats):  # interleaved
        raw.append(raw_loop(cfg, data, batch, steps, warmup))
        tf.append(trainforge_loop(cfg, data, batch, steps, warmup))
    name = torch.cuda.get_device_name()
    peak = peak_flops(name)
    fpt = flops_per_token(cfg, n_params)
    for label, values in (("raw loop", raw), ("trainforge", tf)):
        med = statistics.median(values)
        mfu = f"{100 * med * fpt / peak:.1f}%" if peak else "n/a"
        lines.append(f"| {label} | {med:,.0f} tok/s (min {min(values):,.0f}, max {max(values):,.0f}) | MFU {mfu} |")
    lines.append(f"| ratio trainforge/raw | {statistics.median(tf) / statistics.median(raw):.3f} | "
                 f"GPT {n_params / 1e6:.0f}M params, seq {cfg.max_seq_len}, batch {batch}, bf16 + compile |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check needs a CUDA device")
    lines = [f"# GPU check on {torch.cuda.get_device_name()} (torch {torch.__version__})", "", "| check | result |",
             "|---|---|"]
    started = time.perf_counter()
    check_precisions(lines)
    check_compile(lines)
    lines += ["", "| throughput | tokens/s | notes |", "|---|---|---|"]
    throughput(lines, args.quick)
    lines.append(f"\n(total {time.perf_counter() - started:.0f} s; flops/token = 6N + 12·L·d·T, peak dense bf16 "
                 f"{peak_flops(torch.cuda.get_device_name()) or 'unknown'})")
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()
