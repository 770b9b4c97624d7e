"""TorchScript export: ``torch.jit.script`` first, ``torch.jit.trace`` as the fallback.

Both produce a module whose ``forward`` takes the main input tensor(s) and returns the logits. Scripting keeps
data-dependent control flow; tracing records the ops run on the example input, so it is checked on other
batch sizes and sequence lengths before it is trusted (see :mod:`trainforge.export.parity`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from trainforge.tasks import TaskSpec
from trainforge.tasks.adapter import ModelAdapter

from .isolate import run_isolated
from .wrapper import make_wrapper

__all__ = ["export_torchscript", "script_model", "trace_model"]


# Scriptable wrappers: one per call shape (1 to 3 positional inputs) and output kind.
class _Tensor1(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class _Tuple1(_Tensor1):
    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)[0]


class _Dict1(_Tensor1):
    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)["logits"]


class _Tensor2(_Tensor1):
    def forward(self, x: Tensor, y: Tensor) -> Tensor:  # type: ignore[override]
        return self.model(x, y)


class _Tuple2(_Tensor1):
    def forward(self, x: Tensor, y: Tensor) -> Tensor:  # type: ignore[override]
        return self.model(x, y)[0]


class _Dict2(_Tensor1):
    def forward(self, x: Tensor, y: Tensor) -> Tensor:  # type: ignore[override]
        return self.model(x, y)["logits"]


class _Tensor3(_Tensor1):
    def forward(self, x: Tensor, y: Tensor, z: Tensor) -> Tensor:  # type: ignore[override]
        return self.model(x, y, z)


class _Tuple3(_Tensor1):
    def forward(self, x: Tensor, y: Tensor, z: Tensor) -> Tensor:  # type: ignore[override]
        return self.model(x, y, z)[0]


class _Dict3(_Tensor1):
    def forward(self, x: Tensor, y: Tensor, z: Tensor) -> Tensor:  # type: ignore[override]
        return self.model(x, y, z)["logits"]


_SCRIPT_WRAPPERS: dict[tuple[str, int], type[nn.Module]] = {
    ("tensor", 1): _Tensor1,
    ("tuple", 1): _Tuple1,
    ("dict", 1): _Dict1,
    ("tensor", 2): _Tensor2,
    ("tuple", 2): _Tuple2,
    ("dict", 2): _Dict2,
    ("tensor", 3): _Tensor3,
    ("tuple", 3): _Tuple3,
    ("dict", 3): _Dict3,
}


def _output_kind(raw: Any) -> str:
    if isinstance(raw, Tensor):
        return "tensor"
    if isinstance(raw, Mapping) and isinstance(raw.get("logits"), Tensor):
        return "dict"
    if isinstance(raw, (tuple, list)) and raw and isinstance(raw[0], Tensor) and raw[0].dim() >= 1:
        return "tuple"
    raise TypeError(
        f"scripting needs forward() to return logits as a tensor, a tuple starting with them, or a dict with "
        f"'logits'; it returned {type(raw).__name__}"
    )


def script_model(model: nn.Module, task: TaskSpec, input_names: Sequence[str], example: Sequence[Tensor]) -> Any:
    """``torch.jit.script`` of ``model`` behind a wrapper that returns only the logits.

    Raises:
        TypeError: the model's forward cannot be called positionally with the inputs, or its output has no
            scriptable logits.
        RuntimeError: ``torch.jit.script`` itself failed (unsupported Python in the model).
    """
    adapter = ModelAdapter(model, task)
    if adapter.use_cache_off:
        raise TypeError("forward() takes use_cache (a Hugging Face model); scripting is not attempted")
    for i, name in enumerate(input_names):
        param = adapter._param_for(name)
        if param is None and i == 0:
            continue  # the main input goes in positionally
        if i >= len(adapter.positional) or adapter.positional[i] != param:
            raise TypeError(
                f"forward() does not take {name!r} as positional argument {i} (positional parameters: "
                f"{adapter.positional}); scripting needs positional inputs"
            )
    with torch.no_grad():
        raw = model(*example)
    wrapper_cls = _SCRIPT_WRAPPERS[(_output_kind(raw), len(input_names))]
    return torch.jit.script(wrapper_cls(model))


def trace_model(model: nn.Module, task: TaskSpec, input_names: Sequence[str], example: Sequence[Tensor]) -> Any:
    """``torch.jit.trace`` of the logits wrapper on ``example`` (shapes and Python branches are recorded)."""
    wrapper = make_wrapper(model, task, input_names).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings: the parity check is what decides
        with torch.no_grad():
            return torch.jit.trace(wrapper, tuple(example), check_trace=False, strict=False)


def export_torchscript(
    model: nn.Module,
    task: TaskSpec,
    input_names: Sequence[str],
    example: Sequence[Tensor],
    path: str | Path,
    method: str = "script",
) -> dict[str, Any]:
    """Save ``model`` as TorchScript at ``path`` by ``method`` (``"script"`` or ``"trace"``); returns info.

    Raises whatever the scripting/tracing raised: the bundle records it and tries the next method.
    """
    if method == "script":
        module = script_model(model, task, input_names, example)
    elif method == "trace":
        module = trace_model(model, task, input_names, example)
    else:
        raise ValueError(f"unknown TorchScript method {method!r}; use 'script' or 'trace'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # PyTorch's C++ zip writer aborts the process (SIGABRT from a destructor) when a write fails, e.g. on a full
    # disk: it writes in a forked child, so a failure is an exception here and the trainer lives on.
    run_isolated(torch.jit.save, module, str(path), what="the TorchScript writer", target=path)
    return {"method": method}
