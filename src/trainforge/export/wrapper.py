"""What an exported graph computes: the model's main input tensor(s) in, its logits out.

:class:`ExportWrapper` calls the model the way the training loop does (through
:class:`~trainforge.tasks.adapter.ModelAdapter`), so ``forward(input_ids)``, ``forward(idx, targets=None)``,
``forward(**kwargs)``, dict outputs, ``(logits, loss)`` tuples and Hugging Face outputs with ``.logits`` all
export the same way. The model is called *without* labels: a nanoGPT-style model that returns only the
last position's logits when no targets are given is exported as it is (logits ``[B, 1, V]``).

This module also builds the sample inputs every export is checked on: two batch sizes and two sequence
lengths (at most ``max_seq_len``), images of ``image_size``. When the model's forward takes ``attention_mask``
and the mask changes its output (:func:`export_samples`), the mask is a graph input too (after the token inputs), and the larger case is
a padded batch: rows after the first end in padding (mask 0, ``pad_token_id``), so parity covers the mask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from trainforge.errors import ModelError
from trainforge.tasks import TaskSpec
from trainforge.tasks.adapter import ModelAdapter, extract

__all__ = ["ExportWrapper", "InputSpec", "Samples", "build_samples", "export_samples", "make_wrapper",
           "mask_changes_output", "resize_batch", "takes_attention_mask"]

MASK = "attention_mask"


@dataclass
class InputSpec:
    """One graph input: its name, kind (``tokens``, ``pixels``, ``features``) and dynamic axes."""

    name: str
    kind: str
    dtype: str
    axes: dict[int, str] = field(default_factory=dict)  # dynamic axis index -> symbolic name
    shape: list[Any] = field(default_factory=list)  # e.g. ["batch", "seq"] or ["batch", 3, 32, 32]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass
class Samples:
    """The inputs an export is traced with and checked on."""

    specs: list[InputSpec]
    cases: list[tuple[Tensor, ...]]  # cases[-1] is the one the exporters trace with

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def example(self) -> tuple[Tensor, ...]:
        return self.cases[-1]

    def with_batch(self, batch_size: int) -> tuple[Tensor, ...]:
        """The tracing example with ``batch_size`` rows (rows repeated or dropped)."""
        return tuple(resize_batch(t, batch_size) for t in self.example)


class _Wrapper(nn.Module):
    def __init__(self, model: nn.Module, task: TaskSpec, input_names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.adapter = ModelAdapter(model, task)
        self.input_names = tuple(input_names)

    def _logits(self, inputs: Sequence[Tensor]) -> Tensor:
        batch = dict(zip(self.input_names, inputs))
        args, kwargs = self.adapter.arguments(batch, None)
        out = extract(self.model(*args, **kwargs))
        if out.logits is None:
            raise ModelError(
                "the model's forward returned no logits tensor when called without labels "
                f"(inputs {list(self.input_names)}); export needs a forward that returns logits"
            )
        return out.logits


class ExportWrapper(_Wrapper):
    """``forward(x) -> logits`` around any model the training loop accepts."""

    def forward(self, x: Tensor) -> Tensor:
        return self._logits((x,))


class ExportWrapper2(_Wrapper):
    """``forward(x, y) -> logits`` for encoder-decoder models (``input_ids``, ``decoder_input_ids``)."""

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self._logits((x, y))


class ExportWrapper3(_Wrapper):
    """``forward(x, y, z) -> logits`` (e.g. ``input_ids``, ``decoder_input_ids``, ``attention_mask``)."""

    def forward(self, x: Tensor, y: Tensor, z: Tensor) -> Tensor:
        return self._logits((x, y, z))


def make_wrapper(model: nn.Module, task: TaskSpec, input_names: Sequence[str]) -> nn.Module:
    cls = {1: ExportWrapper, 2: ExportWrapper2, 3: ExportWrapper3}[len(input_names)]
    return cls(model, task, input_names)


def takes_attention_mask(model: nn.Module, task: TaskSpec) -> bool:
    """True when ``model``'s forward names an ``attention_mask`` parameter and the task's inputs are tokens: the
    exports then take the mask as an input, as the model did in training."""
    if task.task_type == "vision_classification":
        return False
    return MASK in ModelAdapter(model, task).names


def mask_changes_output(model: nn.Module, task: TaskSpec, samples: Samples) -> bool:
    """Whether the model's logits on the padded case depend on its ``attention_mask`` input (an exception says
    yes: the export then reports the failure itself)."""
    i = samples.names.index(MASK)
    case = samples.example
    ones = (*case[:i], torch.ones_like(case[i]), *case[i + 1 :])
    wrapper = make_wrapper(model, task, samples.names).eval()
    try:
        with torch.no_grad():
            return not torch.equal(wrapper(*case), wrapper(*ones))
    except Exception:  # noqa: BLE001 - the export attempts report the real error
        return True


def export_samples(
    model: nn.Module,
    task: TaskSpec,
    sample_batch: Mapping[str, Tensor] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    max_seq_len: int | None = None,
) -> Samples:
    """The export's inputs and checking cases: :func:`build_samples`, with ``attention_mask`` as an input when the
    forward takes it and it changes the output. A forward that accepts the mask and ignores it (trainforge's GPT,
    correct for right-padded causal LM) exports without it: the graph input would be dead."""
    samples = build_samples(task, sample_batch, dtype=dtype, max_seq_len=max_seq_len,
                            attention_mask=takes_attention_mask(model, task))
    if MASK in samples.names and not mask_changes_output(model, task, samples):
        samples = build_samples(task, sample_batch, dtype=dtype, max_seq_len=max_seq_len)
    return samples


def _pad_rows(ids: Tensor, pad_id: int) -> tuple[Tensor, Tensor]:
    """A padded version of a token batch: row ``i > 0`` keeps its first ``T - i*T//(2B)`` tokens (at least half),
    the rest is ``pad_id`` with mask 0. The first row stays whole, so the batch keeps its length."""
    b, t = ids.shape[0], ids.shape[1]
    mask = torch.ones_like(ids)
    for i in range(1, b):
        keep = max(1, t - max(1, i * t // (2 * b)))
        mask[i, keep:] = 0
    return ids.masked_fill(mask == 0, pad_id), mask


def resize_batch(t: Tensor, batch_size: int) -> Tensor:
    """``t`` with ``batch_size`` rows, cycling through its rows."""
    index = torch.arange(batch_size, device=t.device) % t.shape[0]
    return t.index_select(0, index).contiguous()


def _token_lengths(task: TaskSpec, max_seq_len: int | None) -> tuple[int, int]:
    longest = min(max_seq_len, 16) if max_seq_len is not None else 16
    low = 2 if task.task_type == "language_modeling" else 1
    longest = max(longest, low)
    short = max(low, longest // 2)
    return short, longest


def _kind(name: str, tensor: Tensor, task: TaskSpec) -> InputSpec:
    if tensor.is_floating_point():
        if task.task_type == "vision_classification" or tensor.dim() == 4:
            return InputSpec(name, "pixels", "float32", {0: "batch"}, ["batch", *tensor.shape[1:]])
        return InputSpec(name, "features", "float32", {0: "batch"}, ["batch", *tensor.shape[1:]])
    seq = "decoder_seq" if name == "decoder_input_ids" else "seq"
    axes = {0: "batch", 1: seq} if tensor.dim() >= 2 else {0: "batch"}
    shape: list[Any] = ["batch", seq, *tensor.shape[2:]] if tensor.dim() >= 2 else ["batch"]
    return InputSpec(name, "mask" if name == MASK else "tokens", "int64", axes, shape)


def build_samples(
    task: TaskSpec,
    sample_batch: Mapping[str, Tensor] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    max_seq_len: int | None = None,
    attention_mask: bool = False,
) -> Samples:
    """Two checking cases (different batch sizes and sequence lengths) for ``task``.

    Without ``sample_batch`` they are made up from the TaskSpec: random token ids below ``vocab_size``, or
    random images ``[B, num_channels, image_size, image_size]``; ``max_seq_len`` (default the TaskSpec's) caps
    the sequence lengths. With it, the batch itself is the tracing
    case and its first row (with half the sequence, for token inputs) is the other.

    Raises:
        ValueError: no ``sample_batch`` and the TaskSpec does not say what the inputs look like.
    """
    names = [task.input_field]
    if task.task_type == "seq2seq":
        names.append("decoder_input_ids")
    if sample_batch is not None:
        missing = [n for n in names if n not in sample_batch or not isinstance(sample_batch[n], Tensor)]
        if missing:
            raise ValueError(
                f"sample_batch has no tensor for {missing} (it has {sorted(sample_batch)}); the export needs "
                f"{names} for a {task.task_type} task"
            )
        big = tuple(sample_batch[n].detach().cpu() for n in names)
        big = tuple(t.to(dtype) if t.is_floating_point() else t.long() for t in big)
        if attention_mask:
            given = sample_batch.get(MASK)
            if isinstance(given, Tensor) and tuple(given.shape) == tuple(big[0].shape) and bool((given == 0).any()):
                mask = given.detach().cpu().long()
                big = (*big, mask)
            elif not big[0].is_floating_point() and big[0].dim() == 2:
                ids, mask = _pad_rows(big[0], task.pad_token_id or 0)
                big = (ids, *big[1:], mask)
            else:
                attention_mask = False
        if attention_mask:
            names.append(MASK)
        small = []
        for t in big:
            s = t[:1]
            if not t.is_floating_point() and t.dim() >= 2 and t.shape[1] >= 4:
                s = s[:, : max(2, t.shape[1] // 2)]
            small.append(s.contiguous())
        specs = [_kind(n, t, task) for n, t in zip(names, big)]
        return Samples(specs, [tuple(small), big])

    gen = torch.Generator().manual_seed(0)
    cases: list[tuple[Tensor, ...]] = []
    if task.task_type == "vision_classification":
        if task.image_size is None:
            raise ValueError("TaskSpec.image_size is not set; pass sample_batch with pixel_values to export")
        channels, size = task.num_channels or 3, task.image_size
        for b in (1, 3):
            cases.append((torch.randn((b, channels, size, size), generator=gen).to(dtype),))
    else:
        if task.vocab_size is None:
            raise ValueError(
                f"TaskSpec {task.name!r} has no vocab_size, so export cannot make up sample inputs; "
                "pass sample_batch (a batch dict like the training data's)"
            )
        short, longest = _token_lengths(task, max_seq_len if max_seq_len is not None else task.max_seq_len)
        for b, length in ((1, short), (3, longest)):
            x = torch.randint(0, task.vocab_size, (b, length), generator=gen)
            case: tuple[Tensor, ...] = (x,)
            if task.task_type == "seq2seq":
                dec_len = max(1, length - 1)
                case = (x, torch.randint(0, task.vocab_size, (b, dec_len), generator=gen))
            if attention_mask:
                ids, mask = _pad_rows(x, task.pad_token_id or 0)
                case = (ids, *case[1:], mask)
            cases.append(case)
        if attention_mask:
            names.append(MASK)
    specs = [_kind(n, t, task) for n, t in zip(names, cases[-1])]
    return Samples(specs, cases)
