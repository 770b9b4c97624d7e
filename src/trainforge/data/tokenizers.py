"""Tokenizers: character-level and byte-level built in, BPE trained on your text (``hf`` extra), save/load, and the
model-vs-tokenizer vocabulary check.

Every tokenizer here has the same small interface: ``encode(text, add_bos=False, add_eos=False) -> list[int]``,
``decode(ids, skip_special_tokens=True) -> str``, ``vocab_size`` (== ``len(tok)``), ``pad_token_id``,
``bos_token_id``, ``eos_token_id``, ``save(directory)``; :func:`load_tokenizer` reads any of them back.
Hugging Face tokenizers (``transformers`` ``PreTrainedTokenizer*`` or ``tokenizers.Tokenizer``) are accepted
wherever a tokenizer is, through :func:`encode_text` and :func:`tokenizer_vocab_size`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from trainforge.errors import ConfigError, DataError

META_FILE = "trainforge_tokenizer.json"
SPECIALS = ("<pad>", "<bos>", "<eos>")


class _Base:
    kind = ""
    specials: tuple[str, ...] = ()
    offset = 0  # id of the first special token

    @property
    def pad_token_id(self) -> int | None:
        return self.token_to_special("<pad>")

    @property
    def bos_token_id(self) -> int | None:
        return self.token_to_special("<bos>")

    @property
    def eos_token_id(self) -> int | None:
        return self.token_to_special("<eos>")

    def token_to_special(self, token: str) -> int | None:
        return self.offset + self.specials.index(token) if token in self.specials else None

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.vocab_size

    def _wrap(self, ids: list[int], add_bos: bool, add_eos: bool) -> list[int]:
        if add_bos:
            if self.bos_token_id is None:
                raise ConfigError(["add_bos=True but this tokenizer has no <bos> token; build it with the special "
                                   "tokens (the default)"], what=type(self).__name__)
            ids = [self.bos_token_id, *ids]
        if add_eos:
            if self.eos_token_id is None:
                raise ConfigError(["add_eos=True but this tokenizer has no <eos> token; build it with the special "
                                   "tokens (the default)"], what=type(self).__name__)
            ids = [*ids, self.eos_token_id]
        return ids

    def _check_ids(self, ids: Sequence[int] | Tensor) -> list[int]:
        out = [int(i) for i in (ids.tolist() if isinstance(ids, Tensor) else ids)]
        bad = [i for i in out if i < 0 or i >= self.vocab_size]
        if bad:
            raise DataError(f"token id {bad[0]} is outside this {self.kind} tokenizer's vocabulary [0, {self.vocab_size}). "
                            "Fix: decode ids produced by the same tokenizer (check the model's vocab_size).")
        return out

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        raise NotImplementedError

    def __call__(self, text: str) -> list[int]:
        return self.encode(text)

    def save(self, directory: str | Path) -> Path:
        raise NotImplementedError


class ByteTokenizer(_Base):
    """UTF-8 bytes: ids 0..255; ``<pad>``, ``<bos>``, ``<eos>`` at 256, 257, 258 (``specials=()`` for 256 ids)."""

    kind = "byte"

    def __init__(self, specials: Sequence[str] = SPECIALS) -> None:
        self.specials = tuple(specials)
        self.offset = 256

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.specials)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        return self._wrap(list(text.encode("utf-8")), add_bos, add_eos)

    def decode(self, ids: Sequence[int] | Tensor, skip_special_tokens: bool = True) -> str:
        out = bytearray()
        for i in self._check_ids(ids):
            if i < 256:
                out.append(i)
            elif not skip_special_tokens:
                out.extend(self.specials[i - 256].encode())
        return out.decode("utf-8", errors="replace")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "specials": list(self.specials)}

    def save(self, directory: str | Path) -> Path:
        return _write_meta(directory, self.to_dict())


class CharTokenizer(_Base):
    """One id per character seen in training text: specials first (``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3),
    then the characters in sorted order. Unseen characters encode to ``<unk>``."""

    kind = "char"

    def __init__(self, chars: Iterable[str], specials: Sequence[str] = (*SPECIALS, "<unk>")) -> None:
        self.specials = tuple(specials)
        self.offset = 0
        self.chars = sorted(set(chars))
        self._index = {c: i + len(self.specials) for i, c in enumerate(self.chars)}

    @classmethod
    def train(cls, texts: str | Iterable[str], specials: Sequence[str] = (*SPECIALS, "<unk>")) -> CharTokenizer:
        chars: set[str] = set()
        for t in [texts] if isinstance(texts, str) else texts:
            chars.update(t)
        if not chars:
            raise DataError("CharTokenizer.train got no characters (empty text). Fix: pass the training text.")
        return cls(chars, specials)

    @property
    def vocab_size(self) -> int:
        return len(self.specials) + len(self.chars)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        unk = self.token_to_special("<unk>")
        ids = []
        for c in text:
            i = self._index.get(c, unk)
            if i is None:
                raise DataError(f"character {c!r} is not in this CharTokenizer's vocabulary and it has no <unk>. "
                                "Fix: train it on text that includes every character, or keep the <unk> token.")
            ids.append(i)
        return self._wrap(ids, add_bos, add_eos)

    def decode(self, ids: Sequence[int] | Tensor, skip_special_tokens: bool = True) -> str:
        n = len(self.specials)
        parts = []
        for i in self._check_ids(ids):
            if i >= n:
                parts.append(self.chars[i - n])
            elif not skip_special_tokens:
                parts.append(self.specials[i])
        return "".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "specials": list(self.specials), "chars": self.chars}

    def save(self, directory: str | Path) -> Path:
        return _write_meta(directory, self.to_dict())


class BPETokenizer(_Base):
    """Byte-level BPE trained on your text with Hugging Face ``tokenizers`` (``pip install trainforge[hf]``)."""

    kind = "bpe"

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        self.specials = tuple(s for s in SPECIALS if tokenizer.token_to_id(s) is not None)

    def token_to_special(self, token: str) -> int | None:
        i = self.tok.token_to_id(token)
        return int(i) if i is not None else None

    @classmethod
    def train(cls, texts: str | Iterable[str], vocab_size: int = 1000, min_frequency: int = 2) -> BPETokenizer:
        tk = _import_tokenizers()
        tok = tk.Tokenizer(tk.models.BPE(unk_token=None))
        tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                         special_tokens=list(SPECIALS),
                                         initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
        seen = [0]

        def stream() -> Iterable[str]:  # consumed as it goes: an iterator over a large corpus is never held whole
            for text in [texts] if isinstance(texts, str) else texts:
                seen[0] += len(text)
                yield text

        tok.train_from_iterator(stream(), trainer=trainer)
        if not seen[0]:
            raise DataError("BPETokenizer.train got no text. Fix: pass the training text (a string or strings).")
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return int(self.tok.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        return self._wrap(list(self.tok.encode(text, add_special_tokens=False).ids), add_bos, add_eos)

    def decode(self, ids: Sequence[int] | Tensor, skip_special_tokens: bool = True) -> str:
        return str(self.tok.decode(self._check_ids(ids), skip_special_tokens=skip_special_tokens))

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.tok.save(str(d / "tokenizer.json"))
        return _write_meta(d, {"kind": self.kind, "file": "tokenizer.json"})


def _import_tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError as exc:
        raise ImportError("BPE tokenizers need Hugging Face `tokenizers`: pip install 'trainforge[hf]'") from exc
    return tokenizers


def _write_meta(directory: str | Path, meta: dict[str, Any]) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / META_FILE
    path.write_text(json.dumps(meta, ensure_ascii=False, indent=1))
    return path


Tokenizer = ByteTokenizer | CharTokenizer | BPETokenizer


def build_tokenizer(kind: str, texts: Iterable[str] | None = None, **options: Any) -> Tokenizer:
    """``"byte"`` | ``"char"`` | ``"bpe"`` (the latter two are trained on ``texts``)."""
    if kind == "byte":
        return ByteTokenizer(**options)
    if kind in ("char", "bpe") and texts is None:
        raise ConfigError([f"a {kind!r} tokenizer is trained on the training text, but none was given"],
                          what="tokenizer")
    assert texts is not None
    if kind == "char":
        return CharTokenizer.train(texts, **options)
    if kind == "bpe":
        return BPETokenizer.train(texts, **options)
    raise ConfigError([f"tokenizer {kind!r} is not known; use 'byte', 'char', 'bpe' or a saved tokenizer directory"],
                      what="tokenizer")


def save_tokenizer(tokenizer: Any, directory: str | Path) -> Path:
    """Save any supported tokenizer into ``directory`` (e.g. ``run_dir / "tokenizer"``); returns the directory."""
    d = Path(directory)
    if hasattr(tokenizer, "save_pretrained"):  # transformers
        tokenizer.save_pretrained(str(d))
        _write_meta(d, {"kind": "hf"})
    elif isinstance(tokenizer, _Base):
        tokenizer.save(d)
    elif hasattr(tokenizer, "token_to_id") and hasattr(tokenizer, "save"):  # tokenizers.Tokenizer
        BPETokenizer(tokenizer).save(d)
    else:
        raise ConfigError([f"cannot save a tokenizer of type {type(tokenizer).__qualname__}; supported: trainforge "
                           "tokenizers, transformers tokenizers, tokenizers.Tokenizer"], what="save_tokenizer")
    return d


def load_tokenizer(directory: str | Path) -> Any:
    """Load what :func:`save_tokenizer` wrote."""
    d = Path(directory)
    meta_path = d / META_FILE
    if not meta_path.is_file():
        raise ConfigError([f"{meta_path} not found: {d} does not hold a saved tokenizer. Fix: pass the directory "
                           "save_tokenizer wrote (a run's 'tokenizer' folder)"], what="load_tokenizer")
    meta = json.loads(meta_path.read_text())
    kind = meta.get("kind")
    if kind == "byte":
        return ByteTokenizer(meta["specials"])
    if kind == "char":
        return CharTokenizer(meta["chars"], meta["specials"])
    if kind == "bpe":
        return BPETokenizer(_import_tokenizers().Tokenizer.from_file(str(d / meta["file"])))
    if kind == "hf":
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(d))
    raise ConfigError([f"{meta_path}: unknown tokenizer kind {kind!r}"], what="load_tokenizer")


# ------------------------------------------------------------------------------- duck typing over tokenizers
def encode_text(tokenizer: Any, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """Token ids of ``text`` for a trainforge, transformers or ``tokenizers`` tokenizer (or a callable)."""
    if isinstance(tokenizer, _Base):
        return tokenizer.encode(text, add_bos=add_bos, add_eos=add_eos)
    if hasattr(tokenizer, "token_to_id") and hasattr(tokenizer, "encode"):  # tokenizers.Tokenizer
        ids = list(tokenizer.encode(text, add_special_tokens=False).ids)
    elif hasattr(tokenizer, "encode"):
        try:
            ids = list(tokenizer.encode(text, add_special_tokens=False))
        except TypeError:
            ids = list(tokenizer.encode(text))
    elif callable(tokenizer):
        ids = list(tokenizer(text))
    else:
        raise ConfigError([f"tokenizer of type {type(tokenizer).__qualname__} has no encode(); pass a trainforge, "
                           "transformers or tokenizers tokenizer"], what="tokenizer")
    if add_bos and getattr(tokenizer, "bos_token_id", None) is not None:
        ids = [tokenizer.bos_token_id, *ids]
    if add_eos and getattr(tokenizer, "eos_token_id", None) is not None:
        ids = [*ids, tokenizer.eos_token_id]
    return [int(i) for i in ids]


def tokenizer_vocab_size(tokenizer: Any) -> int | None:
    """The number of ids the tokenizer can produce (``len(tokenizer)`` counts added tokens for transformers)."""
    if isinstance(tokenizer, _Base):
        return tokenizer.vocab_size
    if hasattr(tokenizer, "get_vocab_size"):
        return int(tokenizer.get_vocab_size(with_added_tokens=True))
    try:
        return int(len(tokenizer))
    except TypeError:
        size = getattr(tokenizer, "vocab_size", None)
        return int(size) if isinstance(size, int) else None


def model_vocab_size(model: nn.Module) -> int | None:
    """Rows of the model's token embedding (the first ``nn.Embedding`` whose name says token/word/wte, else the
    first ``nn.Embedding``); ``None`` when the model has none."""
    get = getattr(model, "get_input_embeddings", None)
    if callable(get):
        try:
            emb = get()
            if isinstance(emb, nn.Embedding):
                return int(emb.num_embeddings)
        except (NotImplementedError, AttributeError):
            pass
    embeddings = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
    if not embeddings:
        return None
    for name, m in embeddings:
        if any(k in name.lower() for k in ("tok", "word", "wte", "embed_tokens")):
            return int(m.num_embeddings)
    return int(embeddings[0][1].num_embeddings)


def check_vocab(model: nn.Module | None = None, tokenizer: Any = None, task: Any = None,
                token_ids: Tensor | None = None, where: str = "the data") -> None:
    """Before step 0: the tokenizer, the TaskSpec, the model's embedding and the data agree on the vocabulary.

    A token id >= the model's vocabulary would otherwise be a CUDA device-side assert in the embedding lookup.
    Raises ``DataError`` naming both sizes and the fix.
    """
    sizes: dict[str, int] = {}
    if model is not None and (n := model_vocab_size(model)) is not None:
        sizes["the model's token embedding"] = n
    if task is not None and getattr(task, "vocab_size", None) is not None:
        sizes["TaskSpec vocab_size"] = int(task.vocab_size)
    limit = min(sizes.values()) if sizes else None
    if tokenizer is not None and limit is not None:
        tok_n = tokenizer_vocab_size(tokenizer)
        if tok_n is not None and tok_n > limit:
            owner = min(sizes, key=lambda k: sizes[k])
            raise DataError(f"vocabulary mismatch: the tokenizer produces ids up to {tok_n - 1} ({tok_n} tokens) but "
                            f"{owner} has only {limit} entries. Fix: build the model and TaskSpec with "
                            f"vocab_size={tok_n} (len(tokenizer)), or use the tokenizer the model was trained with.")
    if token_ids is not None and limit is not None and token_ids.numel():
        high = int(token_ids.max())
        if high >= limit:
            owner = min(sizes, key=lambda k: sizes[k])
            flat = (token_ids.reshape(-1) >= limit).nonzero()[0].item()
            raise DataError(f"{where} contains token id {high} (first out-of-range id at flat position {flat}) but "
                            f"{owner} has {limit} entries (ids must be < {limit}). Fix: set vocab_size to at least "
                            f"{high + 1} or re-tokenize with the model's tokenizer.")


__all__ = [
    "BPETokenizer",
    "ByteTokenizer",
    "CharTokenizer",
    "build_tokenizer",
    "check_vocab",
    "encode_text",
    "load_tokenizer",
    "model_vocab_size",
    "save_tokenizer",
    "tokenizer_vocab_size",
]
