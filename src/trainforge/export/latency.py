"""Inference latency per format (eager PyTorch, TorchScript, ONNX Runtime) at a few batch sizes."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["measure_latency", "time_call"]


def time_call(fn: Callable[[], Any], *, warmup: int = 2, iters: int = 20, budget_s: float = 1.0) -> float:
    """Median milliseconds of ``fn()`` over at most ``iters`` calls (fewer once ``budget_s`` is spent, min 3)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < iters and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def measure_latency(
    eager: nn.Module,
    make_inputs: Callable[[int], Sequence[Tensor]],
    names: Sequence[str],
    *,
    onnx_path: str | Path | None = None,
    torchscript_path: str | Path | None = None,
    batch_sizes: Sequence[int] = (1, 8),
    iters: int = 20,
    budget_s: float = 1.0,
) -> dict[str, Any]:
    """``{backend: {"batch_1": ms, "batch_8": ms}}`` for eager, TorchScript and ONNX Runtime (in this process).

    ONNX Runtime gets as many intra-op threads as torch has (``torch.get_num_threads()``).

    A backend that cannot be loaded gets ``{"error": ...}`` instead of numbers.
    """
    runners: dict[str, Callable[[Sequence[Tensor]], Any] | str] = {}
    eager = eager.eval()

    def run_eager(xs: Sequence[Tensor]) -> Any:
        with torch.no_grad():
            return eager(*xs)

    runners["eager"] = run_eager
    if torchscript_path is not None:
        try:
            ts = torch.jit.load(str(torchscript_path), map_location="cpu").eval()

            def run_ts(xs: Sequence[Tensor]) -> Any:
                with torch.no_grad():
                    return ts(*xs)

            runners["torchscript"] = run_ts
        except Exception as exc:
            runners["torchscript"] = f"{type(exc).__name__}: {exc}"
    if onnx_path is not None:
        try:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            opts.intra_op_num_threads = torch.get_num_threads()  # the same thread budget as torch
            opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
            feed = [i.name for i in sess.get_inputs()]

            def run_ort(xs: Sequence[Tensor]) -> Any:
                return sess.run(None, {n: x.numpy() for n, x in zip(feed, xs)})

            runners["onnxruntime"] = run_ort
        except Exception as exc:
            runners["onnxruntime"] = f"{type(exc).__name__}: {exc}"

    result: dict[str, Any] = {"unit": "ms (median)", "threads": torch.get_num_threads()}
    for name, runner in runners.items():
        if isinstance(runner, str):
            result[name] = {"error": runner}
            continue
        row: dict[str, Any] = {}
        for b in batch_sizes:
            xs = make_inputs(b)
            call = runner

            def once(call: Callable[[Sequence[Tensor]], Any] = call, xs: Sequence[Tensor] = xs) -> Any:
                return call(xs)

            try:
                row[f"batch_{b}"] = round(time_call(once, iters=iters, budget_s=budget_s), 4)
            except Exception as exc:
                row[f"batch_{b}"] = None
                row["error"] = f"{type(exc).__name__}: {exc}"
        result[name] = row
    result["input_shapes"] = {f"batch_{b}": [list(t.shape) for t in make_inputs(b)] for b in batch_sizes}
    result["inputs"] = list(names)
    return result
