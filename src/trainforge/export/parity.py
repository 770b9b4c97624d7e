"""Parity: reload an exported artefact in a fresh Python process and compare it with the eager model.

The child process gets the inputs as an ``.npz`` file, loads the artefact with ONNX Runtime (``onnx``) or
``torch.jit.load`` (``torchscript``) only, runs every case and writes the outputs to another ``.npz``; the
parent compares them with the eager outputs. The child imports neither trainforge nor the model's code, like a
user of the bundle.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_TOLERANCE", "ParityResult", "compare", "run_fresh"]

DEFAULT_TOLERANCE = 1e-4  # fp32 max abs difference

# Runs in the child: argv = format, artefact, inputs.npz, outputs.npz, input names (JSON), case count.
_CHILD = r"""
import json, sys
import numpy as np
fmt, artefact, in_path, out_path = sys.argv[1:5]
names = json.loads(sys.argv[5]); n_cases = int(sys.argv[6])
data = np.load(in_path)
cases = [[data[f"{i}:{n}"] for n in names] for i in range(n_cases)]
outs = {}
if fmt == "onnx":
    import onnxruntime as ort
    opts = ort.SessionOptions(); opts.log_severity_level = 3
    sess = ort.InferenceSession(artefact, sess_options=opts, providers=["CPUExecutionProvider"])
    feed_names = [i.name for i in sess.get_inputs()]
    by_name = set(feed_names) <= set(names)  # by name: an exporter may drop an input the graph does not use
    for i, arrays in enumerate(cases):
        feed = {n: a for n, a in zip(names, arrays) if n in feed_names} if by_name else dict(zip(feed_names, arrays))
        outs[str(i)] = sess.run(None, feed)[0]
elif fmt == "torchscript":
    import torch
    module = torch.jit.load(artefact, map_location="cpu").eval()
    with torch.no_grad():
        for i, arrays in enumerate(cases):
            out = module(*[torch.from_numpy(a) for a in arrays])
            outs[str(i)] = out.detach().cpu().numpy()
else:
    raise SystemExit(f"unknown format {fmt}")
np.savez(out_path, **outs)
"""


@dataclass
class ParityResult:
    passed: bool
    max_abs_diff: float | None
    tolerance: float
    cases: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    fresh_process: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "fresh_process": self.fresh_process,
            "cases": self.cases,
            "error": self.error,
        }


def compare(
    expected: Sequence[np.ndarray],
    actual: Sequence[np.ndarray],
    input_shapes: Sequence[Sequence[Sequence[int]]],
    tolerance: float = DEFAULT_TOLERANCE,
    fresh_process: bool = True,
) -> ParityResult:
    """Per-case max abs difference; a shape mismatch or a non-finite difference fails the case."""
    cases: list[dict[str, Any]] = []
    worst = 0.0
    problems: list[str] = []
    for i, (exp, act) in enumerate(zip(expected, actual)):
        case: dict[str, Any] = {"input_shapes": [list(s) for s in input_shapes[i]], "output_shape": list(exp.shape)}
        if tuple(exp.shape) != tuple(act.shape):
            case["max_abs_diff"] = None
            case["error"] = f"output shape {list(act.shape)} != eager {list(exp.shape)}"
            problems.append(f"case {i}: {case['error']}")
            worst = float("inf")
        else:
            diff = float(np.max(np.abs(exp.astype(np.float64) - act.astype(np.float64)))) if exp.size else 0.0
            if not np.isfinite(diff):
                diff = float("inf")
            case["max_abs_diff"] = diff
            worst = max(worst, diff)
        cases.append(case)
    if len(actual) != len(expected):
        problems.append(f"got {len(actual)} outputs for {len(expected)} cases")
        worst = float("inf")
    passed = not problems and worst <= tolerance
    if not problems and not passed:
        problems.append(f"max abs difference {worst:.3g} > tolerance {tolerance:g}")
    return ParityResult(
        passed=passed,
        max_abs_diff=None if worst == float("inf") else worst,
        tolerance=tolerance,
        cases=cases,
        error="; ".join(problems) or None,
        fresh_process=fresh_process,
    )


def run_fresh(
    fmt: str,
    artefact: str | Path,
    names: Sequence[str],
    cases: Sequence[Sequence[np.ndarray]],
    timeout: float = 300.0,
) -> list[np.ndarray]:
    """Outputs of ``artefact`` (``onnx`` or ``torchscript``) on ``cases``, computed in a fresh process.

    Raises:
        RuntimeError: the child failed (its stderr tail is in the message) or timed out.
    """
    with tempfile.TemporaryDirectory(prefix="trainforge-parity-") as tmp:
        in_path, out_path = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        arrays = {f"{i}:{n}": a for i, case in enumerate(cases) for n, a in zip(names, case)}
        np.savez(in_path, **arrays)  # type: ignore[arg-type]
        cmd = [sys.executable, "-c", _CHILD, fmt, str(Path(artefact).resolve()), str(in_path), str(out_path), json.dumps(list(names)),
               str(len(cases))]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"reloading the {fmt} artefact in a fresh process timed out after {timeout:g}s") from exc
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
            raise RuntimeError(f"reloading the {fmt} artefact in a fresh process failed (exit {proc.returncode}): {tail}")
        with np.load(out_path) as data:
            return [np.array(data[str(i)]) for i in range(len(cases))]
