"""``TaskSpec``: what a task's batches contain, how its loss is computed, and which metrics it reports.

The loss follows the task type, never the modality alone:

* ``language_modeling``: causal LM; logits ``[B, T, V]`` at position ``t`` predict token ``t + 1``, so the
  labels are shifted and the last logit position is dropped; ``ignore_index`` and padding are ignored.
* ``classification``: one label per example; logits ``[B, C]``, labels ``[B]``.
* ``seq2seq``: decoder logits ``[B, T, V]`` against labels ``[B, T]`` with no shift (the decoder input is
  already the right-shifted target).
* ``vision_classification``: like classification, with ``pixel_values`` ``[B, C, H, W]`` as input.

The methods the training loop calls every step (``targets``, ``loss_sum``, ``count_targets``,
``prepare_targets``, ``align_logits`` and the metric updates) never synchronise with the device. The
``validate_*`` methods are called once before step 0 and may read values freely.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from trainforge.errors import ConfigError, DataError, ModelError
from trainforge.tasks import losses

if TYPE_CHECKING:
    from trainforge.tasks.metrics import MetricAccumulator

# The Hugging Face datasets convention: a ``label`` column is the ``labels`` field.
LABEL_ALIAS = "label"
TASK_TYPES: tuple[str, ...] = ("language_modeling", "classification", "seq2seq", "vision_classification")
_TOKEN_TASKS = frozenset({"language_modeling", "seq2seq"})
_DEFAULT_INPUT_FIELD = {
    "language_modeling": "input_ids",
    "classification": "input_ids",
    "seq2seq": "input_ids",
    "vision_classification": "pixel_values",
}
# Fields that mean nothing for a task type: setting one is almost always the wrong constructor.
_UNUSED_FIELDS = {
    "language_modeling": ("num_classes", "decoder_start_token_id", "image_size", "num_channels"),
    "classification": ("decoder_start_token_id", "image_size", "num_channels"),
    "seq2seq": ("num_classes", "image_size", "num_channels"),
    "vision_classification": (
        "vocab_size",
        "max_seq_len",
        "pad_token_id",
        "decoder_start_token_id",
        "bos_token_id",
        "eos_token_id",
    ),
}


def _did_you_mean(word: str, options: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_int(value: object) -> bool:
    # bool is an int subclass, but vocab_size=True is a bug, not a size.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _fmt_keys(batch: Mapping[str, Any]) -> str:
    return "[" + ", ".join(repr(k) for k in batch) + "]"


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
        if not self.input_field:
            object.__setattr__(self, "input_field", _DEFAULT_INPUT_FIELD[self.task_type])
        if self.task_type == "seq2seq" and self.decoder_start_token_id is None:
            # T5/BART convention: the decoder starts from the pad token unless told otherwise.
            object.__setattr__(self, "decoder_start_token_id", self.pad_token_id)

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if not isinstance(self.name, str) or not self.name.strip():
            problems.append(
                f"name must be a non-empty string, got {self.name!r}; give the task a short name such as 'gpt-training'"
            )
        task_type = self.task_type
        if task_type not in TASK_TYPES:
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

        token_task = task_type in _TOKEN_TASKS
        vocab_ok = check_int(
            "vocab_size",
            2,
            required=token_task,
            fix="set it to the size of the tokenizer's vocabulary (the model's output layer), e.g. 50257 for GPT-2",
        )
        if task_type == "language_modeling":
            check_int(
                "max_seq_len",
                2,
                required=True,
                fix="a language model needs at least 2 tokens to predict one; set it to the model's context length",
            )
        else:
            check_int("max_seq_len", 1, required=task_type == "seq2seq", fix="set it to the model's context length")
        if task_type in ("classification", "vision_classification"):
            check_int(
                "num_classes",
                2,
                required=True,
                fix="set it to the number of labels (the size of the model's output layer); use 2 for binary tasks",
            )
        if task_type == "vision_classification":
            check_int("image_size", 1, required=False, fix="set it to the image height/width in pixels, e.g. 32")
            check_int("num_channels", 1, required=False, fix="use 3 for RGB images or 1 for grayscale")

        vocab = self.vocab_size if vocab_ok else None
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

        for field in _UNUSED_FIELDS.get(task_type, ()):
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
        unused = _UNUSED_FIELDS[fixed["task_type"]]
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
        return self.task_type in _TOKEN_TASKS

    @property
    def metric_names(self) -> list[str]:
        """Names of the metrics :meth:`new_metrics` reports, in order."""
        if self.is_token_task:
            return ["loss", "perplexity", "accuracy"]
        return ["loss", "accuracy"]

    @property
    def num_outputs(self) -> int:
        """Size of the logits' last dimension: ``vocab_size`` for token tasks, else ``num_classes``."""
        value = self.vocab_size if self.is_token_task else self.num_classes
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
        if self.task_type == "language_modeling":
            if labels is not None:
                return labels
            ids = batch.get(self.input_field)
            if ids is None:
                raise self._missing(batch, self.input_field, "return the token ids under 'input_ids'")
            mask = batch.get("attention_mask")
            if mask is None and self.pad_token_id is None and ids.dtype == torch.long:
                return ids  # nothing to mark as padding: the ids are the labels (every step of plain token data)
            return self.labels_from_inputs(ids, mask)
        if labels is None:
            if self.task_type == "seq2seq":
                fix = "return the target token ids under 'labels' (padding set to ignore_index)"
            else:
                fix = "return each example's class index under 'labels'"
            raise self._missing(batch, self.label_field, fix)
        return labels

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

    def _missing(self, batch: Mapping[str, Any], field: str, fix: str) -> DataError:
        return DataError(
            f"batch has no {field!r} field (keys present: {_fmt_keys(batch)}); {fix} from your dataset or "
            f"collator, or set TaskSpec {'label_field' if field == self.label_field else 'input_field'} "
            "to the key your data uses"
        )

    def prepare_targets(self, labels: Tensor) -> Tensor:
        """What the (aligned) logits are compared against: causal LM shifts left by one, others unchanged."""
        if self.task_type == "language_modeling":
            return losses.shift_labels(labels)
        return labels

    def align_logits(self, logits: Tensor) -> Tensor:
        """Logits aligned with :meth:`prepare_targets`: causal LM drops the last position, others unchanged."""
        if self.task_type == "language_modeling":
            return losses.drop_last_position(logits)
        return logits

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
        if self.task_type == "language_modeling":
            return losses.causal_lm_targets(labels, self.ignore_index)
        return labels

    def count_targets(self, labels: Tensor) -> Tensor:
        """The ``count`` that :meth:`loss_sum` returns for these labels, without needing logits (0-d int64)."""
        # (prepare_targets + count_valid, inlined: the training step calls this for every micro-batch)
        aligned = labels[..., 1:] if self.task_type == "language_modeling" else labels
        return (aligned != self.ignore_index).sum(dtype=torch.int64)

    def new_metrics(self) -> MetricAccumulator:
        """A fresh, empty metric accumulator for this task."""
        from trainforge.tasks.metrics import MetricAccumulator

        return MetricAccumulator(self)

    # ------------------------------------------------------------------ once before step 0 (may sync)

    def validate_logits(self, logits: Any, labels: Tensor | None = None) -> None:
        """Check the model's output against the task; raise ``ModelError`` with the fix if it does not fit.

        Args:
            logits: the model's logits for one batch.
            labels: optionally the batch's labels (from :meth:`targets`), to check batch and sequence sizes.
        """
        expected = "[batch, seq_len, vocab_size]" if self.is_token_task else "[batch, num_classes]"
        if not isinstance(logits, Tensor):
            raise ModelError(
                f"expected the model to return logits as a tensor of shape {expected}, got {type(logits).__name__}; "
                "return the logits tensor (or a tuple/dict/object whose first item or .logits is that tensor)"
            )
        shape = tuple(logits.shape)
        if not (logits.is_floating_point() or logits.is_complex()):
            raise ModelError(
                f"expected float logits, got dtype {logits.dtype} with shape {shape}; return the output layer's "
                "raw scores (before argmax/softmax), not predicted ids"
            )
        want_rank = 3 if self.is_token_task else 2
        if logits.dim() != want_rank:
            if self.is_token_task and logits.dim() == 2:
                fix = (
                    "a token task needs one score vector per position; return the logits before pooling, "
                    "or use TaskSpec.classification if the model predicts one label per example"
                )
            elif not self.is_token_task and logits.dim() == 3:
                fix = (
                    "a classification model must pool over the sequence (e.g. take the first token or the mean) "
                    "before its output layer, or use TaskSpec.language_modeling for per-token prediction"
                )
            else:
                fix = f"reshape the model's output to {expected}"
            raise ModelError(
                f"{self.task_type} expects logits of shape {expected}, got shape {shape} (rank {logits.dim()}); {fix}"
            )
        size_name = "vocab_size" if self.is_token_task else "num_classes"
        if shape[-1] != self.num_outputs:
            raise ModelError(
                f"logits' last dimension is {shape[-1]} (shape {shape}) but TaskSpec {size_name} is "
                f"{self.num_outputs} (expected {expected.replace(size_name, str(self.num_outputs))}); "
                f"set TaskSpec {size_name} to match the model's output layer, or resize the output layer to "
                f"{self.num_outputs}"
            )
        if labels is not None:
            want = tuple(labels.shape)
            got = shape[:-1]
            if got != want:
                raise ModelError(
                    f"logits of shape {shape} do not line up with labels of shape {want}: expected logits of "
                    f"shape {(*want, self.num_outputs)}; the model must return one score vector per label "
                    "(same batch size" + (" and sequence length" if self.is_token_task else "") + ")"
                )

    def validate_batch(self, batch: Any) -> None:
        """Check one batch against the task; raise ``DataError`` naming the bad value and the fix.

        This is the check that turns "token id >= vocab size" into a clear message instead of a CUDA
        device-side assert in the embedding lookup.
        """
        if not isinstance(batch, Mapping):
            raise DataError(
                f"expected the batch to be a dict of tensors, got {type(batch).__name__}; "
                f"have the dataset or collator return a dict with {self.input_field!r} and {self.label_field!r}"
            )
        if self.input_field not in batch:
            raise self._missing(
                batch,
                self.input_field,
                "return the images under 'pixel_values'"
                if self.task_type == "vision_classification"
                else "return the token ids under 'input_ids'",
            )
        inputs = batch[self.input_field]
        if not isinstance(inputs, Tensor):
            raise DataError(
                f"batch[{self.input_field!r}] must be a tensor, got {type(inputs).__name__}; "
                "use a collator that stacks examples into tensors"
            )
        if self.task_type == "vision_classification":
            self._validate_pixels(inputs)
        elif self.task_type == "classification" and self.vocab_size is None and inputs.is_floating_point():
            pass  # classification on float features (no tokenizer): nothing to range-check in the inputs
        else:
            self._validate_token_ids(self.input_field, inputs)
            mask = batch.get("attention_mask")
            if isinstance(mask, Tensor) and tuple(mask.shape) != tuple(inputs.shape):
                raise DataError(
                    f"attention_mask has shape {tuple(mask.shape)} but {self.input_field} has shape "
                    f"{tuple(inputs.shape)}; build the mask from the same padded batch (1 = token, 0 = padding)"
                )
            if self.task_type == "seq2seq" and isinstance(batch.get("decoder_input_ids"), Tensor):
                self._validate_token_ids("decoder_input_ids", batch["decoder_input_ids"])

        if self.task_type == "language_modeling" and self.label_field not in batch:
            return  # labels derive from input_ids, already checked
        labels = self.targets(batch)
        if not isinstance(labels, Tensor):
            raise DataError(
                f"batch[{self.label_field!r}] must be a tensor, got {type(labels).__name__}; "
                "use a collator that stacks labels into a tensor"
            )
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise DataError(
                f"batch[{self.label_field!r}] has dtype {labels.dtype}; labels must be integer class or token "
                "indices (torch.long), with ignore_index for positions that do not count"
            )
        if self.is_token_task:
            self._validate_token_labels(labels, inputs)
        else:
            self._validate_class_labels(labels, inputs)

    def _validate_token_ids(self, field: str, ids: Tensor) -> None:
        shape = tuple(ids.shape)
        if ids.is_floating_point() or ids.dtype == torch.bool or ids.is_complex():
            raise DataError(
                f"batch[{field!r}] has dtype {ids.dtype}; token ids must be integers (torch.long) — "
                "tokenize the text, or use TaskSpec.vision_classification for image tensors"
            )
        if self.is_token_task and ids.dim() != 2:
            raise DataError(
                f"batch[{field!r}] must have shape [batch, seq_len], got {shape}; "
                "batch the sequences with a collator (a single sequence needs .unsqueeze(0))"
            )
        if self.task_type == "language_modeling" and field == self.input_field and shape[-1] < 2:
            raise DataError(
                f"batch[{field!r}] has sequence length {shape[-1]} (shape {shape}); a language model needs at "
                "least 2 tokens per sequence to predict one — drop or merge shorter examples"
            )
        if self.max_seq_len is not None and ids.dim() >= 1 and shape[-1] > self.max_seq_len:
            raise DataError(
                f"batch[{field!r}] has sequence length {shape[-1]} (shape {shape}) but TaskSpec max_seq_len is "
                f"{self.max_seq_len}; truncate sequences to max_seq_len (e.g. tokenizer(..., truncation=True, "
                f"max_length={self.max_seq_len})) or raise max_seq_len if the model supports it"
            )
        if ids.numel() == 0:
            return
        low, high = int(ids.min()), int(ids.max())
        if low < 0:
            raise DataError(
                f"batch[{field!r}] contains token id {low}, but token ids must be >= 0; negative ids (like "
                f"ignore_index={self.ignore_index}) belong in 'labels', not in the model's input — replace them "
                f"with pad_token_id"
            )
        if self.vocab_size is not None and high >= self.vocab_size:
            raise DataError(
                f"batch[{field!r}] contains token id {high}, but vocab_size is {self.vocab_size} (ids must be in "
                f"[0, {self.vocab_size})); set TaskSpec vocab_size (and the model's embedding size) to at least "
                f"{high + 1}, e.g. len(tokenizer), or re-tokenize with the tokenizer the model was built for"
            )

    def _validate_token_labels(self, labels: Tensor, inputs: Tensor) -> None:
        shape = tuple(labels.shape)
        if labels.dim() != 2:
            raise DataError(
                f"batch[{self.label_field!r}] must have shape [batch, seq_len], got {shape}; "
                "pad the label sequences to one length with ignore_index"
            )
        if self.task_type == "language_modeling" and shape != tuple(inputs.shape):
            raise DataError(
                f"batch[{self.label_field!r}] has shape {shape} but {self.input_field} has shape "
                f"{tuple(inputs.shape)}; for causal LM the labels are the unshifted input ids (the loss shifts "
                "them), so give them the same shape — or leave 'labels' out and they are derived from input_ids"
            )
        if self.task_type == "seq2seq" and shape[0] != inputs.shape[0]:
            raise DataError(
                f"batch[{self.label_field!r}] has batch size {shape[0]} but {self.input_field} has "
                f"{inputs.shape[0]}; give every example one label sequence"
            )
        if self.max_seq_len is not None and shape[-1] > self.max_seq_len:
            raise DataError(
                f"batch[{self.label_field!r}] has sequence length {shape[-1]} but TaskSpec max_seq_len is "
                f"{self.max_seq_len}; truncate the targets to max_seq_len or raise max_seq_len"
            )
        bad = labels[(labels != self.ignore_index) & ((labels < 0) | (labels >= self.num_outputs))]
        if bad.numel():
            value = int(bad[0])
            raise DataError(
                f"batch[{self.label_field!r}] contains {value}, but labels must be token ids in "
                f"[0, vocab_size={self.num_outputs}) or ignore_index={self.ignore_index}; mark positions that do "
                f"not count with {self.ignore_index} and check the tokenizer matches vocab_size"
            )
        if self.task_type == "language_modeling" and not bool((labels[:, 1:] != self.ignore_index).any()):
            raise DataError(
                f"batch[{self.label_field!r}] has no position to predict after the shift: every label from "
                f"position 1 on is ignore_index={self.ignore_index}; check the padding and masking in the collator"
            )

    def _validate_class_labels(self, labels: Tensor, inputs: Tensor) -> None:
        shape = tuple(labels.shape)
        if labels.dim() != 1:
            fix = (
                "squeeze the trailing dimension (labels.view(-1))"
                if labels.dim() == 2 and shape[-1] == 1
                else ("give one class index per example (not one-hot vectors; use labels.argmax(-1))")
            )
            raise DataError(f"batch[{self.label_field!r}] must have shape [batch], got {shape}; {fix}")
        if inputs.dim() >= 1 and shape[0] != inputs.shape[0]:
            raise DataError(
                f"batch[{self.label_field!r}] has {shape[0]} labels but {self.input_field} has batch size "
                f"{inputs.shape[0]}; give every example exactly one label"
            )
        assert self.num_classes is not None
        bad = labels[(labels != self.ignore_index) & ((labels < 0) | (labels >= self.num_classes))]
        if bad.numel():
            value = int(bad[0])
            raise DataError(
                f"batch[{self.label_field!r}] contains label {value}, but labels must be in "
                f"[0, num_classes={self.num_classes}) or ignore_index={self.ignore_index}; set TaskSpec "
                f"num_classes to at least {value + 1 if value >= 0 else self.num_classes} or map the labels to "
                f"0..{self.num_classes - 1}"
            )

    def _validate_pixels(self, pixels: Tensor) -> None:
        shape = tuple(pixels.shape)
        if not pixels.is_floating_point():
            raise DataError(
                f"batch[{self.input_field!r}] has dtype {pixels.dtype}; images must be float tensors — convert "
                "with .float() / 255 or torchvision's ToTensor()"
            )
        if pixels.dim() != 4:
            raise DataError(
                f"batch[{self.input_field!r}] must have shape [batch, channels, height, width], got {shape}; "
                "stack the images with a collator (a single image needs .unsqueeze(0))"
            )
        channels = self.num_channels
        if channels is not None and shape[1] != channels:
            hint = (
                "; the images look channels-last, use pixel_values.permute(0, 3, 1, 2)" if shape[-1] == channels else ""
            )
            raise DataError(
                f"batch[{self.input_field!r}] has {shape[1]} channels (shape {shape}) but TaskSpec num_channels is "
                f"{channels}{hint}; otherwise set num_channels to {shape[1]}"
            )
        size = self.image_size
        if size is not None and (shape[2] != size or shape[3] != size):
            raise DataError(
                f"batch[{self.input_field!r}] has images of {shape[2]}x{shape[3]} (shape {shape}) but TaskSpec "
                f"image_size is {size}; resize the images to {size}x{size} or set image_size to match the data"
            )
