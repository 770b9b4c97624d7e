"""The collator registry: built-in collators chosen from the ``TaskSpec``, selectable by name, plus user ones.

A *collator factory* takes the ``TaskSpec`` (and keyword options) and returns a collate function
``list[sample] -> dict[str, Tensor]``. Built-ins:

* ``causal_lm``: right-pads ``input_ids`` with ``pad_token_id``, adds ``attention_mask`` (1 = token) and
  ``labels`` (the inputs, ``ignore_index`` at padding). Option ``pack=True`` packs instead (see ``packed_lm``).
* ``packed_lm``: concatenates the samples' tokens (``eos_token_id`` between documents when set) and cuts rows of
  ``max_length`` (default ``task.max_seq_len``); only the final row is padded. No token is dropped.
* ``classification``: pads token inputs (or stacks float features), ``labels`` ``[B]`` long.
* ``seq2seq``: pads ``input_ids`` (+ ``attention_mask``), pads ``labels`` with ``ignore_index`` and builds
  ``decoder_input_ids`` by shifting the labels right (``decoder_start_token_id`` first).
* ``vision``: stacks ``pixel_values`` as float ``[B, C, H, W]`` (uint8 images are scaled to [0, 1],
  channels-last images are moved to channels-first), ``labels`` ``[B]`` long.

Register your own with ``register_collator("name", factory)`` (or as a decorator) and pick it with
``get_collator(task, "name")`` or ``UniversalDataModule(..., collator="name")``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from trainforge.data.collate import Batch, Collator, pad_stack, shift_right
from trainforge.data.inputs import normalise_sample
from trainforge.errors import ConfigError, DataError

if TYPE_CHECKING:
    from trainforge.tasks import TaskSpec

CollatorFactory = Callable[..., Collator]

_REGISTRY: dict[str, CollatorFactory] = {}
_BY_TASK = {
    "language_modeling": "causal_lm",
    "classification": "classification",
    "seq2seq": "seq2seq",
    "vision_classification": "vision",
}


def register_collator(
    name: str, factory: CollatorFactory | None = None, *, overwrite: bool = False
) -> Any:
    """Register ``factory(task, **options) -> collate_fn`` under ``name``; usable as ``@register_collator("x")``."""

    def add(f: CollatorFactory) -> CollatorFactory:
        if not isinstance(name, str) or not name:
            raise ConfigError([f"collator name must be a non-empty string, got {name!r}"], what="register_collator")
        if not callable(f):
            raise ConfigError([f"collator {name!r}: expected a factory callable(task, **options) -> collate_fn, "
                               f"got {type(f).__name__}"], what="register_collator")
        if name in _REGISTRY and not overwrite and _REGISTRY[name] is not f:
            raise ConfigError([f"a collator named {name!r} is already registered; pass overwrite=True to replace "
                               "it, or choose another name"], what="register_collator")
        _REGISTRY[name] = f
        return f

    return add if factory is None else add(factory)


def unregister_collator(name: str) -> None:
    _REGISTRY.pop(name, None)


def collator_names() -> list[str]:
    return sorted(_REGISTRY)


def get_collator(task: TaskSpec, name: str | Collator | None = None, **options: Any) -> Collator:
    """The collate function for ``task``: by registered ``name``, a callable used as is, or the task's default."""
    if callable(name):
        return name
    key = name if name is not None else _BY_TASK[task.task_type]
    if key not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(str(key), list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError([f"collator {key!r} is not registered{hint}; registered: {', '.join(collator_names())}. "
                           "Fix: register_collator(name, factory) first, or pass a collate function"],
                          what="collator")
    return _REGISTRY[key](task, **options)


# ------------------------------------------------------------------------------------------------ helpers
def _tensor(value: Any, field: str, dtype: torch.dtype | None = None) -> Tensor:
    try:
        t = value if isinstance(value, Tensor) else torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"Field {field!r} of a sample could not be turned into a tensor: got "
                        f"{type(value).__name__} ({exc}). Fix: give numbers, lists of numbers, arrays or tensors.") from exc
    return t if dtype is None else t.to(dtype)


def _field(samples: Sequence[dict[str, Any]], field: str, what: str) -> list[Any]:
    out = []
    for i, s in enumerate(samples):
        if field not in s:
            raise DataError(f"Sample {i} of the batch has no field {field!r} (fields: {sorted(s)}); the {what} "
                            f"collator needs it. Fix: return {field!r} from the dataset, or set the TaskSpec's "
                            "input_field/label_field.")
        out.append(s[field])
    return out


def pad_tokens(seqs: Sequence[Tensor], pad_id: int | None, field: str, multiple_of: int | None = None) -> tuple[Tensor, Tensor]:
    """Right-pad 1-D id sequences to one length: ``(ids [B, T], mask [B, T])``.

    Different lengths with ``pad_id=None`` are a ``DataError``: there is no safe value to pad with.
    """
    for s in seqs:
        if s.dim() != 1:
            raise DataError(f"Field {field!r} holds a tensor of shape {tuple(s.shape)}; expected one 1-D sequence of "
                            "token ids per sample. Fix: give each sample a flat list/tensor of ids.")
    lengths = [int(s.shape[0]) for s in seqs]
    length = max(lengths)
    if multiple_of:
        length = -(-length // multiple_of) * multiple_of
    if pad_id is None and (len(set(lengths)) > 1 or length != lengths[0]):
        raise DataError(f"Field {field!r} has sequences of different lengths ({sorted(set(lengths))[:6]}) but there is "
                        "no pad_token_id. Fix: pass pad_token_id=... to the TaskSpec (e.g. tokenizer.pad_token_id), "
                        "or give sequences of equal length.")
    ids = seqs[0].new_full((len(seqs), length), pad_id if pad_id is not None else 0).long()
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = 1
    return ids, mask


def _extras(samples: Sequence[dict[str, Any]], skip: set[str]) -> Batch:
    """Any other numeric fields, stacked (padded with 0 when 1-D of different lengths)."""
    out: Batch = {}
    for field in samples[0]:
        if field in skip or isinstance(samples[0][field], (str, bytes)):
            continue
        values = [_tensor(s[field], field) for s in samples]
        out[field] = pad_stack(values, 0, field, can_pad=values[0].dim() >= 1)
    return out


def _normalised(samples: Any, task: TaskSpec) -> list[dict[str, Any]]:
    if isinstance(samples, Mapping):  # a batch a dataset stacked itself (``__getitems__``): split into rows
        n = len(next(iter(samples.values()))) if samples else 0
        return [{k: v[i] for k, v in samples.items()} for i in range(n)]
    if not samples:
        raise DataError("Cannot collate an empty batch. Fix: check that the dataset is not empty.")
    return [normalise_sample(s, task) for s in samples]


# ------------------------------------------------------------------------------------------------ built-ins
def causal_lm_collator(task: TaskSpec, pack: bool = False, pad_to_multiple_of: int | None = None,
                       max_length: int | None = None) -> Collator:
    """Causal LM: padded ``input_ids``, ``attention_mask`` and ``labels`` (``ignore_index`` at padding)."""
    if pack:
        return packed_lm_collator(task, max_length=max_length)
    field = task.input_field

    def collate(samples: Any) -> Batch:
        if isinstance(samples, Mapping) and isinstance(samples.get(field), Tensor) and samples[field].dim() == 2:
            # pre-stacked equal-length rows (PairSamples.__getitems__): nothing to pad
            ids = samples[field].long()[:, :max_length] if max_length else samples[field].long()
            given = samples.get(task.label_field)
            labels = given.long() if isinstance(given, Tensor) else ids.clone()
            out: Batch = {field: ids, "attention_mask": torch.ones_like(ids), task.label_field: labels}
            out.update({k: v for k, v in samples.items() if k not in out and isinstance(v, Tensor)})
            return out
        rows = _normalised(samples, task)
        seqs = [_tensor(v, field).long() for v in _field(rows, field, "causal_lm")]
        if max_length is not None:
            seqs = [s[:max_length] for s in seqs]
        ids, mask = pad_tokens(seqs, task.pad_token_id, field, pad_to_multiple_of)
        if task.label_field in rows[0]:
            given = [_tensor(r[task.label_field], task.label_field).long() for r in rows]
            labels = pad_stack(given, task.ignore_index, task.label_field)
        else:
            labels = ids.clone()
        labels = labels.masked_fill(mask == 0, task.ignore_index) if labels.shape == mask.shape else labels
        batch: Batch = {field: ids, "attention_mask": mask, task.label_field: labels}
        batch.update(_extras(rows, {field, task.label_field, "attention_mask"}))
        return batch

    return collate


def packed_lm_collator(task: TaskSpec, max_length: int | None = None) -> Collator:
    """Sequence packing: documents back to back (``eos_token_id`` after each when set) in rows of ``max_length``.

    Every token lands in exactly one row; only the last row is padded (``pad_token_id``, else ``eos_token_id``),
    with ``attention_mask`` 0 and labels ``ignore_index`` there.
    """
    length = max_length or task.max_seq_len
    if length is None or length < 2:
        raise ConfigError([f"packing needs max_length >= 2 (or TaskSpec max_seq_len), got {length!r}"],
                          what="packed_lm collator")
    pad = task.pad_token_id if task.pad_token_id is not None else task.eos_token_id
    if pad is None:
        raise ConfigError(["packing pads its last row and needs TaskSpec pad_token_id or eos_token_id, got neither. "
                           "Fix: TaskSpec.language_modeling(..., pad_token_id=tokenizer.pad_token_id)"],
                          what="packed_lm collator")
    field = task.input_field
    eos = task.eos_token_id

    def collate(samples: list[Any]) -> Batch:
        rows = _normalised(samples, task)
        parts: list[Tensor] = []
        for s in _field(rows, field, "packed_lm"):
            t = _tensor(s, field).long().reshape(-1)
            parts.append(t)
            if eos is not None and (t.numel() == 0 or int(t[-1]) != eos):
                parts.append(torch.tensor([eos], dtype=torch.long))
        stream = torch.cat(parts)
        n_rows = -(-stream.numel() // length)
        ids = torch.full((n_rows * length,), pad, dtype=torch.long)
        ids[: stream.numel()] = stream
        mask = torch.zeros(n_rows * length, dtype=torch.long)
        mask[: stream.numel()] = 1
        ids, mask = ids.view(n_rows, length), mask.view(n_rows, length)
        labels = ids.masked_fill(mask == 0, task.ignore_index)
        return {field: ids, "attention_mask": mask, task.label_field: labels}

    return collate


def classification_collator(task: TaskSpec) -> Collator:
    """Token inputs padded (+ ``attention_mask``) or float features stacked; ``labels`` ``[B]`` long."""
    field = task.input_field

    def collate(samples: list[Any]) -> Batch:
        rows = _normalised(samples, task)
        values = [_tensor(v, field) for v in _field(rows, field, "classification")]
        batch: Batch = {}
        if values[0].is_floating_point():
            batch[field] = pad_stack(values, 0.0, field, can_pad=False)
        else:
            batch[field], batch["attention_mask"] = pad_tokens([v.long() for v in values], task.pad_token_id, field)
        if task.label_field in rows[0]:
            labels = [_tensor(v, task.label_field) for v in _field(rows, task.label_field, "classification")]
            batch[task.label_field] = torch.stack([t.reshape(()) if t.numel() == 1 else t for t in labels]).long()
        batch.update(_extras(rows, {field, task.label_field, "attention_mask"}))
        return batch

    return collate


def seq2seq_collator(task: TaskSpec) -> Collator:
    """Encoder inputs padded with ``attention_mask``; labels padded with ``ignore_index``; shifted decoder inputs."""
    field = task.input_field

    def collate(samples: list[Any]) -> Batch:
        rows = _normalised(samples, task)
        ids, mask = pad_tokens([_tensor(v, field).long() for v in _field(rows, field, "seq2seq")],
                               task.pad_token_id, field)
        batch: Batch = {field: ids, "attention_mask": mask}
        if task.label_field in rows[0]:
            labels = [_tensor(v, task.label_field).long() for v in _field(rows, task.label_field, "seq2seq")]
            batch[task.label_field] = pad_stack(labels, task.ignore_index, task.label_field)
            if "decoder_input_ids" in rows[0]:
                dec = [_tensor(r["decoder_input_ids"], "decoder_input_ids").long() for r in rows]
                batch["decoder_input_ids"] = pad_tokens(dec, task.pad_token_id, "decoder_input_ids")[0]
            else:
                batch["decoder_input_ids"] = shift_right(batch[task.label_field], task)
        batch.update(_extras(rows, {field, task.label_field, "attention_mask", "decoder_input_ids"}))
        return batch

    return collate


def to_pixels(image: Any, channels: int | None = None) -> Tensor:
    """One image as float ``[C, H, W]``: uint8 scaled to [0, 1]; ``[H, W]`` gets a channel; HWC becomes CHW."""
    t = _tensor(image, "pixel_values")
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3:
        raise DataError(f"An image has shape {tuple(t.shape)}; expected [C, H, W], [H, W, C] or [H, W]. "
                        "Fix: give one image per sample.")
    c_first = channels if channels is not None else 3
    if t.shape[0] not in (1, c_first) and t.shape[-1] in (1, 3, 4, c_first):
        t = t.permute(2, 0, 1)
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    elif not t.is_floating_point():
        t = t.float()
    return t.contiguous()


def vision_collator(task: TaskSpec) -> Collator:
    field = task.input_field

    def collate(samples: list[Any]) -> Batch:
        rows = _normalised(samples, task)
        pixels = [to_pixels(v, task.num_channels) for v in _field(rows, field, "vision")]
        batch: Batch = {field: pad_stack(pixels, 0.0, field, can_pad=False)}
        if task.label_field in rows[0]:
            labels = [_tensor(v, task.label_field) for v in _field(rows, task.label_field, "vision")]
            batch[task.label_field] = torch.stack([t.reshape(()) for t in labels]).long()
        batch.update(_extras(rows, {field, task.label_field}))
        return batch

    return collate


register_collator("causal_lm", causal_lm_collator)
register_collator("packed_lm", packed_lm_collator)
register_collator("classification", classification_collator)
register_collator("seq2seq", seq2seq_collator)
register_collator("vision", vision_collator)

__all__ = [
    "CollatorFactory",
    "causal_lm_collator",
    "classification_collator",
    "collator_names",
    "get_collator",
    "packed_lm_collator",
    "pad_tokens",
    "register_collator",
    "seq2seq_collator",
    "to_pixels",
    "unregister_collator",
    "vision_collator",
]
