"""Before step 0: how much memory will training take, does it fit, and which micro-batch would.

The estimate adds up
  * parameters and buffers (their real dtypes),
  * gradients (one per trainable parameter, same dtype),
  * optimizer state (AdamW: two fp32 tensors per trainable parameter; read from the optimizer when given),
  * activations: measured, not guessed. A forward + loss on one and on two samples of the real first batch run
    under ``torch.autograd.graph.saved_tensors_hooks``, which sees every tensor autograd keeps for backward
    (deduplicated by storage, parameters excluded); the difference is the per-sample cost, scaled to the
    micro-batch, and the rest is fixed (e.g. autocast's bf16 weight copies). Works for any ``nn.Module``.
  * transients: at the start of backward the output (logits) is still referenced and the first gradients (of the
    loss, the log-softmax and the logits) exist next to every saved activation: counted as five times the
    largest saved tensor of the micro-batch; the optimizer step's scratch (foreach AdamW/clipping temporaries):
    one more copy of the trainable parameters; on CPU 2 MiB for the allocator and the data loader.
    (Calibrated on CPU, fp32, against the measured peak RSS of the ``tiny`` and ``bench`` GPTs at batch 4-64:
    within 3-18%, the estimate slightly low; see tests/tracking/test_plots_telemetry.py.)
Compared with the memory available on the device (CUDA: free memory; CPU: ``MemAvailable`` plus what this
process already uses), with a warning and a suggested micro-batch size when it will not fit.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["MemoryEstimate", "available_memory_bytes", "check_memory", "estimate_before_training", "estimate_memory",
           "measure_activations"]

_MB = 2**20


@dataclass
class MemoryEstimate:
    """Bytes per component, the total, what is available, and advice."""

    params_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    activations_bytes: int  # for the whole micro-batch
    transient_bytes: int  # backward's first gradients (scales with the batch)
    overhead_bytes: int  # optimizer-step scratch and runtime overhead (fixed)
    batch_size: int
    seq_len: int | None
    device: str
    available_bytes: int | None = None

    @property
    def total_bytes(self) -> int:
        """Everything at the peak (end of forward / start of backward)."""
        return (self.params_bytes + self.grads_bytes + self.optimizer_bytes + self.activations_bytes
                + self.transient_bytes + self.overhead_bytes)

    @property
    def fixed_bytes(self) -> int:
        """What does not scale with the batch."""
        return self.params_bytes + self.grads_bytes + self.optimizer_bytes + self.overhead_bytes

    @property
    def per_sample_bytes(self) -> float:
        """What one more sample of the micro-batch costs."""
        return (self.activations_bytes + self.transient_bytes) / max(self.batch_size, 1)

    @property
    def fits(self) -> bool | None:
        """Whether the total fits in 90% of the available memory (None when unknown)."""
        if self.available_bytes is None:
            return None
        return self.total_bytes <= 0.9 * self.available_bytes

    def suggested_batch_size(self) -> int | None:
        """The largest power-of-two micro-batch (≤ the configured one) that fits; None when unknown, 0 when
        not even one sample fits."""
        if self.available_bytes is None:
            return None
        room = 0.9 * self.available_bytes - self.fixed_bytes
        if room < self.per_sample_bytes:
            return 0
        most = min(self.batch_size, int(room // max(self.per_sample_bytes, 1.0)))
        return 1 << (most.bit_length() - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers in MiB (for logs, results and the experiment database)."""
        d: dict[str, Any] = {k: round(v / _MB, 3) if k.endswith("_bytes") and isinstance(v, int) else v
                             for k, v in asdict(self).items()}
        d = {k.replace("_bytes", "_mb"): v for k, v in d.items()}
        d["total_mb"] = round(self.total_bytes / _MB, 3)
        d["fits"] = self.fits
        d["suggested_batch_size"] = self.suggested_batch_size()
        return d

    def summary(self) -> str:
        """One line: ``memory estimate 412.3 MiB (params 7.1, grads 7.1, optimizer 14.1, activations ...)``."""
        parts = [f"params {self.params_bytes / _MB:.1f}", f"grads {self.grads_bytes / _MB:.1f}",
                 f"optimizer {self.optimizer_bytes / _MB:.1f}",
                 f"activations {(self.activations_bytes + self.transient_bytes) / _MB:.1f}"]
        where = f" of {self.available_bytes / _MB:,.0f} MiB available" if self.available_bytes else ""
        return (f"memory estimate {self.total_bytes / _MB:,.1f} MiB{where} on {self.device} "
                f"({', '.join(parts)}; batch {self.batch_size}"
                f"{f' x seq {self.seq_len}' if self.seq_len else ''})")


def measure_activations(loss_fn: Callable[[], Tensor], model: nn.Module | None = None) -> tuple[int, int]:
    """Run ``loss_fn`` (a forward + loss) and return (bytes autograd saves for backward, largest saved tensor).

    Tensors are deduplicated by storage (views of one buffer count once); parameters and buffers of ``model``
    (and views of them, such as a transposed weight) are not activations and are left out. The graph is freed
    afterwards; no backward runs.
    """
    seen: dict[tuple[int, int], int] = {}
    params: set[int] = set()
    if model is not None:
        for t in [*model.parameters(), *model.buffers()]:
            params.add(t.untyped_storage().data_ptr())

    def pack(t: Tensor) -> Tensor:
        if isinstance(t, nn.Parameter):
            return t
        try:
            storage = t.untyped_storage()
            if storage.data_ptr() in params:
                return t
            key = (storage.data_ptr(), t.device.index or 0)
            seen[key] = max(seen.get(key, 0), storage.nbytes())
        except (RuntimeError, NotImplementedError):  # tensors without storage (meta, some subclasses)
            seen[(id(t), -1)] = t.numel() * t.element_size()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    loss_bytes = loss.numel() * loss.element_size()
    del loss
    values = list(seen.values())
    return sum(values) + loss_bytes, max(values, default=0)


def _optimizer_bytes(params: list[nn.Parameter], optimizer: torch.optim.Optimizer | None) -> int:
    trainable = sum(p.numel() for p in params if p.requires_grad)
    if optimizer is None:
        return trainable * 4 * 2  # AdamW: exp_avg and exp_avg_sq in fp32
    name = type(optimizer).__name__.lower()
    if "adam" in name:
        states = 2 + (1 if any(g.get("amsgrad") for g in optimizer.param_groups) else 0)
    elif "sgd" in name:
        states = 1 if any(g.get("momentum") for g in optimizer.param_groups) else 0
    else:
        states = 2
    return trainable * 4 * states


def available_memory_bytes(device: torch.device) -> int | None:
    """CUDA: the device's free memory plus what this process's allocator holds. CPU: ``MemAvailable`` from
    ``/proc/meminfo`` plus this process's current RSS (None where unreadable)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device))
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if ":" in line}
        with open(f"/proc/{os.getpid()}/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, KeyError):
        return None
    return info.get("MemAvailable", 0) + rss


def estimate_memory(
    model: nn.Module,
    sample_batch: Mapping[str, Tensor],
    loss_fn: Callable[[Mapping[str, Tensor]], Tensor],
    *,
    batch_size: int,
    optimizer: torch.optim.Optimizer | None = None,
    device: torch.device | None = None,
    available_bytes: int | None = None,
) -> MemoryEstimate:
    """Estimate peak training memory for micro-batches of ``batch_size`` samples.

    Args:
        model: the model (its parameters count; ``loss_fn`` runs it).
        sample_batch: a batch of the real data (any size ≥ 1, already on the device); its first two samples are used.
        loss_fn: ``batch -> scalar loss`` through the model (forward + loss, under the run's autocast).
        batch_size: the configured micro-batch size (samples per forward).
        optimizer: the optimizer, to count its state (AdamW assumed when None).
        device: where training runs (default: the parameters' device).
        available_bytes: override the detected available memory (tests, what-ifs).
    """
    params = list(model.parameters())
    device = device or (params[0].device if params else torch.device("cpu"))
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    param_bytes += sum(b.numel() * b.element_size() for b in model.buffers())
    grad_bytes = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    one = {k: v[:1] for k, v in sample_batch.items()}
    saved, largest = measure_activations(lambda: loss_fn(one), model)
    if min((int(v.shape[0]) for v in sample_batch.values() if v.dim() > 0), default=1) >= 2:
        # A second forward on two samples separates what scales with the batch from what does not (e.g. the
        # low-precision weight copies autocast caches): activations(B) = fixed + B * per_sample.
        two = {k: v[:2] for k, v in sample_batch.items()}
        saved2, largest2 = measure_activations(lambda: loss_fn(two), model)
        per_sample, largest = max(saved2 - saved, 0), max(largest2 - largest, 0)
        fixed = max(saved - per_sample, 0)
    else:
        per_sample, fixed = saved, 0
    seq_len = None
    for v in one.values():
        if v.dim() >= 2:
            seq_len = int(v.shape[1])
            break
    return MemoryEstimate(
        params_bytes=param_bytes, grads_bytes=grad_bytes, optimizer_bytes=_optimizer_bytes(params, optimizer),
        activations_bytes=fixed + per_sample * batch_size, transient_bytes=5 * largest * batch_size,
        overhead_bytes=grad_bytes + (2 * _MB if device.type == "cpu" else 0), batch_size=batch_size,
        seq_len=seq_len, device=str(device),
        available_bytes=available_bytes if available_bytes is not None else available_memory_bytes(device),
    )


def check_memory(estimate: MemoryEstimate, accumulation: int = 1) -> str | None:
    """Warn (``UserWarning``) when the estimate does not fit; return the warning text (None when it fits)."""
    if estimate.fits is not False:
        return None
    suggested = estimate.suggested_batch_size()
    if suggested:
        steps = math.ceil(estimate.batch_size * accumulation / suggested)
        advice = (f"Fix: batch_size={suggested} with gradient_accumulation_steps={steps} keeps the effective batch "
                  f"({estimate.batch_size * accumulation}) and should fit; or use bf16-mixed precision.")
    else:
        advice = ("Fix: not even one sample fits next to the weights and optimizer state: use a smaller model, "
                  "shorter sequences, or a device with more memory.")
    text = f"Training will probably not fit in memory: {estimate.summary()}. {advice}"
    warnings.warn(text, UserWarning, stacklevel=3)
    return text


def estimate_before_training(
    model: nn.Module,
    batch: Mapping[str, Tensor],
    adapter: Any,
    task: Any,
    autocast: Callable[[], Any],
    *,
    optimizer: torch.optim.Optimizer | None,
    device: torch.device,
    accumulation: int = 1,
) -> MemoryEstimate | None:
    """The trainer's estimate from its first (probe) batch: warns when it will not fit; None if it cannot be made.

    The sample forward leaves no trace: RNG states and buffers (e.g. BatchNorm statistics) are restored.
    """
    sizes = [int(v.shape[0]) for v in batch.values() if isinstance(v, Tensor) and v.dim() > 0]
    if not sizes:
        return None

    def loss_fn(b: Mapping[str, Tensor]) -> Tensor:
        target = task.targets(b)
        with autocast():
            out = adapter.forward(model, b, target)
            loss: Tensor = adapter.loss_sum(out, target, task.count_targets(target))
        return loss

    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            estimate = estimate_memory(model, batch, loss_fn, batch_size=sizes[0], optimizer=optimizer, device=device)
    except Exception as exc:  # an estimate is advice; it must never stop training
        warnings.warn(f"Memory estimate skipped: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
        return None
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
        model.zero_grad(set_to_none=True)
    check_memory(estimate, accumulation)
    return estimate
