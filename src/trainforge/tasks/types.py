"""One small object per task type: what differs between language modelling, classification, seq2seq and vision.

``TaskSpec`` holds the fields a user sets and keeps one of these objects (``TASK_KINDS[task_type]``) to ask
every question whose answer depends on the task type: which input field is the default, which fields are
required or meaningless, how labels become the targets the logits are compared with (the causal-LM shift), how
many targets count, the logits' shape, which metrics are reported and how big the output layer is. The batch and
logit checks (``tasks/checks.py``) read the same objects.

The objects are stateless singletons: nothing here is saved with a run (a checkpoint stores ``task_type``, the
object is looked up again when the spec is rebuilt).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple, Protocol

import torch
from torch import Tensor

from trainforge.errors import DataError
from trainforge.tasks import losses


class TaskFields(Protocol):
    """What the type objects and the checks read of a task: a ``TaskSpec`` (named here, not imported, so that
    ``tasks/spec.py`` can import this module and ``tasks/checks.py``)."""

    @property
    def task_type(self) -> str: ...
    @property
    def kind(self) -> TaskType: ...
    @property
    def vocab_size(self) -> int | None: ...
    @property
    def max_seq_len(self) -> int | None: ...
    @property
    def pad_token_id(self) -> int | None: ...
    @property
    def num_classes(self) -> int | None: ...
    @property
    def ignore_index(self) -> int: ...
    @property
    def input_field(self) -> str: ...
    @property
    def label_field(self) -> str: ...
    @property
    def decoder_start_token_id(self) -> int | None: ...
    @property
    def image_size(self) -> int | None: ...
    @property
    def num_channels(self) -> int | None: ...
    @property
    def num_outputs(self) -> int: ...
    def targets(self, batch: Mapping[str, Tensor]) -> Tensor: ...
    def labels_from_inputs(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor: ...


VOCAB_FIX = "set it to the size of the tokenizer's vocabulary (the model's output layer), e.g. 50257 for GPT-2"
CONTEXT_FIX = "set it to the model's context length"
CLASSES_FIX = "set it to the number of labels (the size of the model's output layer); use 2 for binary tasks"


class SizeRule(NamedTuple):
    """An integer field's rule: the smallest value, whether the task needs it, and the fix for a bad value."""

    field: str
    minimum: int
    required: bool
    fix: str


class TaskType:
    """What one task type decides. Subclasses set the class attributes and override what differs.

    The defaults describe a per-example task: one label per example, no shift.
    """

    name: ClassVar[str]
    #: The batch key of the model's input when ``TaskSpec.input_field`` is left empty.
    default_input_field: ClassVar[str] = "input_ids"
    #: Fields that mean nothing for this type: setting one is almost always the wrong constructor.
    unused_fields: ClassVar[tuple[str, ...]] = ()
    #: The loss is per token: logits ``[B, T, V]``, labels ``[B, T]``, ``num_outputs`` is ``vocab_size``.
    is_token_task: ClassVar[bool] = False
    #: The metrics a validation pass reports, in order.
    metric_names: ClassVar[tuple[str, ...]] = ("loss", "accuracy")
    #: The input is an image batch ``[B, C, H, W]`` (else token ids, or float features for classification).
    pixel_inputs: ClassVar[bool] = False
    #: Float inputs are accepted as features when the task has no vocabulary (no tokenizer).
    float_features: ClassVar[bool] = False
    #: Causal: the labels have the inputs' shape and are shifted against the logits (the last position predicts
    #: nothing); a batch without labels has its input ids as labels.
    causal: ClassVar[bool] = False
    #: Shortest input sequence that gives the loss something to predict.
    min_input_len: ClassVar[int] = 1
    #: The batch may carry ``decoder_input_ids`` (encoder-decoder), checked like the input ids.
    decoder_inputs: ClassVar[bool] = False
    #: The fix named when the input field is missing from a batch.
    missing_input_fix: ClassVar[str] = "return the token ids under 'input_ids'"
    #: The fix named when the label field is missing from a batch.
    missing_labels_fix: ClassVar[str] = "return each example's class index under 'labels'"

    def size_rules(self) -> tuple[SizeRule, ...]:
        """The integer fields checked when a spec is built, in the order their problems are reported."""
        return (
            SizeRule("vocab_size", 2, self.is_token_task, VOCAB_FIX),
            SizeRule("max_seq_len", 1, False, CONTEXT_FIX),
        )

    def num_outputs(self, vocab_size: int | None, num_classes: int | None) -> int | None:
        """Size of the logits' last dimension."""
        return vocab_size if self.is_token_task else num_classes

    def defaults(self, task: TaskFields) -> dict[str, Any]:
        """Field values of a new spec filled in from its others (``{}``: none)."""
        return {}

    # ------------------------------------------------------------------ hot path (no host syncs)

    def targets_without_labels(self, task: TaskFields, batch: Mapping[str, Tensor]) -> Tensor:
        """The targets of a batch that has no label field: an error, unless the type derives them."""
        raise self.missing(task, batch, task.label_field, self.missing_labels_fix)

    def loss_targets(self, labels: Tensor, ignore_index: int) -> Tensor:
        """Targets aligned with the raw logits (same shape minus the class dim)."""
        return labels

    def prepare_targets(self, labels: Tensor) -> Tensor:
        """What the aligned logits are compared with."""
        return labels

    def align_logits(self, logits: Tensor) -> Tensor:
        """Logits aligned with :meth:`prepare_targets`."""
        return logits

    def count_targets(self, labels: Tensor, ignore_index: int) -> Tensor:
        """How many targets count (0-d int64), from the unshifted labels alone."""
        return (labels != ignore_index).sum(dtype=torch.int64)

    # ------------------------------------------------------------------ messages

    @staticmethod
    def missing(task: TaskFields, batch: Mapping[str, Any], field: str, fix: str) -> DataError:
        """The error for a batch without ``field``, naming the keys it has."""
        keys = "[" + ", ".join(repr(k) for k in batch) + "]"
        setting = "label_field" if field == task.label_field else "input_field"
        return DataError(
            f"batch has no {field!r} field (keys present: {keys}); {fix} from your dataset or "
            f"collator, or set TaskSpec {setting} to the key your data uses"
        )


class LanguageModeling(TaskType):
    """Causal LM: logits ``[B, T, V]`` at position ``t`` predict token ``t + 1``; a bare sequence is its own label."""

    name = "language_modeling"
    unused_fields = ("num_classes", "decoder_start_token_id", "image_size", "num_channels")
    is_token_task = True
    metric_names = ("loss", "perplexity", "accuracy")
    causal = True
    min_input_len = 2

    def size_rules(self) -> tuple[SizeRule, ...]:
        return (
            SizeRule("vocab_size", 2, True, VOCAB_FIX),
            SizeRule(
                "max_seq_len",
                2,
                True,
                "a language model needs at least 2 tokens to predict one; set it to the model's context length",
            ),
        )

    def targets_without_labels(self, task: TaskFields, batch: Mapping[str, Tensor]) -> Tensor:
        ids = batch.get(task.input_field)
        if ids is None:
            raise self.missing(task, batch, task.input_field, self.missing_input_fix)
        mask = batch.get("attention_mask")
        if mask is None and task.pad_token_id is None and ids.dtype == torch.long:
            return ids  # nothing to mark as padding: the ids are the labels (every step of plain token data)
        return task.labels_from_inputs(ids, mask)

    def loss_targets(self, labels: Tensor, ignore_index: int) -> Tensor:
        # Shifted with ignore_index appended, so the large logits tensor is never sliced and copied.
        return losses.causal_lm_targets(labels, ignore_index)

    def prepare_targets(self, labels: Tensor) -> Tensor:
        return losses.shift_labels(labels)

    def align_logits(self, logits: Tensor) -> Tensor:
        return losses.drop_last_position(logits)

    def count_targets(self, labels: Tensor, ignore_index: int) -> Tensor:
        # (prepare_targets + count_valid, inlined: the training step calls this for every micro-batch)
        return (labels[..., 1:] != ignore_index).sum(dtype=torch.int64)


class Classification(TaskType):
    """One label per example: logits ``[B, C]``, labels ``[B]``; inputs are token ids or float features."""

    name = "classification"
    unused_fields = ("decoder_start_token_id", "image_size", "num_channels")
    float_features = True

    def size_rules(self) -> tuple[SizeRule, ...]:
        return (*super().size_rules(), SizeRule("num_classes", 2, True, CLASSES_FIX))


class Seq2Seq(TaskType):
    """Encoder-decoder: decoder logits ``[B, T, V]`` against labels ``[B, T]`` with no shift (the decoder input is
    already the right-shifted target)."""

    name = "seq2seq"
    unused_fields = ("num_classes", "image_size", "num_channels")
    is_token_task = True
    metric_names = ("loss", "perplexity", "accuracy")
    decoder_inputs = True
    missing_labels_fix = "return the target token ids under 'labels' (padding set to ignore_index)"

    def size_rules(self) -> tuple[SizeRule, ...]:
        return (SizeRule("vocab_size", 2, True, VOCAB_FIX), SizeRule("max_seq_len", 1, True, CONTEXT_FIX))

    def defaults(self, task: TaskFields) -> dict[str, Any]:
        if task.decoder_start_token_id is None:
            # T5/BART convention: the decoder starts from the pad token unless told otherwise.
            return {"decoder_start_token_id": task.pad_token_id}
        return {}


class VisionClassification(TaskType):
    """Image classification: ``pixel_values`` ``[B, C, H, W]`` in, ``[B, num_classes]`` logits out."""

    name = "vision_classification"
    default_input_field = "pixel_values"
    unused_fields = ("vocab_size", "max_seq_len", "pad_token_id", "decoder_start_token_id", "bos_token_id",
                     "eos_token_id")
    pixel_inputs = True
    missing_input_fix = "return the images under 'pixel_values'"

    def size_rules(self) -> tuple[SizeRule, ...]:
        return (
            *super().size_rules(),
            SizeRule("num_classes", 2, True, CLASSES_FIX),
            SizeRule("image_size", 1, False, "set it to the image height/width in pixels, e.g. 32"),
            SizeRule("num_channels", 1, False, "use 3 for RGB images or 1 for grayscale"),
        )


#: Every task type by name, in the order they are listed to users.
TASK_KINDS: dict[str, TaskType] = {
    kind.name: kind for kind in (LanguageModeling(), Classification(), Seq2Seq(), VisionClassification())
}

#: Rules for a spec whose ``task_type`` is not known (its own problem is reported; the rest are still checked).
UNKNOWN_KIND_RULES = (SizeRule("vocab_size", 2, False, VOCAB_FIX), SizeRule("max_seq_len", 1, False, CONTEXT_FIX))

__all__ = [
    "TASK_KINDS",
    "Classification",
    "LanguageModeling",
    "Seq2Seq",
    "SizeRule",
    "TaskType",
    "VisionClassification",
]
