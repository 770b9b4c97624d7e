"""Training telemetry: peak memory, model FLOPs utilisation (MFU) and a table of GPU peak FLOPs.

Everything here is cheap enough to call at every log line and never synchronises the device: peak memory is
``getrusage`` (CPU) / ``torch.cuda.max_memory_allocated`` (CUDA allocator counters), MFU is arithmetic on
the measured tokens/s.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

try:  # imported once here: the loop reads the peak RSS at every log line
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

__all__ = ["GPU_PEAK_TFLOPS", "LoopTelemetry", "flops_per_token", "mfu", "peak_cpu_rss_mb", "peak_cuda_mb", "peak_flops",
           "peak_memory_mb"]

# Dense (no sparsity) peak tensor-core TFLOP/s from the vendors' data sheets: (bf16/fp16, fp32/tf32).
# Matched against torch.cuda.get_device_name() by substring, first match wins (so order specific → general).
GPU_PEAK_TFLOPS: list[tuple[str, float, float]] = [
    ("GB200", 2500.0, 1250.0),
    ("B200", 2250.0, 1100.0),
    ("H200", 989.0, 494.0),
    ("H100 PCIe", 756.0, 378.0),
    ("H100 NVL", 835.0, 418.0),
    ("H100", 989.0, 494.0),  # SXM
    ("H800", 989.0, 494.0),
    ("GH200", 989.0, 494.0),
    ("A100", 312.0, 156.0),
    ("A800", 312.0, 156.0),
    ("A30", 165.0, 82.0),
    ("A10G", 70.0, 35.0),
    ("A10", 125.0, 62.5),
    ("L40S", 362.0, 183.0),
    ("L40", 181.0, 90.5),
    ("L4", 121.0, 60.0),
    ("RTX 6000 Ada", 364.0, 182.0),
    ("RTX A6000", 155.0, 77.0),
    ("RTX 4090", 165.0, 82.6),
    ("RTX 3090", 71.0, 35.6),
    ("V100", 125.0, 15.7),
    ("T4", 65.0, 8.1),
]


def peak_cpu_rss_mb() -> float:
    """The process's peak resident set size in MiB (``getrusage`` max RSS; 0.0 where unavailable)."""
    if resource is None:
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def peak_cuda_mb(device: torch.device) -> float:
    """``torch.cuda.max_memory_allocated`` in MiB (an allocator counter: no device sync)."""
    return torch.cuda.max_memory_allocated(device) / 2**20


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    """``{"peak_rss_mb": ...}`` and, on CUDA, ``{"peak_cuda_mb": ...}``."""
    out = {"peak_rss_mb": peak_cpu_rss_mb()}
    if device.type == "cuda":
        out["peak_cuda_mb"] = peak_cuda_mb(device)
    return out


def flops_per_token(model: nn.Module, seq_len: int | None = None) -> float:
    """Training FLOPs per token: ``6 * N`` (forward + backward of every weight) plus, for a transformer whose
    config exposes ``n_layer``/``d_model`` (or HF names), the attention scores ``12 * n_layer * d_model * T``
    (PaLM appendix B). Embedding tables count only when tied to the output layer (they are a matmul there)."""
    params = 0
    for name, p in model.named_parameters():
        if "embed" in name.lower() and "pos" in name.lower():
            continue  # a position-embedding lookup is no matmul
        params += p.numel()
    flops = 6.0 * params
    cfg: Any = getattr(model, "config", None)
    layers = _first(cfg, "n_layer", "num_hidden_layers", "n_layers")
    width = _first(cfg, "d_model", "hidden_size", "n_embd")
    if seq_len and layers and width:
        flops += 12.0 * layers * width * seq_len
    return flops


def _first(cfg: Any, *names: str) -> int | None:
    for n in names:
        value = getattr(cfg, n, None)
        if isinstance(value, int):
            return value
    return None


def peak_flops(device: torch.device, precision: str) -> float | None:
    """The device's dense peak FLOP/s for ``precision`` (bf16/fp16 mixed → tensor-core half precision, else
    TF32/fp32), from :data:`GPU_PEAK_TFLOPS`; None on CPU or an unlisted GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    half = precision in ("bf16-mixed", "fp16-mixed", "bf16", "fp16")
    for key, half_tf, fp32_tf in GPU_PEAK_TFLOPS:
        if key in name:
            return (half_tf if half else fp32_tf) * 1e12
    return None


def mfu(tokens_per_s: float, flops_per_tok: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s over the peak (None when the peak is unknown)."""
    if not peak or tokens_per_s <= 0:
        return None
    return tokens_per_s * flops_per_tok / peak


class LoopTelemetry:
    """Counters the training loop feeds, read at each log line.

    The loop calls :meth:`add_window` with the time spent in ``next()`` on the data iterator (host-side
    ``perf_counter`` only; no device sync) and :meth:`step_metrics` when it logs. Everything else (peak memory,
    MFU) is computed at log time.
    """

    def __init__(self, device: torch.device, flops_per_token: float = 0.0, peak_flops: float | None = None) -> None:
        self.device = device
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self.data_wait_s = 0.0
        self.samples = 0
        self._seen_wait = 0.0
        self._seen_samples = 0
        self.last: dict[str, float] = {}

    def add_window(self, seconds: float, window: list[Any]) -> None:
        """Record one accumulation window: the time spent waiting for it and its samples."""
        self.data_wait_s += seconds
        for batch in window:
            self.samples += _batch_len(batch)

    def peak_mem_mb(self) -> float:
        """CUDA max allocated on a GPU, else the process's peak RSS (MiB)."""
        return peak_cuda_mb(self.device) if self.device.type == "cuda" else peak_cpu_rss_mb()

    def step_metrics(self, steps: int, elapsed_s: float, tokens_per_s: float) -> dict[str, float]:
        """``samples_per_s``, ``step_time_s``, ``data_wait_s`` (per step), ``peak_mem_mb`` and, on a GPU with a known
        peak, ``mfu``, over the ``steps`` optimizer steps of the last ``elapsed_s`` seconds."""
        elapsed_s = max(elapsed_s, 1e-9)
        steps = max(steps, 1)
        samples = self.samples - self._seen_samples
        wait = self.data_wait_s - self._seen_wait
        self._seen_samples, self._seen_wait = self.samples, self.data_wait_s
        out = {"samples_per_s": samples / elapsed_s, "step_time_s": elapsed_s / steps, "data_wait_s": wait / steps,
               "peak_mem_mb": self.peak_mem_mb()}
        value = mfu(tokens_per_s, self.flops_per_token, self.peak_flops)
        if value is not None:
            out["mfu"] = value
        self.last = out
        return out

    def summary(self, training_time_s: float, tokens_per_s: float | None) -> dict[str, Any]:
        """Run-level telemetry for the results dict and the experiment database."""
        out: dict[str, Any] = {"samples": self.samples, "samples_per_s": self.samples / max(training_time_s, 1e-9),
                               "data_wait_s": self.data_wait_s,
                               "data_wait_frac": self.data_wait_s / max(training_time_s, 1e-9),
                               **peak_memory_mb(self.device)}
        if tokens_per_s is not None:
            out["tokens_per_s"] = tokens_per_s
            value = mfu(tokens_per_s, self.flops_per_token, self.peak_flops)
            if value is not None:
                out["mfu"] = value
        return out


def _batch_len(batch: Any) -> int:
    if isinstance(batch, (dict, Mapping)):  # (a dict is recognised without the abstract-class check)
        for v in batch.values():
            shape = getattr(v, "shape", None)
            if shape:
                return int(shape[0])
        return 0
    shape = getattr(batch, "shape", None)
    return int(shape[0]) if shape else 0
