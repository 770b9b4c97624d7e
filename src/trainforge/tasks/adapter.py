"""Adapts a plain ``nn.Module`` to the loop: which batch fields its forward takes, and where its logits are.

Supported forwards include ``forward(input_ids)``, ``forward(idx, targets=None)``,
``forward(input_ids, attention_mask=None, labels=None)``, ``forward(pixel_values)`` and ``forward(**kwargs)``;
outputs may be a logits tensor, a ``(logits, loss)`` tuple, a dict, or an object with ``.logits``.

By default the loss is computed from the logits by the TaskSpec, so its normalisation is always right. A model
that returns only a loss is trained on that loss.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from trainforge.errors import ModelError
from trainforge.tasks.spec import LABEL_ALIAS

if TYPE_CHECKING:
    from trainforge.tasks import TaskSpec

# Parameter names under which a model may take each batch field (first match wins).
ALIASES: dict[str, tuple[str, ...]] = {
    "input_ids": ("input_ids", "idx", "x", "input", "inputs", "tokens", "src", "input_tensor"),
    "pixel_values": ("pixel_values", "x", "images", "image", "inputs", "input", "pixels"),
    "decoder_input_ids": ("decoder_input_ids", "tgt", "decoder_input", "decoder_inputs", "target_input"),
    "attention_mask": ("attention_mask",),
    "token_type_ids": ("token_type_ids",),
    "decoder_attention_mask": ("decoder_attention_mask",),
}
# Names a forward uses for the targets it computes its own loss from.
LABEL_PARAMS = ("labels", "targets", "target", "y")

MODES = ("logits", "targets", "model_loss")


@dataclass
class Output:
    logits: Tensor | None
    loss: Tensor | None


def extract(output: Any) -> Output:
    """Find logits and loss in whatever the model returned."""
    if isinstance(output, Tensor):
        return Output(None, output) if output.dim() == 0 else Output(output, None)
    if isinstance(output, Mapping):  # plain dicts and Hugging Face ModelOutput
        logits, loss = output.get("logits"), output.get("loss")
        return Output(logits if isinstance(logits, Tensor) else None, loss if isinstance(loss, Tensor) else None)
    if hasattr(output, "logits"):
        loss = getattr(output, "loss", None)
        return Output(output.logits, loss if isinstance(loss, Tensor) else None)
    if isinstance(output, (tuple, list)):
        tensors = [t for t in output if isinstance(t, Tensor)]
        logits = next((t for t in tensors if t.dim() >= 1), None)
        loss = next((t for t in tensors if t.dim() == 0), None)
        return Output(logits, loss)
    return Output(None, None)


def _describe_output(output: Any) -> str:
    if isinstance(output, Tensor):
        return f"a tensor of shape {tuple(output.shape)}"
    if isinstance(output, Mapping):
        return f"a {type(output).__name__} with keys {list(output.keys())}"
    if isinstance(output, (tuple, list)):
        inner = ", ".join(_describe_output(o) if isinstance(o, Tensor) else type(o).__name__ for o in output)
        return f"a {type(output).__name__} of ({inner})"
    return f"an object of type {type(output).__qualname__}"


class ModelAdapter:
    """Calls a model with the right arguments and hands back its logits (or its own loss)."""

    def __init__(self, model: nn.Module, task: TaskSpec) -> None:
        self.task = task
        forward = model.forward
        try:
            sig = inspect.signature(forward)
        except (TypeError, ValueError):  # builtins or odd wrappers: fall back to passing the input only
            sig = inspect.Signature()
        params = [p for p in sig.parameters.values() if p.name != "self"]
        self.var_keyword = any(p.kind is p.VAR_KEYWORD for p in params)
        self.names = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        self.positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self.label_param = next((n for n in LABEL_PARAMS if n in self.names), None)
        # forward(input_ids, labels) with no default for labels cannot be called without them.
        self.label_required = self.label_param is not None and sig.parameters[self.label_param].default is sig.empty
        self.mode = "logits"
        self._plans: dict[tuple[str, ...], tuple[list[tuple[str, str]], str | None]] = {}
        self.use_cache_off = "use_cache" in self.names

    def _param_for(self, field: str) -> str | None:
        for name in ALIASES.get(field, (field,)):
            if name in self.names:
                return name
        if self.var_keyword and field in ALIASES:
            return field
        return None

    def arguments(self, batch: Mapping[str, Tensor], labels: Tensor | None) -> tuple[list[Tensor], dict[str, Any]]:
        """Positional and keyword arguments for one forward call."""
        keys = tuple(batch)
        plan = self._plans.get(keys)
        if plan is None:  # worked out once per set of batch fields, not per step
            plan = self._plans[keys] = self._plan(keys)
        fields, positional = plan
        kwargs: dict[str, Any] = {name: batch[field] for field, name in fields}
        args: list[Tensor] = [batch[positional]] if positional is not None else []
        if self.use_cache_off:
            kwargs["use_cache"] = False  # no key/value cache while training
        if labels is not None and self.mode != "logits" and self.label_param is not None:
            kwargs[self.label_param] = self._labels_for_model(labels)
        return args, kwargs

    def _plan(self, keys: tuple[str, ...]) -> tuple[list[tuple[str, str]], str | None]:
        """Which batch field goes to which keyword, and which (if any) goes positionally."""
        fields: list[tuple[str, str]] = []
        used: set[str] = set()
        for field in keys:
            if field == self.task.label_field or (field == LABEL_ALIAS and self.task.label_field == "labels"):
                continue  # labels reach the model only as the label argument, in the modes that pass it
            name = self._param_for(field)
            if name is not None and name not in used:
                fields.append((field, name))
                used.add(name)
        primary = self.task.input_field
        passed = any(field == primary for field, _ in fields)
        # e.g. forward(self, seq): the main input goes positionally when no parameter is named for it
        return fields, primary if primary in keys and not passed else None

    def _labels_for_model(self, labels: Tensor) -> Tensor:
        if self.label_param == "labels":
            return labels  # Hugging Face convention: unshifted, ignore_index -100; the model shifts
        # `targets`-style forwards (nanoGPT) expect next-token targets aligned with the outputs.
        targets = labels
        if self.task.task_type == "language_modeling":
            targets = torch.full_like(labels, self.task.ignore_index)
            targets[:, :-1] = labels[:, 1:]
        if self.mode == "targets":
            # Passed only so the model returns logits for every position; its own loss is not used, and a
            # valid id keeps its loss code from failing on our ignore_index.
            targets = targets.clamp(min=0)
        return targets

    def forward(self, model: nn.Module, batch: Mapping[str, Tensor], labels: Tensor | None) -> Output:
        args, kwargs = self.arguments(batch, labels)
        return extract(model(*args, **kwargs))

    def loss_sum(self, out: Output, labels: Tensor, count: Tensor | int) -> Tensor:
        """Summed loss of a micro-batch (divided later by the window's target count)."""
        if self.mode == "model_loss":
            assert out.loss is not None
            # The model averaged over its own targets; weighting by the count restores a token-weighted sum.
            return out.loss.float() * count
        assert out.logits is not None
        return self.task.loss_total(out.logits, labels)

    def loss_mean(self, out: Output, labels: Tensor) -> Tensor:
        """Mean loss of a micro-batch over its targets: ``loss_sum / count`` when the count is positive."""
        if self.mode == "model_loss":
            assert out.loss is not None
            return out.loss.float()  # the model's own mean
        assert out.logits is not None
        return self.task.loss_total(out.logits, labels, mean=True)

    @torch.no_grad()
    def probe(self, model: nn.Module, batch: Mapping[str, Tensor], labels: Tensor) -> str:
        """Decide the mode from one forward pass in eval mode (no dropout, no RNG use) before step 0."""
        was_training = model.training
        model.eval()
        try:
            self.mode = "logits"
            has_logits = True  # a forward that requires labels is only ever called with them
            if not self.label_required:
                out = self._call_checked(model, batch, None)
                if out.logits is not None and self._full_length(out.logits, batch):
                    self.task.validate_logits(out.logits)
                    return self.mode
                has_logits = out.logits is not None
            if self.label_param is not None:
                self.mode = "targets" if has_logits else "model_loss"
                out = self._call_checked(model, batch, labels)
                if self.mode == "targets" and out.logits is not None and self._full_length(out.logits, batch):
                    self.task.validate_logits(out.logits)
                    return self.mode
                if out.loss is not None and out.logits is None:
                    self.mode = "model_loss"
                    return self.mode
            raise ModelError(
                f"The model's output has no usable logits for task {self.task.task_type!r}: it returned "
                f"{_describe_output(self._last_raw)}. Expected logits of shape {self._expected(batch)} as a "
                "tensor, a (logits, loss) tuple, a dict with 'logits', or an object with .logits; or a scalar "
                "loss when given labels. Fix: return the logits from forward()."
            )
        finally:
            model.train(was_training)

    def _call_checked(self, model: nn.Module, batch: Mapping[str, Tensor], labels: Tensor | None) -> Output:
        args, kwargs = self.arguments(batch, labels)
        try:
            raw = model(*args, **kwargs)
        except TypeError as exc:
            raise ModelError(
                f"Calling the model failed: {exc}. trainforge passed positional {len(args)} tensor(s) and "
                f"keywords {sorted(kwargs)} (from batch fields {sorted(batch)}). "
                "Fix: name forward()'s parameters like the batch fields (input_ids, attention_mask, labels, "
                "pixel_values, decoder_input_ids) or accept **kwargs."
            ) from exc
        self._last_raw = raw
        return extract(raw)

    def _full_length(self, logits: Tensor, batch: Mapping[str, Tensor]) -> bool:
        if not self.task.is_token_task:
            return True
        field = "decoder_input_ids" if self.task.task_type == "seq2seq" and "decoder_input_ids" in batch else "input_ids"
        return logits.dim() == 3 and field in batch and logits.shape[1] == batch[field].shape[1]

    def _expected(self, batch: Mapping[str, Tensor]) -> str:
        if self.task.is_token_task:
            return f"[batch, seq_len, {self.task.vocab_size}]"
        return f"[batch, {self.task.num_classes}]"
