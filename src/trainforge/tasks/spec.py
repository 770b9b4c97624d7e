"""``TaskSpec``: what a task's batches contain, how its loss is computed, and which metrics it reports.

The loss follows the task type, never the modality alone:

* ``language_modeling``: causal LM; logits ``[B, T, V]`` at position ``t`` predict token ``t + 1``, so the
  labels are shifted and the last logit position is dropped; ``ignore_index`` and padding are ignored.
* ``classification``: one label per example; logits ``[B, C]``, labels ``[B]``.
* ``seq2seq``: decoder logits ``[B, T, V]`` against labels ``[B, T]`` with no shift (the decoder input is
  already the right-shifted target).
* ``vision_classification``: like classification, with ``pixel_values`` ``[B, C, H, W]`` as input.

What differs between the task types lives in one small object per type (``tasks/types.py``), which the spec
keeps as ``kind``; the batch and logit checks are in ``tasks/checks.py``.

The methods the training loop calls every step (``targets``, ``loss_sum``, ``count_targets``,
``prepare_targets``, ``align_logits`` and the metric updates) never synchronise with the device. The
``validate_*`` methods are called once before step 0 and may read values freely.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from trainforge.errors import ConfigError, DataError
from trainforge.tasks import checks, losses
from trainforge.tasks.metrics import MetricAccumulator
from trainforge.tasks.types import TASK_KINDS, UNKNOWN_KIND_RULES, TaskType

# The Hugging Face datasets convention: a ``label`` column is the ``labels`` field.
LABEL_ALIAS = "label"
TASK_TYPES: tuple[str, ...] = tuple(TASK_KINDS)


def _did_you_mean(word: str, options: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_int(value: object) -> bool:
    # bool is an int subclass, but vocab_size=True is a bug, not a size.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class TaskSpec:
    """A task's semantics: input and label fields, ignore index, loss and metrics.

    Build one with a constructor rather than directly::

        TaskSpec.language_modeling(name="gpt-training", vocab_size=50257, max_seq_len=128)
        TaskSpec.classification(name="sentiment", num_classes=2, vocab_size=30522, max_seq_len=256)
        TaskSpec.seq2seq(name="translate", vocab_size=32128, max_seq_len=512, pad_token_id=0)
        TaskSpec.vision_classification(name="cifar10", num_classes=10, image_size=32)

    Every problem with the arguments is reported at once in one ``ConfigError``.
    """

    name: str
    task_type: str
    vocab_size: int | None = None
    max_seq_len: int | None = None
    pad_token_id: int | None = None
    num_classes: int | None = None
    ignore_index: int = -100
    label_smoothing: float = 0.0
    # "" means the task's default: "input_ids" for text tasks, "pixel_values" for vision.
    input_field: str = ""
    label_field: str = "labels"
    decoder_start_token_id: int | None = None
    image_size: int | None = None
    num_channels: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    # ------------------------------------------------------------------ construction and validation

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ConfigError(problems, what="TaskSpec")
        # Normalise numpy integers and the like to plain Python values so to_dict() is JSON-safe.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if _is_int(value):
                object.__setattr__(self, f.name, int(value))
        object.__setattr__(self, "label_smoothing", float(self.label_smoothing))
        kind = TASK_KINDS[self.task_type]
        # Not a dataclass field: equality, hashing, to_dict and pickles see only the fields (see __getstate__).
        object.__setattr__(self, "kind", kind)
        if not self.input_field:
            object.__setattr__(self, "input_field", kind.default_input_field)
        for field, value in kind.defaults(self).items():
            object.__setattr__(self, field, value)

    if typing.TYPE_CHECKING:
        # What the task type decides (``tasks/types.py``), looked up from ``task_type``. Set per instance by
        # __post_init__; declared as a ClassVar only so that neither dataclasses nor mypy take it for a field.
        kind: typing.ClassVar[TaskType]

    def __getstate__(self) -> dict[str, Any]:
        # Pickles hold the fields only, so they do not depend on where the type objects live.
        state = dict(self.__dict__)
        state.pop("kind", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Also what an older pickle (from before the type objects, so without ``kind``) is restored through.
        # (No __getattr__ fallback instead: it would slow every attribute read of the spec in the hot path.)
        self.__dict__.update(state)
        object.__setattr__(self, "kind", TASK_KINDS[state["task_type"]])

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if not isinstance(self.name, str) or not self.name.strip():
            problems.append(
                f"name must be a non-empty string, got {self.name!r}; give the task a short name such as 'gpt-training'"
            )
        task_type = self.task_type
        kind: TaskType | None = TASK_KINDS.get(task_type) if isinstance(task_type, str) else None
        if kind is None:
            hint = _did_you_mean(task_type, TASK_TYPES) if isinstance(task_type, str) else ""
            problems.append(
                f"task_type {task_type!r} is not known{hint}; use one of {', '.join(TASK_TYPES)} "
                "(or the constructor of the same name, e.g. TaskSpec.language_modeling(...))"
            )

        def check_int(field: str, minimum: int, required: bool, fix: str) -> bool:
            value = getattr(self, field)
            if value is None:
                if required:
                    problems.append(f"{field} is required for {task_type}, got None; {fix}")
                return False
            if not _is_int(value) or value < minimum:
                problems.append(f"{field} must be an int >= {minimum}, got {value!r}; {fix}")
                return False
            return True

        rules = kind.size_rules() if kind is not None else UNKNOWN_KIND_RULES
        ok = {rule.field: check_int(*rule) for rule in rules}

        vocab = self.vocab_size if ok.get("vocab_size") else None
        for field in ("pad_token_id", "decoder_start_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, field)
            if value is None:
                continue
            if not _is_int(value) or value < 0 or (vocab is not None and value >= vocab):
                bound = f"[0, vocab_size={vocab})" if vocab is not None else ">= 0"
                problems.append(
                    f"{field} must be a token id in {bound}, got {value!r}; use the id your tokenizer reports "
                    f"(e.g. tokenizer.{field}) or leave it as None"
                )

        if not _is_int(self.ignore_index):
            problems.append(
                f"ignore_index must be an int, got {self.ignore_index!r}; use -100 (the PyTorch and Hugging Face default)"
            )
        smoothing = self.label_smoothing
        if isinstance(smoothing, bool) or not isinstance(smoothing, numbers.Real) or not 0.0 <= smoothing < 1.0:
            problems.append(
                f"label_smoothing must be a float in [0, 1), got {smoothing!r}; use 0.0 to turn it off or a small value such as 0.1"
            )
        for field in ("input_field", "label_field"):
            value = getattr(self, field)
            if not isinstance(value, str) or (field == "label_field" and not value):
                problems.append(
                    f"{field} must be the name of a batch key (a non-empty string), got {value!r}; "
                    f"the defaults are 'input_ids' / 'pixel_values' and 'labels'"
                )

        for field in kind.unused_fields if kind is not None else ():
            if getattr(self, field) is not None:
                problems.append(
                    f"{field} is not used by task_type {task_type!r}, got {getattr(self, field)!r}; remove it, "
                    f"or pick the constructor for your task ({', '.join(f'TaskSpec.{t}' for t in TASK_TYPES)})"
                )
        return problems

    @classmethod
    def _build(cls, constructor: str, fixed: dict[str, Any], extra: Mapping[str, Any]) -> TaskSpec:
        """Create a spec from a constructor's own arguments plus its ``**extra`` keywords.

        Unknown keywords and field problems are gathered into a single ConfigError.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unused = TASK_KINDS[fixed["task_type"]].unused_fields
        allowed = [n for n in names if n not in fixed and n != "task_type" and n not in unused]
        problems: list[str] = []
        kwargs = dict(fixed)
        for key, value in extra.items():
            if key == "task_type":
                problems.append(
                    f"task_type cannot be passed to TaskSpec.{constructor}, got {value!r}; "
                    f"call the constructor of that task instead (e.g. TaskSpec.{value}(...))"
                )
            elif key in allowed or key in unused:  # unused fields get their own, clearer problem below
                kwargs[key] = value
            else:
                problems.append(
                    f"unknown argument {key!r} for TaskSpec.{constructor}{_did_you_mean(key, allowed)}; "
                    f"valid extra arguments are: {', '.join(allowed)}"
                )
        try:
            spec = cls(**kwargs)
        except ConfigError as error:
            raise ConfigError(problems + error.problems, what="TaskSpec") from None
        if problems:
            raise ConfigError(problems, what="TaskSpec")
        return spec

    @classmethod
    def language_modeling(
        cls,
        name: str,
        vocab_size: int,
        max_seq_len: int,
        pad_token_id: int | None = None,
        **extra: Any,
    ) -> TaskSpec:
        """Causal language modelling: next-token prediction on ``input_ids``; a bare sequence is its own label."""
        fixed = {
            "name": name,
            "task_type": "language_modeling",
            "vocab_size": vocab_size,
            "max_seq_len": max_seq_len,
            "pad_token_id": pad_token_id,
        }
        return cls._build("language_modeling", fixed, extra)

    @classmethod
    def classification(
        cls,
        name: str,
        num_classes: int,
        vocab_size: int | None = None,
        max_seq_len: int | None = None,
        pad_token_id: int | None = None,
        **extra: Any,
    ) -> TaskSpec:
        """Text (or any) classification: the model returns ``[B, num_classes]`` logits, labels are ``[B]``."""
        fixed = {
            "name": name,
            "task_type": "classification",
            "num_classes": num_classes,
            "vocab_size": vocab_size,
            "max_seq_len": max_seq_len,
            "pad_token_id": pad_token_id,
        }
        return cls._build("classification", fixed, extra)

    @classmethod
    def seq2seq(
        cls,
        name: str,
        vocab_size: int,
        max_seq_len: int,
        pad_token_id: int | None = 0,
        decoder_start_token_id: int | None = None,
        **extra: Any,
    ) -> TaskSpec:
        """Encoder-decoder: decoder logits ``[B, T, V]`` against ``labels`` ``[B, T]`` with no shift.

        ``decoder_start_token_id`` defaults to ``pad_token_id`` (the T5/BART convention).
        """
        fixed = {
            "name": name,
            "task_type": "seq2seq",
            "vocab_size": vocab_size,
            "max_seq_len": max_seq_len,
            "pad_token_id": pad_token_id,
            "decoder_start_token_id": decoder_start_token_id,
        }
        return cls._build("seq2seq", fixed, extra)

    @classmethod
    def vision_classification(
        cls,
        name: str,
        num_classes: int,
        image_size: int = 32,
        num_channels: int = 3,
        **extra: Any,
    ) -> TaskSpec:
        """Image classification: ``pixel_values`` ``[B, C, H, W]`` in, ``[B, num_classes]`` logits out."""
        fixed = {
            "name": name,
            "task_type": "vision_classification",
            "num_classes": num_classes,
            "image_size": image_size,
            "num_channels": num_channels,
        }
        return cls._build("vision_classification", fixed, extra)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field; ``TaskSpec.from_dict(spec.to_dict()) == spec``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskSpec:
        """Rebuild a spec from :meth:`to_dict` output (e.g. a saved run's ``task_spec.json``)."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                [
                    f"expected a dict of TaskSpec fields, got {type(data).__name__}; pass the output of TaskSpec.to_dict()"
                ],
                what="TaskSpec",
            )
        names = [f.name for f in dataclasses.fields(cls)]
        problems = [
            f"unknown key {key!r}{_did_you_mean(str(key), names)}; valid keys are: {', '.join(names)}"
            for key in data
            if key not in names
        ]
        problems += [
            f"missing key {key!r}; TaskSpec.from_dict needs at least 'name' and 'task_type'"
            for key in ("name", "task_type")
            if key not in data
        ]
        if problems:
            raise ConfigError(problems, what="TaskSpec")
        return cls(**dict(data))

    # ------------------------------------------------------------------ properties

    @property
    def is_token_task(self) -> bool:
        """True when the loss is per token (language modelling and seq2seq)."""
        return self.kind.is_token_task

    @property
    def metric_names(self) -> list[str]:
        """Names of the metrics :meth:`new_metrics` reports, in order."""
        return list(self.kind.metric_names)

    @property
    def num_outputs(self) -> int:
        """Size of the logits' last dimension: ``vocab_size`` for token tasks, else ``num_classes``."""
        value = self.kind.num_outputs(self.vocab_size, self.num_classes)
        assert value is not None  # guaranteed by validation
        return value

    # ------------------------------------------------------------------ hot path (no host syncs)

    def targets(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The label tensor of ``batch``, unshifted (``loss_sum`` shifts for causal LM).

        Labels in the batch are used as given (a ``label`` field is taken as ``labels``, the Hugging Face
        convention). For language modelling without labels, they are built by :meth:`labels_from_inputs`.
        """
        if not isinstance(batch, (dict, Mapping)):  # (a dict is recognised without the abstract-class check)
            raise DataError(
                f"expected the batch to be a dict of tensors, got {type(batch).__name__}; "
                f"have the dataset or collator return a dict with {self.input_field!r} and {self.label_field!r}"
            )
        labels = batch.get(self.label_field)
        if labels is None and self.label_field == "labels":
            labels = batch.get(LABEL_ALIAS)
        if labels is not None:
            return labels
        return self.kind.targets_without_labels(self, batch)  # causal LM derives them; the others raise

    def labels_from_inputs(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Causal-LM labels the engine builds: the ids, with every padded position set to ``ignore_index``.

        Padding is where ``attention_mask == 0`` and where the id is ``pad_token_id``; when the pad token is also
        the EOS token (GPT-2 style) and a mask is given, only the mask marks padding, so the model still learns to
        emit real EOS tokens. The one rule for every data path (collators, tensor batches, user DataLoaders).
        """
        pad = self.pad_token_id
        if attention_mask is not None and pad is not None and pad == self.eos_token_id:
            pad = None
        return losses.labels_from_input_ids(
            input_ids, ignore_index=self.ignore_index, pad_token_id=pad, attention_mask=attention_mask
        )

    def prepare_targets(self, labels: Tensor) -> Tensor:
        """What the (aligned) logits are compared against: causal LM shifts left by one, others unchanged."""
        return self.kind.prepare_targets(labels)

    def align_logits(self, logits: Tensor) -> Tensor:
        """Logits aligned with :meth:`prepare_targets`: causal LM drops the last position, others unchanged."""
        return self.kind.align_logits(logits)

    def loss_sum(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Summed cross-entropy and the number of valid targets, for the raw logits and unshifted labels.

        Returns ``(loss_sum, count)``: a 0-d float32 tensor (float64 if the logits are) computed in float32
        even for bf16/fp16 logits, and a 0-d int64 tensor. The token-normalised loss of an accumulation
        window is ``sum(loss_sum) / sum(count)`` over its micro-batches.
        """
        return losses.cross_entropy_sum(
            logits, self.loss_targets(labels), ignore_index=self.ignore_index, label_smoothing=self.label_smoothing
        )

    def loss_total(self, logits: Tensor, labels: Tensor, *, mean: bool = False) -> Tensor:
        """``loss_sum(logits, labels)[0]`` without computing the count (the training step has it already).

        With ``mean=True``, that sum divided by the count inside the loss kernel (``nan`` when nothing counts): the
        training step's loss when one micro-batch makes the whole step and its count is known to be positive.
        """
        return losses.cross_entropy_total(
            logits, self.loss_targets(labels), ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
            mean=mean,
        )

    def loss_targets(self, labels: Tensor) -> Tensor:
        """Targets aligned with the *raw* logits (same shape minus the class dim); used by loss and metrics.

        For causal LM these are the labels shifted left with ``ignore_index`` in the last position: the same
        result as comparing ``align_logits(logits)`` with ``prepare_targets(labels)``, without copying the
        sliced, non-contiguous logits (see ``losses.causal_lm_targets``). Other tasks: ``labels`` unchanged.
        """
        return self.kind.loss_targets(labels, self.ignore_index)

    def count_targets(self, labels: Tensor) -> Tensor:
        """The ``count`` that :meth:`loss_sum` returns for these labels, without needing logits (0-d int64)."""
        return self.kind.count_targets(labels, self.ignore_index)

    def new_metrics(self) -> MetricAccumulator:
        """A fresh, empty metric accumulator for this task."""
        return MetricAccumulator(self)

    # ------------------------------------------------------------------ once before step 0 (may sync)

    def validate_logits(self, logits: Any, labels: Tensor | None = None) -> None:
        """Check the model's output against the task; raise ``ModelError`` with the fix if it does not fit.

        Args:
            logits: the model's logits for one batch.
            labels: optionally the batch's labels (from :meth:`targets`), to check batch and sequence sizes.
        """
        checks.check_logits(self, logits, labels)

    def validate_batch(self, batch: Any) -> None:
        """Check one batch against the task; raise ``DataError`` naming the bad value and the fix.

        This is the check that turns "token id >= vocab size" into a clear message instead of a CUDA
        device-side assert in the embedding lookup.
        """
        checks.check_batch(self, batch)
