"""``trainforge prepare``: tokenise text files once into memory-mapped token files, streaming and in parallel.

The output folder (read by :class:`trainforge.data.tokenfile.TokenFile`)::

    train.bin, val.bin   token ids back to back (uint16 when the vocabulary has <= 65536 ids, else uint32)
    tokenizer/           the tokenizer, saved with trainforge.data.tokenizers.save_tokenizer
    meta.json            dtype, vocab_size, token counts, tokenizer, size and sha256 of each .bin; written last

How it works, and what it guarantees:

* **Streaming.** Files are read in chunks of ~1 MiB (``chunk_bytes``), never whole: memory stays flat however big
  the corpus is. A chunk ends just after a newline (the first one at or after the nominal cut, looking ahead at most
  64 KiB; without one, at the next UTF-8 character boundary), so no character or line is split.
* **Validation split.** The last ``val_fraction`` of each file (cut at the first newline at or after
  ``size * (1 - val_fraction)``) goes to ``val.bin``, the rest to ``train.bin``; files are taken in the order given
  (a folder: every ``.txt`` under it, sorted by path). It depends only on the bytes of the files: the same files
  always give the same split, and validation text never appears in training.
* **Parallel, deterministic.** ``workers`` processes encode chunks (``char``, ``bpe``; byte ids are a cast, done in
  the main process); the main process writes and hashes the results in chunk order on a writer thread, so the files
  are identical for any number of workers. Tokens are those of each chunk encoded on its own
  (BPE: of each ~64K-character piece of it): BPE may tokenise the few bytes around such a boundary differently
  from the whole file in one call; decoding ``train.bin`` then ``val.bin`` of one file gives its text back exactly
  (no separator tokens are added).
* **Vocabulary first.** ``byte`` needs none. ``char`` and ``bpe`` need one pass over all the text (validation part
  included, so ``val.bin`` has no unknown characters) before encoding: ``char`` collects the set of characters (in
  parallel; about a third of the encoding time), ``bpe`` trains a byte-level BPE with Hugging Face ``tokenizers`` from
  a stream of 64 KiB pieces (its memory grows with the number of distinct words, not with the corpus; typically as
  long as the encoding pass). A saved tokenizer folder skips the pass.
* **Crash safety.** meta.json of an earlier prepare into the same folder is removed first, each ``.bin`` is written
  under a temporary name and renamed into place when complete (``trainforge.atomic``), and meta.json is written
  last, atomically: a prepare that is interrupted at any point leaves no folder that looks finished, and
  ``TokenFile`` refuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from trainforge.atomic import _fsync_dir, atomic_write_text, commit_temporary, write_temporary
from trainforge.data.tokenfile import DTYPES, FORMAT, FORMAT_VERSION, META_NAME, dtype_for_vocab
from trainforge.errors import ConfigError, DataError

__all__ = ["CHUNK_BYTES", "Chunk", "input_files", "plan_chunks", "prepare"]

CHUNK_BYTES = 1 << 20
BPE_PIECE_BYTES = 1 << 16  # the BPE trainer buffers 256 items of its iterator: 256 x 64 KiB = 16 MiB
LOOKAHEAD = 1 << 16
PARTS = ("train", "val")
TOKENIZER_KINDS = ("byte", "char", "bpe")


@dataclass(frozen=True)
class Chunk:
    """Bytes ``[start, end)`` of input file ``path``, bound for ``part`` ("train" or "val")."""

    path: str
    start: int
    end: int
    part: str


# --------------------------------------------------------------------------------------------------- planning
def input_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The files to read, in order: each file as given, each folder's ``.txt`` files (recursively, sorted)."""
    if not paths:
        raise ConfigError(["no input given. Fix: pass text files or folders, e.g. `trainforge prepare data/`"],
                          what="trainforge prepare")
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() == ".txt" and f.is_file())
            if not found:
                raise DataError(f"{p}: the folder has no .txt files. Fix: pass the text files themselves, or a folder "
                                "holding .txt files.")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"{p}: no such file or folder. Fix: check the path (relative paths start from "
                            f"{Path.cwd()}).")
    return out


def _cut(f: IO[bytes], position: int, limit: int) -> int:
    """The chunk boundary for a nominal cut at ``position``: just after the next newline within ``LOOKAHEAD``
    bytes, else the next UTF-8 character start; never past ``limit``."""
    if position >= limit:
        return limit
    f.seek(position)
    window = f.read(min(LOOKAHEAD, limit - position))
    newline = window.find(b"\n")
    if newline >= 0:
        return position + newline + 1
    for i, byte in enumerate(window[:4]):  # a UTF-8 character has at most 3 continuation bytes
        if byte & 0xC0 != 0x80:
            return position + i
    return min(position + len(window), limit)


def plan_chunks(files: Sequence[Path], val_fraction: float, chunk_bytes: int = CHUNK_BYTES
                ) -> tuple[list[Chunk], list[dict[str, Any]]]:
    """Every file cut into train and val chunks (see the module docstring), and one record per file."""
    chunks: list[Chunk] = []
    sources: list[dict[str, Any]] = []
    for path in files:
        size = path.stat().st_size
        with open(path, "rb") as f:
            split = _cut(f, int(size * (1.0 - val_fraction)), size) if val_fraction > 0 else size
            for part, lo, hi in (("train", 0, split), ("val", split, size)):
                start = lo
                while start < hi:
                    end = _cut(f, start + chunk_bytes, hi)
                    chunks.append(Chunk(str(path), start, end, part))
                    start = end
        sources.append({"path": str(path), "bytes": size, "val_from_byte": split})
    return chunks, sources


def _read(chunk: Chunk) -> bytes:
    with open(chunk.path, "rb") as f:
        f.seek(chunk.start)
        return f.read(chunk.end - chunk.start)


def _text(chunk: Chunk) -> str:
    raw = _read(chunk)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{chunk.path}: not UTF-8 text at byte {chunk.start + exc.start} ({exc.reason}). Fix: convert "
                        "the file to UTF-8 (e.g. iconv -t UTF-8), or use --tokenizer byte, which takes any bytes.") \
            from None


# ------------------------------------------------------------------------------------------ worker processes
_encoder: Callable[[Chunk], np.ndarray[Any, Any]] | None = None


def _init_encoder(spec: tuple[Any, ...], dtype: str) -> None:
    """Build this process's encoder from a picklable description of the tokenizer (works with fork and spawn)."""
    global _encoder
    out = DTYPES[dtype]
    kind = spec[0]
    if kind == "byte":
        # UTF-8 bytes are the ids: the file's bytes as they are (ByteTokenizer.encode of the decoded text)
        _encoder = lambda c: np.frombuffer(_read(c), dtype=np.uint8).astype(out)  # noqa: E731
    elif kind == "char":
        _, chars, offset, unk = spec
        table = np.array([ord(c) for c in chars], dtype=np.uint32)  # sorted, as CharTokenizer orders them

        def encode_chars(c: Chunk) -> np.ndarray[Any, Any]:
            points = np.frombuffer(_text(c).encode("utf-32-le"), dtype="<u4")
            at = np.minimum(np.searchsorted(table, points), len(table) - 1)
            return np.where(table[at] == points, at + offset, unk).astype(out)

        _encoder = encode_chars
    elif kind == "bpe":
        from trainforge.data.tokenizers import _import_tokenizers

        tok = _import_tokenizers().Tokenizer.from_str(spec[1])

        def encode_bpe(c: Chunk) -> np.ndarray[Any, Any]:
            # In pieces of ~64K characters (cut after a newline): the tokenizer's working memory is ~100x its
            # input, so a whole 1 MiB chunk at once would cost each worker ~100 MB more.
            text, pieces, at = _text(c), [], 0
            while at < len(text):
                end = text.find("\n", at + BPE_PIECE_BYTES) + 1 or len(text)
                pieces.append(np.array(tok.encode(text[at:end], add_special_tokens=False).ids, dtype=out))
                at = end
            return np.concatenate(pieces) if pieces else np.zeros(0, dtype=out)

        _encoder = encode_bpe
    else:  # a saved tokenizer of another kind (transformers): its own encode
        from trainforge.data.tokenizers import encode_text, load_tokenizer

        loaded = load_tokenizer(spec[1])
        _encoder = lambda c: np.array(encode_text(loaded, _text(c)), dtype=out)  # noqa: E731


def _encode(chunk: Chunk) -> np.ndarray[Any, Any]:
    assert _encoder is not None
    return _encoder(chunk)


def _chars(chunk: Chunk) -> set[str]:
    return set(_text(chunk))


def _start_worker(init: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process per core already: no thread pool inside each
    if init is not None:
        init(*initargs)


def _ordered(func: Callable[[Chunk], Any], chunks: Sequence[Chunk], workers: int,
             init: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()) -> Iterator[Any]:
    """``func`` over ``chunks``, results in order; ``workers`` processes, at most ``2 * workers`` chunks in flight
    (a slow writer never lets finished chunks pile up in memory)."""
    if workers <= 1 or len(chunks) <= 1:
        if init is not None:
            init(*initargs)
        yield from map(func, chunks)
        return
    import multiprocessing

    # fork: workers start in milliseconds and share the parent's imported modules instead of importing them again
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    # Set while forking: Hugging Face tokenizers checks it in a forked child (after BPE training used its thread
    # pool here, it would otherwise warn and turn its parallelism off there); this process keeps its own setting.
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        pool = multiprocessing.get_context(method).Pool(workers, initializer=_start_worker, initargs=(init, initargs))
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before
    with pool:
        pending: deque[Any] = deque()
        todo = iter(chunks)
        for chunk in todo:
            pending.append(pool.apply_async(func, (chunk,)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result = pending.popleft().get()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.apply_async(func, (nxt,)))
            yield result


# ------------------------------------------------------------------------------------------------ vocabulary
def _vocabulary(kind: str, chunks: Sequence[Chunk], files: Sequence[Path], workers: int, vocab_size: int,
                say: Callable[[str], None]) -> Any:
    from trainforge.data.tokenizers import BPETokenizer, ByteTokenizer, CharTokenizer, load_tokenizer

    if kind == "byte":
        return ByteTokenizer()
    if kind == "char":
        say("[prepare] vocabulary: collecting the characters (one pass over the text)")
        chars: set[str] = set()
        for found in _ordered(_chars, chunks, workers):
            chars |= found
        return CharTokenizer.train(sorted(chars))
    if kind == "bpe":
        say(f"[prepare] vocabulary: training a byte-level BPE of {vocab_size} tokens (one pass over the text)")
        pieces, _ = plan_chunks(files, 0.0, BPE_PIECE_BYTES)
        return BPETokenizer.train((_text(p) for p in pieces), vocab_size=vocab_size)
    return load_tokenizer(kind)


def _encoder_spec(tokenizer: Any, directory: Path) -> tuple[Any, ...]:
    from trainforge.data.tokenizers import BPETokenizer, ByteTokenizer, CharTokenizer

    if isinstance(tokenizer, ByteTokenizer):
        return ("byte",)
    if isinstance(tokenizer, CharTokenizer):
        return ("char", tokenizer.chars, len(tokenizer.specials), tokenizer.token_to_special("<unk>"))
    if isinstance(tokenizer, BPETokenizer):
        return ("bpe", tokenizer.tok.to_str())
    return ("saved", str(directory))


# ------------------------------------------------------------------------------------------------- prepare
def _check_args(tokenizer: str, val_fraction: float, workers: int, vocab_size: int, chunk_bytes: int) -> None:
    problems = []
    if tokenizer not in TOKENIZER_KINDS and not Path(tokenizer).is_dir():
        problems.append(f"--tokenizer {tokenizer!r} is neither one of {', '.join(TOKENIZER_KINDS)} nor a folder holding "
                        "a saved tokenizer")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        problems.append(f"--val-fraction must be in [0, 1), got {val_fraction!r}; e.g. 0.1 holds out the last 10% of "
                        "each file, 0 writes no val.bin")
    for name, value, low in (("--workers", workers, 1), ("--vocab-size", vocab_size, 260),
                             ("--chunk-bytes", chunk_bytes, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            problems.append(f"{name} must be an int >= {low}, got {value!r}")
    if problems:
        raise ConfigError(problems, what="trainforge prepare")


def _forget_previous(out: Path) -> None:
    """Make the folder stop looking finished before anything in it changes: meta.json goes first (durably)."""
    meta = out / META_NAME
    if meta.exists():
        meta.unlink()
        _fsync_dir(out)
    for pattern in (".train.bin.*.tmp", ".val.bin.*.tmp", f".{META_NAME}.*.tmp", ".train.bin.verified",
                    ".val.bin.verified"):
        for stale in out.glob(pattern):  # left by an interrupted prepare: nothing can use them
            stale.unlink(missing_ok=True)
    shutil.rmtree(out / "tokenizer", ignore_errors=True)


class _Sink:
    """Writes and hashes encoded chunks on a thread beside the encoding: both release the GIL on large buffers, so
    the three overlap instead of adding up. At most ``depth`` chunks wait (memory stays flat); a write error is
    raised in the caller at its next ``put`` or at the end."""

    def __init__(self, files: dict[str, IO[bytes]], digests: dict[str, Any], depth: int = 4) -> None:
        import queue
        import threading

        self.files, self.digests = files, digests
        self.queue: queue.Queue[tuple[str, np.ndarray[Any, Any]] | None] = queue.Queue(depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="trainforge-prepare-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain: the caller raises it
            part, ids = item
            try:
                data = np.ascontiguousarray(ids).data.cast("B")  # the array's bytes, no copy
                self.files[part].write(data)
                self.digests[part].update(data)
            except BaseException as exc:  # e.g. a full disk
                self.error = exc

    def put(self, part: str, ids: np.ndarray[Any, Any]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((part, ids))

    def __enter__(self) -> _Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error


def _temporaries(paths: Sequence[Path], write: Callable[[list[IO[bytes]]], None]) -> list[Path]:
    """``trainforge.atomic.write_temporary`` for several files written together: ``write(files)``; on any failure
    every temporary is removed."""
    made: list[Path] = []

    def nest(opened: list[IO[bytes]]) -> None:
        if len(opened) == len(paths):
            write(opened)
        else:
            made.append(write_temporary(paths[len(opened)], lambda f: nest([*opened, f])))

    try:
        nest([])
    except BaseException:
        for tmp in made:
            tmp.unlink(missing_ok=True)
        raise
    return made[::-1]  # the innermost finishes first


def prepare(inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], tokenizer: str = "byte",
            val_fraction: float = 0.1, workers: int = 1, vocab_size: int = 4096, chunk_bytes: int = CHUNK_BYTES,
            say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Tokenise ``inputs`` (files, or folders of ``.txt`` files) into ``out`` (see the module docstring).

    Args:
        tokenizer: ``"byte"``, ``"char"``, ``"bpe"`` (trained here on the text) or a saved tokenizer's folder.
        val_fraction: the last fraction of each file that goes to ``val.bin`` (0: no ``val.bin``).
        workers: encoding processes (the files are the same for any number).
        vocab_size: the BPE vocabulary size (``bpe`` only).
        chunk_bytes: the nominal chunk size read, encoded and written at a time.
        say: receives progress lines (the CLI prints them).

    Returns:
        The meta.json dict, plus ``"seconds"`` (``vocabulary``, ``encode``, ``total``) and ``"input_bytes"``.
    """
    _check_args(tokenizer, val_fraction, workers, vocab_size, chunk_bytes)
    say = say or (lambda line: None)
    started = time.perf_counter()
    files = input_files(inputs)
    out_dir = Path(out)
    chunks, sources = plan_chunks(files, float(val_fraction), chunk_bytes)
    total_bytes = sum(s["bytes"] for s in sources)
    if total_bytes == 0:
        raise DataError(f"the {len(files)} input file(s) are empty ({files[0]}{', ...' if len(files) > 1 else ''}). "
                        "Fix: pass files with text in them.")
    tok = _vocabulary(tokenizer, chunks, files, workers, vocab_size, say)
    vocabulary_done = time.perf_counter()
    from trainforge.data.tokenizers import save_tokenizer, tokenizer_vocab_size

    # Nothing is written before this point: bad input or text leaves an earlier, finished prepare usable.
    out_dir.mkdir(parents=True, exist_ok=True)
    _forget_previous(out_dir)
    save_tokenizer(tok, out_dir / "tokenizer")
    n_vocab = tokenizer_vocab_size(tok)
    if n_vocab is None:
        raise DataError(f"the tokenizer {type(tok).__qualname__} does not tell its vocabulary size. Fix: use a "
                        "trainforge or Hugging Face tokenizer.")
    dtype = dtype_for_vocab(n_vocab)
    parts = [p for p in PARTS if p == "train" or val_fraction > 0]
    counts = dict.fromkeys(parts, 0)
    digests = {p: hashlib.sha256() for p in parts}
    say(f"[prepare] encoding {total_bytes / 1e6:,.1f} MB in {len(chunks)} chunks with {workers} worker(s) -> "
        f"{dtype} ids (vocabulary {n_vocab})")

    def encode_into(handles: list[IO[bytes]]) -> None:
        spec = _encoder_spec(tok, out_dir / "tokenizer")
        # Byte ids are the file's bytes cast to the id type: cheaper in this process than sending each chunk to a
        # worker and its ids back (the files are the same either way).
        encoders = 1 if spec[0] == "byte" else workers
        with _Sink(dict(zip(parts, handles)), digests) as sink:
            for chunk, ids in zip(chunks, _ordered(_encode, chunks, encoders, _init_encoder, (spec, dtype))):
                sink.put(chunk.part, ids)
                counts[chunk.part] += len(ids)

    temporaries = _temporaries([out_dir / f"{p}.bin" for p in parts], encode_into)
    encoded = time.perf_counter()
    for part, tmp in zip(parts, temporaries):
        commit_temporary(tmp, out_dir / f"{part}.bin", mode=0o644)
    if "val" not in parts:
        (out_dir / "val.bin").unlink(missing_ok=True)  # an earlier prepare's
    itemsize = DTYPES[dtype].itemsize
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "dtype": dtype,
        "vocab_size": n_vocab,
        "tokenizer": {"kind": getattr(tok, "kind", None) or "saved", "dir": "tokenizer",
                      "pad_token_id": getattr(tok, "pad_token_id", None),
                      "eos_token_id": getattr(tok, "eos_token_id", None)},
        "train_tokens": counts["train"],
        "val_tokens": counts.get("val", 0),
        "files": {f"{p}.bin": {"tokens": counts[p], "bytes": counts[p] * itemsize, "sha256": digests[p].hexdigest()}
                  for p in parts},
        "val_fraction": float(val_fraction),
        "split": "the last val_fraction of each input file (from the first newline at or after that point) is val",
        "chunk_bytes": chunk_bytes,
        "sources": sources,
    }
    atomic_write_text(out_dir / META_NAME, json.dumps(meta, indent=1, ensure_ascii=False) + "\n", mode=0o644)
    done = time.perf_counter()
    say(f"[prepare] {out_dir}: train.bin {counts['train']:,} tokens, val.bin {counts.get('val', 0):,} tokens "
        f"({total_bytes / 1e6 / max(encoded - vocabulary_done, 1e-9):,.1f} MB/s encoding, {done - started:.1f} s in all)")
    return {**meta, "input_bytes": total_bytes,
            "seconds": {"vocabulary": vocabulary_done - started, "encode": encoded - vocabulary_done,
                        "total": done - started}}
