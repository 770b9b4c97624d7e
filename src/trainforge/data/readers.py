"""Readers for common local formats, and ``build_data_from_spec`` for the CLI's ``data:`` section.

* text files → language-modelling blocks ``[N, block_size]`` (:func:`read_text_blocks`);
* CSV ``(text, label)`` → classification samples and a label map (:func:`read_csv_classification`);
* JSONL ``(source, target)`` → seq2seq samples (:func:`read_jsonl_seq2seq`);
* image arrays (``.npy``/``.npz`` or in memory) or a folder of images with a labels file → vision classification
  (:func:`read_image_arrays`, :func:`read_image_folder`).

Every bad input is one ``DataError`` naming the file, the row (1-based line number) and the field.
"""

from __future__ import annotations

import csv
import difflib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from trainforge.data.tokenizers import build_tokenizer, check_vocab, encode_text, load_tokenizer, tokenizer_vocab_size
from trainforge.errors import ConfigError, DataError

PathLike = str | Path
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class Samples(Dataset[dict[str, Any]]):
    """A list of dict samples with the reader's metadata (``label_map``, ``source``)."""

    def __init__(self, items: list[dict[str, Any]], source: str, label_map: dict[str, int] | None = None) -> None:
        self.items = items
        self.source = source
        self.label_map = label_map

    @property
    def num_classes(self) -> int | None:
        return len(self.label_map) if self.label_map is not None else None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]

    def __repr__(self) -> str:
        return f"Samples({len(self.items)} from {self.source!r})"


def _read_text(path: Path) -> str:
    if not path.exists():
        raise DataError(f"{path}: no such file. Fix: check the path (relative paths start from {Path.cwd()}).")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc}). Fix: convert the file to UTF-8.") from exc
    if not text.strip():
        raise DataError(f"{path}: the file is empty. Fix: point at a file with data in it.")
    return text


def _files(paths: PathLike | Sequence[PathLike], suffixes: tuple[str, ...] = (".txt",)) -> list[Path]:
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out: list[Path] = []
    for p in map(Path, items):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in suffixes and f.is_file())
            if not found:
                raise DataError(f"{p}: the folder has no {'/'.join(suffixes)} files.")
            out.extend(found)
        else:
            out.append(p)
    if not out:
        raise DataError("no input files given. Fix: pass a file, a folder or a list of files.")
    return out


# ---------------------------------------------------------------------------------------------- text → LM
def read_text_blocks(path: PathLike | Sequence[PathLike], tokenizer: Any, block_size: int,
                     stride: int | None = None, add_eos: bool = True, remainder: str = "overlap") -> Tensor:
    """Tokenise text file(s) (a folder reads every ``.txt`` in it, sorted) into blocks ``[N, block_size]``.

    Files are joined with the tokenizer's ``eos`` between them (``add_eos``). No token is dropped: with
    ``remainder="overlap"`` (default) the tokens after the last full block form one more block, the last
    ``block_size`` tokens of the stream (overlapping the previous block); ``"drop"`` leaves them out.
    """
    from trainforge.data.corpus import lm_blocks

    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 2:
        raise ConfigError([f"block_size must be an int >= 2 (a language model predicts token t+1 from t), got "
                           f"{block_size!r}"], what="read_text_blocks")
    if remainder not in ("overlap", "drop"):
        raise ConfigError([f"remainder must be 'overlap' or 'drop', got {remainder!r}"], what="read_text_blocks")
    ids: list[int] = []
    files = _files(path)
    for f in files:
        ids.extend(encode_text(tokenizer, _read_text(f), add_eos=add_eos))
    where = str(files[0]) if len(files) == 1 else f"{len(files)} files under {files[0].parent}"
    if len(ids) < 2:
        raise DataError(f"{where}: {len(ids)} token(s), too short to train a language model on (it needs at least 2 "
                        "tokens to predict one). Fix: use more text.")
    if len(ids) < block_size:
        raise DataError(f"{where}: {len(ids)} tokens, fewer than one block of block_size={block_size}. Fix: use more "
                        f"text or a block_size <= {len(ids)} (the model's max_seq_len can stay larger).")
    stream = torch.tensor(ids, dtype=torch.long)
    blocks = lm_blocks(stream, block_size, stride)
    step = stride or block_size
    end = (blocks.shape[0] - 1) * step + block_size
    if remainder == "overlap" and end < stream.numel():
        blocks = torch.cat([blocks, stream[-block_size:].unsqueeze(0)])
    return blocks


# ---------------------------------------------------------------------------------------------- CSV → classes
def _build_label_map(values: list[str]) -> dict[str, int]:
    unique = set(values)
    try:
        ordered = sorted(unique, key=lambda v: float(v))
    except ValueError:
        ordered = sorted(unique)
    if all(v.strip().lstrip("-").isdigit() for v in ordered) and [int(v) for v in ordered] == list(range(len(ordered))):
        return {v: int(v) for v in ordered}
    return {v: i for i, v in enumerate(ordered)}


def _label_id(value: str, label_map: Mapping[str, int], where: str, field: str) -> int:
    if value in label_map:
        return int(label_map[value])
    hint = difflib.get_close_matches(value, list(label_map), n=1)
    raise DataError(f"{where}: {field}={value!r} is not in the label map {sorted(label_map)[:10]}"
                    f"{' (did you mean ' + repr(hint[0]) + '?)' if hint else ''}. Fix: correct the row or add the "
                    "label to label_map.")


def read_csv_classification(path: PathLike, text_field: str = "text", label_field: str = "label",
                            tokenizer: Any = None, label_map: Mapping[str, int] | None = None,
                            max_length: int | None = None, delimiter: str = ",") -> Samples:
    """CSV rows ``(text, label)`` → samples ``{"input_ids": [...], "labels": int}`` and ``.label_map``.

    Without ``label_map`` one is built from the labels seen (``"0".."K-1"`` keep their values; otherwise sorted
    order). ``max_length`` truncates the token ids.
    """
    p = Path(path)
    if tokenizer is None:
        raise ConfigError([f"{p}: text classification needs a tokenizer (e.g. ByteTokenizer())"],
                          what="read_csv_classification")
    text = _read_text(p)
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    columns = list(reader.fieldnames or [])
    missing = [c for c in (text_field, label_field) if c not in columns]
    if missing:
        hints = "".join(f" (for {m!r} did you mean {c[0]!r}?)" for m in missing
                        if (c := difflib.get_close_matches(m, columns, n=1)))
        raise DataError(f"{p}: missing column(s) {missing}; the header has {columns}{hints}. Fix: rename the columns "
                        "or pass text_field=... / label_field=....")
    rows: list[tuple[int, str, str]] = []
    for line_no, row in enumerate(reader, start=2):
        text_value, label_value = row.get(text_field), row.get(label_field)
        if text_value is None or label_value is None:
            raise DataError(f"{p}, row {line_no}: has fewer fields than the header {columns}. Fix: the row.")
        if not text_value.strip():
            raise DataError(f"{p}, row {line_no}: field {text_field!r} is empty. Fix: the row, or remove it.")
        rows.append((line_no, text_value, label_value.strip()))
    if not rows:
        raise DataError(f"{p}: the header is there but no data rows. Fix: add rows of ({text_field}, {label_field}).")
    mapping = dict(label_map) if label_map is not None else _build_label_map([r[2] for r in rows])
    items = []
    for line_no, text_value, label_value in rows:
        label = _label_id(label_value, mapping, f"{p}, row {line_no}", label_field)
        ids = encode_text(tokenizer, text_value)
        if not ids:
            raise DataError(f"{p}, row {line_no}: field {text_field!r} tokenises to no tokens.")
        items.append({"input_ids": ids[:max_length] if max_length else ids, "labels": label})
    return Samples(items, str(p), mapping)


# ---------------------------------------------------------------------------------------------- JSONL → seq2seq
def read_jsonl_seq2seq(path: PathLike, tokenizer: Any, source_field: str = "source", target_field: str = "target",
                       max_source_length: int | None = None, max_target_length: int | None = None,
                       add_eos: bool = True) -> Samples:
    """JSON lines ``{"source": ..., "target": ...}`` → ``{"input_ids": [...], "labels": [...]}`` (eos appended to the
    target when the tokenizer has one); the collator builds ``decoder_input_ids``."""
    p = Path(path)
    items = []
    for line_no, line in enumerate(_read_text(p).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{p}, line {line_no}: not valid JSON ({exc.msg} at column {exc.colno}). Fix: one JSON "
                            "object per line.") from exc
        if not isinstance(record, dict):
            raise DataError(f"{p}, line {line_no}: expected a JSON object, got {type(record).__name__}.")
        for field in (source_field, target_field):
            if field not in record:
                raise DataError(f"{p}, line {line_no}: missing field {field!r} (fields: {sorted(record)}). Fix: add "
                                f"it, or pass source_field=/target_field=.")
            if not isinstance(record[field], str) or not record[field].strip():
                raise DataError(f"{p}, line {line_no}: field {field!r} must be a non-empty string, got "
                                f"{record[field]!r}.")
        src = encode_text(tokenizer, record[source_field])
        tgt = encode_text(tokenizer, record[target_field], add_eos=add_eos)
        items.append({"input_ids": src[:max_source_length] if max_source_length else src,
                      "labels": tgt[:max_target_length] if max_target_length else tgt})
    return Samples(items, str(p))


# ---------------------------------------------------------------------------------------------- images
def read_image_arrays(images: Any, labels: Any = None, label_map: Mapping[str, int] | None = None) -> Samples:
    """Images ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` (array, tensor, or a ``.npy``/``.npz`` path; an
    ``.npz`` holds ``images``/``x`` and ``labels``/``y``) → ``{"pixel_values": [C, H, W] float, "labels": int}``."""
    import numpy as np

    from trainforge.data.collators import to_pixels

    source = "arrays"
    if isinstance(images, (str, Path)):
        source = str(images)
        p = Path(images)
        if not p.exists():
            raise DataError(f"{p}: no such file.")
        loaded = np.load(p)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            keys = list(loaded.keys())
            img_key = next((k for k in ("images", "x", "pixel_values") if k in keys), None)
            if img_key is None:
                raise DataError(f"{p}: no 'images' (or 'x') array; it has {keys}.")
            images = loaded[img_key]
            if labels is None:
                lab_key = next((k for k in ("labels", "y") if k in keys), None)
                labels = loaded[lab_key] if lab_key else None
        else:
            images = loaded
    arr = torch.as_tensor(np.asarray(images))
    if arr.dim() not in (3, 4) or arr.shape[0] == 0:
        raise DataError(f"{source}: images have shape {tuple(arr.shape)}; expected [N, H, W], [N, H, W, C] or "
                        "[N, C, H, W] with N >= 1.")
    label_list: list[int] | None = None
    if labels is not None:
        raw = labels.tolist() if hasattr(labels, "tolist") else list(labels)
        if len(raw) != arr.shape[0]:
            raise DataError(f"{source}: {arr.shape[0]} images but {len(raw)} labels. Fix: one label per image.")
        if label_map is not None:
            label_list = [_label_id(str(v), label_map, f"{source}, image {i}", "label") for i, v in enumerate(raw)]
        else:
            label_list = [int(v) for v in raw]
    items = []
    for i in range(arr.shape[0]):
        item: dict[str, Any] = {"pixel_values": to_pixels(arr[i])}
        if label_list is not None:
            item["labels"] = label_list[i]
        items.append(item)
    return Samples(items, source, dict(label_map) if label_map is not None else None)


def read_image_folder(folder: PathLike, labels_file: str = "labels.csv", image_size: int | None = None,
                      mode: str = "RGB", label_map: Mapping[str, int] | None = None,
                      file_field: str = "filename", label_field: str = "label") -> Samples:
    """A folder of images plus a CSV labels file (``filename,label``; paths relative to the folder) → vision
    samples. Without the labels file, one sub-folder per class (``folder/<label>/*.png``) is read instead."""
    from PIL import Image

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder. Fix: point at the folder holding the images.")
    pairs: list[tuple[Path, str, str]] = []  # (image, label, where)
    labels_path = root / labels_file
    if labels_path.is_file():
        reader = csv.DictReader(_read_text(labels_path).splitlines())
        columns = list(reader.fieldnames or [])
        missing = [c for c in (file_field, label_field) if c not in columns]
        if missing:
            raise DataError(f"{labels_path}: missing column(s) {missing}; the header has {columns}. Fix: name them "
                            f"{file_field!r} and {label_field!r}, or pass file_field=/label_field=.")
        for line_no, row in enumerate(reader, start=2):
            image = root / (row.get(file_field) or "")
            where = f"{labels_path}, row {line_no}"
            if not row.get(file_field) or not image.is_file():
                raise DataError(f"{where}: image {row.get(file_field)!r} not found under {root}.")
            pairs.append((image, (row.get(label_field) or "").strip(), where))
    else:
        for sub in sorted(d for d in root.iterdir() if d.is_dir()):
            for image in sorted(f for f in sub.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES):
                pairs.append((image, sub.name, str(image)))
        if not pairs:
            raise DataError(f"{root}: no {labels_file} and no class sub-folders with images. Fix: add {labels_file} "
                            f"({file_field},{label_field}) or put images in one folder per class.")
    if not pairs:
        raise DataError(f"{labels_path}: no rows. Fix: list the images with their labels.")
    mapping = dict(label_map) if label_map is not None else _build_label_map([p[1] for p in pairs])
    items = []
    size: tuple[int, ...] | None = None
    for image, label, where in pairs:
        try:
            with Image.open(image) as opened:
                im = opened.convert(mode)
            if image_size is not None:
                im = im.resize((image_size, image_size))
            pixels = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(im.height, im.width, -1)
        except OSError as exc:
            raise DataError(f"{where}: cannot read image {image} ({exc}).") from exc
        tensor = pixels.permute(2, 0, 1).float() / 255.0
        if size is None:
            size = tuple(tensor.shape)
        elif tuple(tensor.shape) != size:
            raise DataError(f"{where}: image {image.name} is {tuple(tensor.shape)} but earlier ones are {size}. Fix: "
                            "pass image_size=... to resize them all.")
        items.append({"pixel_values": tensor, "labels": _label_id(label, mapping, where, label_field)})
    return Samples(items, str(root), mapping)


# ---------------------------------------------------------------------------------------------- CLI spec
SPEC_KEYS = ("train", "val", "format", "tokenizer", "vocab_size", "block_size", "text_field", "label_field",
             "source_field", "target_field", "labels_file", "image_size", "label_map", "max_length", "stride")
FORMATS = ("text", "csv", "jsonl", "images", "arrays")


def _format_of(path: str) -> str:
    p = Path(path)
    if p.is_dir():
        return "text" if any(p.glob("*.txt")) else "images"
    return {".txt": "text", ".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".npz": "arrays",
            ".npy": "arrays"}.get(p.suffix.lower(), "text")


def _tokenizer_for(spec: Mapping[str, Any], fmt: str, train_path: str) -> Any:
    kind = spec.get("tokenizer", "byte")
    if kind is None or fmt in ("images", "arrays"):
        return None
    if not isinstance(kind, str):
        return kind  # an already-built tokenizer object
    if kind in ("byte", "char", "bpe"):
        if kind == "byte":
            return build_tokenizer("byte")
        texts = [_read_text(f) for f in _files(train_path, (".txt", ".csv", ".jsonl"))]
        options = {"vocab_size": int(spec["vocab_size"])} if kind == "bpe" and "vocab_size" in spec else {}
        return build_tokenizer(kind, texts, **options)
    return load_tokenizer(kind)


def tokenizer_from_spec(spec: Mapping[str, Any]) -> Any:
    """The tokenizer a ``data:`` spec asks for (``byte`` by default; ``char``/``bpe`` are trained on the training
    files; a directory loads a saved one), or None for image data."""
    _check_spec(spec)
    fmt = spec.get("format") or _format_of(str(spec["train"]))
    return _tokenizer_for(spec, fmt, str(spec["train"]))


def _check_spec(spec: Mapping[str, Any]) -> None:
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        problems = []
        for k in unknown:
            close = difflib.get_close_matches(k, SPEC_KEYS, n=1)
            problems.append(f"data.{k} is not a known key{' (did you mean ' + repr(close[0]) + '?)' if close else ''}; "
                            f"known: {', '.join(SPEC_KEYS)}")
        raise ConfigError(problems, what="data spec")
    if not spec.get("train"):
        raise ConfigError(["data.train is required: the path of the training file or folder"], what="data spec")
    fmt = spec.get("format") or _format_of(str(spec["train"]))
    if fmt not in FORMATS:
        close = difflib.get_close_matches(str(fmt), FORMATS, n=1)
        raise ConfigError([f"data.format {fmt!r} is not known{' (did you mean ' + repr(close[0]) + '?)' if close else ''}"
                           f"; use one of {', '.join(FORMATS)}"], what="data spec")


def build_data_from_spec(spec: Mapping[str, Any], task_spec: Any = None, tokenizer: Any = None) -> tuple[Any, Any, Any]:
    """``data: {train: path, val: path, format: text|csv|jsonl|images|arrays, tokenizer: byte|char|bpe|<dir>, ...}``
    → ``(train, val, tokenizer)``. ``block_size`` defaults to ``task_spec.max_seq_len`` (anything with that
    attribute, e.g. the model config); ``format`` to the file's extension; ``tokenizer`` (already built, e.g. by
    :func:`tokenizer_from_spec`) replaces the spec's."""
    _check_spec(spec)
    train_path = str(spec["train"])
    fmt = spec.get("format") or _format_of(train_path)
    if tokenizer is None:
        tokenizer = _tokenizer_for(spec, fmt, train_path)
    max_len = spec.get("max_length") or getattr(task_spec, "max_seq_len", None)

    def read(path: str, label_map: Mapping[str, int] | None) -> Any:
        if fmt == "text":
            block = int(spec.get("block_size") or max_len or 64)
            return read_text_blocks(path, tokenizer, block, stride=spec.get("stride"))
        if fmt == "csv":
            return read_csv_classification(path, spec.get("text_field", "text"), spec.get("label_field", "label"),
                                           tokenizer, label_map, max_length=max_len)
        if fmt == "jsonl":
            return read_jsonl_seq2seq(path, tokenizer, spec.get("source_field", "source"),
                                      spec.get("target_field", "target"), max_len, max_len)
        if fmt == "images":
            return read_image_folder(path, spec.get("labels_file", "labels.csv"), spec.get("image_size"),
                                     label_map=label_map)
        return read_image_arrays(path, label_map=label_map)

    train = read(train_path, spec.get("label_map"))
    label_map = getattr(train, "label_map", None) or spec.get("label_map")
    val = read(str(spec["val"]), label_map) if spec.get("val") else None
    return train, val, tokenizer


def task_for_data(spec: Mapping[str, Any], train: Any, tokenizer: Any, model_config: Any = None,
                  name: str = "user-data") -> Any:
    """The ``TaskSpec`` a CLI run on ``data:`` files trains: from the format, the tokenizer and the label map."""
    from trainforge.tasks import TaskSpec

    fmt = spec.get("format") or _format_of(str(spec["train"]))
    vocab = tokenizer_vocab_size(tokenizer) if tokenizer is not None else None
    model_vocab = getattr(model_config, "vocab_size", None)
    vocab = model_vocab if isinstance(model_vocab, int) else vocab
    seq = getattr(model_config, "max_seq_len", None) or spec.get("block_size") or spec.get("max_length")
    pad = getattr(tokenizer, "pad_token_id", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    if fmt in ("text", "jsonl"):
        if vocab is None or seq is None:
            raise ConfigError([f"data.format {fmt!r} needs a vocabulary size and a sequence length: got vocab_size="
                               f"{vocab!r}, max_seq_len={seq!r}. Fix: set model.vocab_size/max_seq_len or "
                               "data.block_size"], what="data spec")
        make = TaskSpec.language_modeling if fmt == "text" else TaskSpec.seq2seq
        task = make(name=name, vocab_size=int(vocab), max_seq_len=int(seq), pad_token_id=pad, eos_token_id=eos)
        check_vocab(None, tokenizer, task)
        return task
    if fmt == "csv":
        task = TaskSpec.classification(name=name, num_classes=max(train.num_classes, 2), vocab_size=vocab,
                                       max_seq_len=seq, pad_token_id=pad)
        check_vocab(None, tokenizer, task)
        return task
    first = train[0]["pixel_values"]
    num_classes = train.num_classes or (max(int(s["labels"]) for s in train.items) + 1)
    return TaskSpec.vision_classification(name=name, num_classes=max(num_classes, 2), image_size=int(first.shape[-1]),
                                          num_channels=int(first.shape[0]))


__all__ = [
    "Samples",
    "build_data_from_spec",
    "read_csv_classification",
    "read_image_arrays",
    "read_image_folder",
    "read_jsonl_seq2seq",
    "read_text_blocks",
    "task_for_data",
    "tokenizer_from_spec",
]
