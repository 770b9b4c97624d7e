"""ONNX export with dynamic batch and sequence axes.

Two exporters, tried in this order by the bundle (the first whose output matches the eager model wins):

* ``"dynamo"``: ``torch.onnx.export(..., dynamo=True)`` (``torch.export`` based; ``Dim`` objects for the
  dynamic axes, the sequence axis bounded by ``max_seq_len``);
* ``"legacy"``: ``torch.onnx.export(..., dynamo=False)`` (TorchScript-tracing based; ``dynamic_axes``).

``onnx`` / ``onnxscript`` are imported only inside these functions.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .wrapper import InputSpec

__all__ = ["EXPORTERS", "export_onnx"]

EXPORTERS = ("dynamo", "legacy")
LEGACY_OPSET = 17
_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "torch._export", "onnxscript", "torch.fx")
_EXTERNAL_DATA_BYTES = 1_500_000_000  # protobuf's 2 GB limit, with room to spare


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' deprecation/tracer warnings and log chatter; failures still raise."""
    levels = {}
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.ERROR)
    try:
        # torch.export prints the partial graph of a failed export straight to stderr (thousands of lines).
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _param_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def export_onnx(
    wrapper: nn.Module,
    example: Sequence[Tensor],
    specs: Sequence[InputSpec],
    path: str | Path,
    *,
    exporter: str = "dynamo",
    max_seq_len: int | None = None,
    output_axes: dict[int, str] | None = None,
) -> dict[str, Any]:
    """Write ``wrapper`` (inputs -> logits) to ``path`` as ONNX with the dynamic axes of ``specs``.

    Args:
        wrapper: a module whose forward takes the tensors of ``example`` positionally and returns logits.
        example: the inputs to trace with (batch size >= 2 keeps the batch axis symbolic).
        specs: name and dynamic axes of each input.
        exporter: ``"dynamo"`` or ``"legacy"``.
        max_seq_len: upper bound of the sequence axes (``dynamo`` only).
        output_axes: dynamic axes of the ``logits`` output (``legacy`` only; default batch only).

    Returns:
        ``{"exporter", "opset"}``. Raises whatever the exporter raised.
    """
    import onnx  # noqa: F401  (fail early, with the real ImportError, when the extra is missing)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".data")):
        stale.unlink(missing_ok=True)
    names = [s.name for s in specs]
    wrapper = wrapper.eval()
    if exporter == "dynamo":
        from torch.export import Dim

        dims: dict[str, Any] = {}

        def dim(name: str) -> Any:
            if name not in dims:
                bounded = max_seq_len is not None and name != "batch"
                dims[name] = Dim(name, max=max_seq_len) if bounded else Dim(name)
            return dims[name]

        dynamic_shapes = tuple({axis: dim(n) for axis, n in s.axes.items()} for s in specs)
        external = _param_bytes(wrapper) > _EXTERNAL_DATA_BYTES
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                wrapper,
                tuple(example),
                str(path),
                dynamo=True,
                input_names=names,
                output_names=["logits"],
                dynamic_shapes=dynamic_shapes,
                external_data=external,
                verbose=False,
                report=False,
            )
        opset = None
        if program is not None:
            with contextlib.suppress(Exception):
                opset = next((o.version for o in program.model_proto.opset_import if o.domain in ("", "ai.onnx")), None)
        if not path.is_file():
            raise RuntimeError(f"the dynamo exporter wrote no file at {path}")
        return {"exporter": "dynamo", "opset": opset}
    if exporter == "legacy":
        dynamic_axes: dict[str, dict[int, str]] = {s.name: dict(s.axes) for s in specs}
        dynamic_axes["logits"] = dict(output_axes or {0: "batch"})
        with _quiet(), torch.no_grad():
            torch.onnx.export(
                wrapper,
                tuple(example),
                str(path),
                dynamo=False,
                input_names=names,
                output_names=["logits"],
                dynamic_axes=dynamic_axes,
                opset_version=LEGACY_OPSET,
                do_constant_folding=True,
            )
        return {"exporter": "legacy", "opset": LEGACY_OPSET}
    raise ValueError(f"unknown ONNX exporter {exporter!r}; use one of {EXPORTERS}")


def check_model(path: str | Path) -> None:
    """``onnx.checker`` on the saved file (by path, so external data is fine)."""
    import onnx

    onnx.checker.check_model(str(path))
