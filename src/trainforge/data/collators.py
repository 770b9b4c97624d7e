"""The collator registry: built-in collators chosen from the ``TaskSpec``, selectable by name, plus user ones.

A *collator factory* takes the ``TaskSpec`` (and keyword options) and returns a collate function
``list[sample] -> dict[str, Tensor]``. Built-ins:

* ``causal_lm``: right-pads ``input_ids`` with ``pad_token_id``, adds ``attention_mask`` (1 = token) and
  ``labels`` (the inputs, ``ignore_index`` at padding). Option ``pack=True`` packs instead (see ``packed_lm``).
* ``packed_lm``: concatenates the samples' tokens (``eos_token_id`` between documents when set) and cuts rows of
  ``max_length`` (default ``task.max_seq_len``); only the final row is padded. Every real token is kept; a
  sample's own padding is dropped (its ``attention_mask`` 0, else ``pad_token_id`` when that is not also EOS).
* ``classification``: pads token inputs (or stacks float features), ``labels`` ``[B]`` long.
* ``seq2seq``: pads ``input_ids`` (+ ``attention_mask``), pads ``labels`` with ``ignore_index`` and builds
  ``decoder_input_ids`` by shifting the labels right (``decoder_start_token_id`` first).
* ``vision``: stacks ``pixel_values`` as float ``[B, C, H, W]`` (uint8 images are scaled to [0, 1],
  channels-last images are moved to channels-first), ``labels`` ``[B]`` long.

Masks and padding are data (DESIGN item 20), in every collator: a sample's own ``attention_mask`` is kept and
combined with the padding the collator adds (that is what the model receives); labels the engine builds ignore
every padded position (``TaskSpec.labels_from_inputs``: by mask, or by ``pad_token_id``); labels a sample gives are
used as given (only the padding the collator adds is ``ignore_index``); a ``label`` field is ``labels``; other
numeric fields (``token_type_ids``, ``position_ids``, ...) are stacked and padded like the inputs, so they reach a
model whose forward takes them.

Register your own with ``register_collator("name", factory)`` (or as a decorator) and pick it with
``get_collator(task, "name")`` or ``UniversalDataModule(..., collator="name")``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from trainforge.data.collate import Batch, Collator, pad_stack, shift_right
from trainforge.data.inputs import normalise_sample
from trainforge.errors import ConfigError, DataError
from trainforge.tasks.spec import LABEL_ALIAS

if TYPE_CHECKING:
    from trainforge.tasks import TaskSpec

CollatorFactory = Callable[..., Collator]

MASK = "attention_mask"
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


def _extras(samples: Sequence[dict[str, Any]], skip: set[str], padded: Padded | None = None) -> Batch:
    """Any other numeric fields (``token_type_ids``, ``position_ids``, ...), stacked, so they reach a model whose
    forward takes them. A 1-D field as long as its row's input is cut and padded (with 0) like the input, to the
    batch's padded length; other fields of different lengths are padded to the longest."""
    out: Batch = {}
    for field in samples[0]:
        if field in skip or isinstance(samples[0][field], (str, bytes)):
            continue
        values = [_tensor(s[field], field) for s in samples]
        aligned = padded.align(values) if padded is not None else None
        out[field] = pad_stack(aligned, 0, field, length=padded.ids.shape[1]) if aligned is not None and \
            padded is not None else pad_stack(values, 0, field, can_pad=values[0].dim() >= 1)
    return out


def _normalised(samples: Any, task: TaskSpec) -> list[dict[str, Any]]:
    if isinstance(samples, Mapping):  # a batch a dataset stacked itself (``__getitems__``): split into rows
        n = len(next(iter(samples.values()))) if samples else 0
        return [normalise_sample({k: v[i] for k, v in samples.items()}, task) for i in range(n)]
    if not samples:
        raise DataError("Cannot collate an empty batch. Fix: check that the dataset is not empty.")
    return [normalise_sample(s, task) for s in samples]


def _stacked(samples: Any, field: str) -> bool:
    """True for a batch a dataset stacked itself (``PairSamples.__getitems__``): equal-length rows, nothing to pad."""
    return isinstance(samples, Mapping) and isinstance(samples.get(field), Tensor) and samples[field].dim() >= 2


def _own_masks(rows: Sequence[dict[str, Any]], seqs: Sequence[Tensor]) -> list[Tensor] | None:
    """The samples' own ``attention_mask`` rows (cut like their inputs), or None when the samples bring none."""
    if MASK not in rows[0]:
        return None
    masks = [_tensor(m, MASK).long().reshape(-1) for m in _field(rows, MASK, "attention-mask")]
    for i, (m, s) in enumerate(zip(masks, seqs)):
        if m.shape[0] < s.shape[0]:
            raise DataError(f"Sample {i} has an attention_mask of {m.shape[0]} positions for {s.shape[0]} input ids; "
                            "expected one mask value per id (1 = token, 0 = padding). Fix: return the mask the "
                            "tokenizer gave with the ids.")
    return [m[: s.shape[0]] for m, s in zip(masks, seqs)]


class Padded(NamedTuple):
    """Token inputs padded by :func:`pad_inputs`."""

    ids: Tensor  # [B, T]
    mask: Tensor  # what the model receives: the samples' own mask combined with the padding added here
    lengths: list[int]  # each row's length after ``max_length``
    raw: list[int]  # each row's length as given

    def align(self, values: Sequence[Tensor]) -> list[Tensor] | None:
        """Per-token 1-D values (one per input id of their row), cut like the inputs; None if they are not."""
        if not all(v.dim() == 1 and v.shape[0] == n for v, n in zip(values, self.raw)):
            return None
        return [v[:n] for v, n in zip(values, self.lengths)]


def pad_inputs(rows: Sequence[dict[str, Any]], task: TaskSpec, what: str, multiple_of: int | None = None,
               max_length: int | None = None) -> Padded:
    """The token inputs of ``rows`` padded with ``pad_token_id`` (see :class:`Padded`): the mask is the samples' own
    (when they bring one) combined with the padding added here."""
    field = task.input_field
    seqs = [_tensor(v, field).long() for v in _field(rows, field, what)]
    raw = [int(s.shape[0]) if s.dim() else 0 for s in seqs]
    if max_length is not None:
        seqs = [s[:max_length] for s in seqs]
    own = _own_masks(rows, seqs)
    ids, length_mask = pad_tokens(seqs, task.pad_token_id, field, multiple_of)
    lengths = [int(s.shape[0]) for s in seqs]
    if own is not None:
        length_mask = pad_stack(own, 0, MASK, length=ids.shape[1]) * length_mask
    return Padded(ids, length_mask, lengths, raw)


# ------------------------------------------------------------------------------------------------ built-ins
def causal_lm_collator(task: TaskSpec, pack: bool = False, pad_to_multiple_of: int | None = None,
                       max_length: int | None = None) -> Collator:
    """Causal LM: padded ``input_ids``, ``attention_mask`` and ``labels`` (``ignore_index`` at padding)."""
    if pack:
        return packed_lm_collator(task, max_length=max_length)
    field = task.input_field

    def collate(samples: Any) -> Batch:
        if _stacked(samples, field):  # pre-stacked equal-length rows (PairSamples.__getitems__): nothing to pad
            ids = samples[field].long()[:, :max_length] if max_length else samples[field].long()
            own = samples.get(MASK)
            own = own.long()[:, : ids.shape[1]] if isinstance(own, Tensor) else None
            given = samples.get(task.label_field, samples.get(LABEL_ALIAS) if task.label_field == "labels" else None)
            labels = given.long() if isinstance(given, Tensor) else task.labels_from_inputs(ids, own)
            out: Batch = {field: ids, MASK: own if own is not None else torch.ones_like(ids),
                          task.label_field: labels}
            out.update({k: v for k, v in samples.items() if k not in out and k != LABEL_ALIAS
                        and isinstance(v, Tensor)})
            return out
        rows = _normalised(samples, task)
        padded = pad_inputs(rows, task, "causal_lm", pad_to_multiple_of, max_length)
        ids, mask = padded.ids, padded.mask
        if task.label_field in rows[0]:  # labels the user gives are used as given (only the added padding ignored)
            given = [_tensor(r[task.label_field], task.label_field).long().reshape(-1) for r in rows]
            aligned = padded.align(given)
            labels = pad_stack(aligned, task.ignore_index, task.label_field, length=ids.shape[1]) \
                if aligned is not None else pad_stack(given, task.ignore_index, task.label_field)
        else:  # built: every padded position ignored (the samples' own mask and the padding added here, pad_token_id)
            labels = task.labels_from_inputs(ids, mask)
        batch: Batch = {field: ids, MASK: mask, task.label_field: labels}
        batch.update(_extras(rows, {field, task.label_field, MASK}, padded))
        return batch

    return collate


def packed_lm_collator(task: TaskSpec, max_length: int | None = None) -> Collator:
    """Sequence packing: documents back to back (``eos_token_id`` after each when set) in rows of ``max_length``.

    Every token lands in exactly one row; only the last row is padded (``pad_token_id``, else ``eos_token_id``),
    with ``attention_mask`` 0 and labels ``ignore_index`` there. A sample's padding (its own ``attention_mask`` 0,
    else ``pad_token_id`` when that is not also the EOS token) is dropped before packing. Labels a sample gives
    are packed alongside its tokens (the EOS added after a document is its own label).
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
    pad_only = task.pad_token_id if task.pad_token_id is not None and task.pad_token_id != eos else None

    def collate(samples: Any) -> Batch:
        rows = _normalised(samples, task)
        seqs = [_tensor(s, field).long().reshape(-1) for s in _field(rows, field, "packed_lm")]
        own = _own_masks(rows, seqs)
        lengths = [int(t.shape[0]) for t in seqs]
        # The whole batch at once (a few kernels, not a few per sample): one stream, padding dropped.
        stream = torch.cat(seqs)
        labels_stream = _packed_labels(rows, lengths) if task.label_field in rows[0] else None
        keep = torch.cat(own) != 0 if own is not None else (stream != pad_only if pad_only is not None else None)
        if keep is not None:
            ends = torch.tensor(lengths).cumsum(0)
            kept = torch.cat([keep.new_zeros(1, dtype=torch.long), keep.long().cumsum(0)])[ends]
            lengths = torch.diff(kept, prepend=kept.new_zeros(1)).tolist()
            stream = stream[keep]
            labels_stream = labels_stream[keep] if labels_stream is not None else None
        if eos is not None:  # an EOS after every document that does not already end with one
            ends = torch.tensor(lengths).cumsum(0) - 1
            last = stream[ends.clamp(min=0)] if stream.numel() else torch.full((len(lengths),), -1)
            needs = ((last != eos) | (torch.tensor(lengths) == 0)).tolist()
            sep = torch.tensor([eos], dtype=torch.long)
            pieces, label_pieces = [], []
            for tokens, ys, need in zip(stream.split(lengths),
                                        labels_stream.split(lengths) if labels_stream is not None else lengths, needs):
                pieces += [tokens, sep] if need else [tokens]
                label_pieces += [ys, sep] if need else [ys]  # the added EOS is its own label
            stream = torch.cat(pieces)
            labels_stream = torch.cat(label_pieces) if labels_stream is not None else None
        n_rows = max(1, -(-stream.numel() // length))
        ids = torch.full((n_rows * length,), pad, dtype=torch.long)
        ids[: stream.numel()] = stream
        mask = torch.zeros(n_rows * length, dtype=torch.long)
        mask[: stream.numel()] = 1
        ids, mask = ids.view(n_rows, length), mask.view(n_rows, length)
        if labels_stream is not None:
            labels = torch.full((n_rows * length,), task.ignore_index, dtype=torch.long)
            labels[: labels_stream.numel()] = labels_stream
            labels = labels.view(n_rows, length)
        else:
            labels = ids.masked_fill(mask == 0, task.ignore_index)
        return {field: ids, MASK: mask, task.label_field: labels}

    def _packed_labels(rows: list[dict[str, Any]], lengths: list[int]) -> Tensor:
        """The samples' own labels, one per token (cut, or padded with ignore_index, to each sample's length)."""
        given = [_tensor(v, task.label_field).long().reshape(-1) for v in _field(rows, task.label_field, "packed_lm")]
        out = [F.pad(y[:n], (0, n - min(n, y.shape[0])), value=task.ignore_index) for y, n in zip(given, lengths)]
        return torch.cat(out)

    return collate


def _class_labels(values: Sequence[Any], field: str) -> Tensor:
    labels = [_tensor(v, field) for v in values]
    return torch.stack([t.reshape(()) if t.numel() == 1 else t for t in labels]).long()


def classification_collator(task: TaskSpec) -> Collator:
    """Token inputs padded (+ ``attention_mask``: the samples' own, combined with the padding) or float features
    stacked; ``labels`` ``[B]`` long."""
    field = task.input_field

    def collate(samples: Any) -> Batch:
        if _stacked(samples, field) and not samples[field].is_floating_point():  # equal-length rows: nothing to pad
            ids = samples[field].long()
            own = samples.get(MASK)
            batch: Batch = {field: ids, MASK: own.long() if isinstance(own, Tensor) else torch.ones_like(ids)}
            batch.update({k: v for k, v in samples.items() if k not in batch and isinstance(v, Tensor)})
            labels = batch.pop(LABEL_ALIAS, None) if task.label_field == "labels" else None
            if labels is not None and task.label_field not in batch:
                batch[task.label_field] = labels
            if task.label_field in batch:
                batch[task.label_field] = batch[task.label_field].reshape(ids.shape[0], -1).squeeze(-1).long()
            return batch
        rows = _normalised(samples, task)
        first = _tensor(rows[0][field], field) if field in rows[0] else None
        batch = {}
        padded: Padded | None = None
        if first is not None and first.is_floating_point():
            values = [_tensor(v, field) for v in _field(rows, field, "classification")]
            batch[field] = pad_stack(values, 0.0, field, can_pad=False)
            skip = {field, task.label_field}
        else:
            padded = pad_inputs(rows, task, "classification")
            batch[field], batch[MASK] = padded.ids, padded.mask
            skip = {field, task.label_field, MASK}
        if task.label_field in rows[0]:
            batch[task.label_field] = _class_labels(_field(rows, task.label_field, "classification"), task.label_field)
        batch.update(_extras(rows, skip, padded))
        return batch

    return collate


def seq2seq_collator(task: TaskSpec) -> Collator:
    """Encoder inputs padded with ``attention_mask`` (the samples' own, combined with the padding); labels used as
    given, padded with ``ignore_index``; ``decoder_input_ids`` given, or the labels shifted right."""
    field = task.input_field

    def collate(samples: Any) -> Batch:
        rows = _normalised(samples, task)
        padded = pad_inputs(rows, task, "seq2seq")
        batch: Batch = {field: padded.ids, MASK: padded.mask}
        if task.label_field in rows[0]:
            labels = [_tensor(v, task.label_field).long() for v in _field(rows, task.label_field, "seq2seq")]
            batch[task.label_field] = pad_stack(labels, task.ignore_index, task.label_field)
            if "decoder_input_ids" in rows[0]:
                dec = [_tensor(r["decoder_input_ids"], "decoder_input_ids").long() for r in rows]
                batch["decoder_input_ids"] = pad_tokens(dec, task.pad_token_id, "decoder_input_ids")[0]
            else:
                batch["decoder_input_ids"] = shift_right(batch[task.label_field], task)
        batch.update(_extras(rows, {field, task.label_field, MASK, "decoder_input_ids"}, padded))
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

    def collate(samples: Any) -> Batch:
        rows = _normalised(samples, task)
        pixels = [to_pixels(v, task.num_channels) for v in _field(rows, field, "vision")]
        batch: Batch = {field: pad_stack(pixels, 0.0, field, can_pad=False)}
        if task.label_field in rows[0]:
            batch[task.label_field] = _class_labels(_field(rows, task.label_field, "vision"), task.label_field)
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
