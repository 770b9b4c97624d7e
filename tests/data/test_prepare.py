"""``trainforge prepare``: text files → train.bin / val.bin / meta.json / tokenizer, streaming and in parallel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainforge.data.corpus import default_corpus_text
from trainforge.data.prepare import plan_chunks, prepare
from trainforge.data.tokenfile import TokenFile, file_sha256
from trainforge.data.tokenizers import load_tokenizer
from trainforge.errors import ConfigError, DataError

CHILD = Path(__file__).with_name("prepare_child.py")


def _ids(out: Path, part: str) -> np.ndarray:
    meta = json.loads((out / "meta.json").read_text())
    return np.fromfile(out / f"{part}.bin", dtype=meta["dtype"])


def _text(path: Path, n: int = 120_000) -> str:
    text = default_corpus_text(n) + "ünïcödé → 字 🙂\n"  # multi-byte characters too
    path.write_text(text, encoding="utf-8")
    return text


def test_byte_round_trip_split_and_meta(tmp_path):
    text = _text(tmp_path / "a.txt")
    out = tmp_path / "out"
    meta = prepare([tmp_path / "a.txt"], out, tokenizer="byte", val_fraction=0.1, workers=1, chunk_bytes=10_000)
    train, val = _ids(out, "train"), _ids(out, "val")
    tok = load_tokenizer(out / "tokenizer")
    assert tok.decode(np.concatenate([train, val]).tolist()) == text
    assert train.dtype == np.uint16 and meta["dtype"] == "uint16" and meta["vocab_size"] == 259
    # validation is the last ~10% of the file, starting at a line start
    n = len(text.encode())
    assert abs(len(val) - 0.1 * n) < 200 and tok.decode(train.tolist()).endswith("\n")
    saved = json.loads((out / "meta.json").read_text())
    assert saved["train_tokens"] == len(train) and saved["val_tokens"] == len(val)
    for part in ("train", "val"):
        entry = saved["files"][f"{part}.bin"]
        assert entry["sha256"] == file_sha256(out / f"{part}.bin")
        assert entry["bytes"] == (out / f"{part}.bin").stat().st_size == 2 * entry["tokens"]
    assert saved["tokenizer"]["kind"] == "byte" and (out / "tokenizer").is_dir()
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "tokenizer", "train.bin", "val.bin"]  # no temps


@pytest.mark.parametrize("kind", ["byte", "char", "bpe"])
def test_one_and_two_workers_write_identical_files(tmp_path, kind):
    _text(tmp_path / "a.txt", 60_000)
    outs = [tmp_path / f"w{w}" for w in (1, 2)]
    for w, out in zip((1, 2), outs):
        prepare([tmp_path / "a.txt"], out, tokenizer=kind, workers=w, chunk_bytes=8_000, vocab_size=400)
    for name in ("train.bin", "val.bin", "meta.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    text = (tmp_path / "a.txt").read_text(encoding="utf-8")
    tok = load_tokenizer(outs[1] / "tokenizer")
    assert tok.decode(np.concatenate([_ids(outs[1], "train"), _ids(outs[1], "val")]).tolist()) == text


def test_char_tokens_match_the_tokenizer_and_a_large_vocabulary_is_uint32(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("hello world\n" * 50 + "ünïcödé\n", encoding="utf-8")
    meta = prepare([small], tmp_path / "s", tokenizer="char", val_fraction=0.0)
    tok = load_tokenizer(tmp_path / "s" / "tokenizer")
    assert meta["dtype"] == "uint16" and not (tmp_path / "s" / "val.bin").exists()
    assert _ids(tmp_path / "s", "train").tolist() == tok.encode(small.read_text(encoding="utf-8"))
    # 70,000 distinct characters: the ids no longer fit in 16 bits
    wide = tmp_path / "wide.txt"
    chars = "".join(chr(0x10000 + i) for i in range(70_000))
    wide.write_text(chars + "\n" + chars[:100], encoding="utf-8")
    meta = prepare([wide], tmp_path / "w", tokenizer="char", val_fraction=0.0, workers=2, chunk_bytes=50_000)
    assert meta["dtype"] == "uint32" and meta["vocab_size"] == 70_000 + 1 + 4
    ids = _ids(tmp_path / "w", "train")
    assert ids.dtype == np.uint32 and ids.max() == meta["vocab_size"] - 1
    assert load_tokenizer(tmp_path / "w" / "tokenizer").decode(ids.tolist()) == wide.read_text(encoding="utf-8")


def test_a_folder_is_every_txt_under_it_sorted_each_split_on_its_own(tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    texts = {"b.txt": "bravo line\n" * 40, "a.txt": "alpha line\n" * 40, "sub/c.txt": "charlie\n" * 40}
    for name, text in texts.items():
        (folder / name).write_text(text)
    (folder / "notes.md").write_text("not text input\n")
    meta = prepare([folder], tmp_path / "out", val_fraction=0.25)
    assert [Path(s["path"]).relative_to(folder).as_posix() for s in meta["sources"]] == ["a.txt", "b.txt", "sub/c.txt"]
    tok = load_tokenizer(tmp_path / "out" / "tokenizer")
    train = tok.decode(_ids(tmp_path / "out", "train").tolist())
    val = tok.decode(_ids(tmp_path / "out", "val").tolist())
    order = ["a.txt", "b.txt", "sub/c.txt"]
    cuts = [s["val_from_byte"] for s in meta["sources"]]
    assert train == "".join(texts[n][:c] for n, c in zip(order, cuts))
    assert val == "".join(texts[n][c:] for n, c in zip(order, cuts))
    assert all(texts[n][c - 1] == "\n" for n, c in zip(order, cuts))  # cut at a line start


def test_chunks_cut_after_newlines_and_cover_every_byte(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(("x" * 37 + "\n").encode() * 500 + "é".encode() * 3000)  # a long last line: char boundaries
    chunks, sources = plan_chunks([path], 0.2, chunk_bytes=1000)
    size = path.stat().st_size
    assert [c.start for c in chunks[1:]] == [c.end for c in chunks[:-1]] and chunks[0].start == 0
    assert chunks[-1].end == size and sources[0]["val_from_byte"] in {c.start for c in chunks if c.part == "val"}
    data = path.read_bytes()
    for c in chunks:
        data[c.start:c.end].decode("utf-8")  # never splits a character
        assert c.start == 0 or data[c.start - 1:c.start] == b"\n" or c.start > 500 * 38


def test_bad_arguments_are_clear_errors(tmp_path):
    (tmp_path / "a.txt").write_text("abc\n")
    with pytest.raises(ConfigError) as err:
        prepare([tmp_path / "a.txt"], tmp_path / "o", tokenizer="wordpiece", val_fraction=1.5, workers=0)
    text = str(err.value)
    assert "wordpiece" in text and "--val-fraction" in text and "1.5" in text and "--workers" in text
    with pytest.raises(DataError, match="no such file or folder"):
        prepare([tmp_path / "missing.txt"], tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .txt files"):
        prepare([tmp_path / "empty"], tmp_path / "o")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt: not UTF-8 text at byte 3.*--tokenizer byte"):
        prepare([tmp_path / "latin1.txt"], tmp_path / "o", tokenizer="char")
    assert not (tmp_path / "o").exists()  # bad input: nothing written


def test_a_saved_tokenizer_folder_is_reused(tmp_path):
    _text(tmp_path / "a.txt", 30_000)
    prepare([tmp_path / "a.txt"], tmp_path / "first", tokenizer="bpe", vocab_size=300)
    meta = prepare([tmp_path / "a.txt"], tmp_path / "again", tokenizer=str(tmp_path / "first" / "tokenizer"))
    assert meta["tokenizer"]["kind"] == "bpe" and meta["vocab_size"] == 300
    assert (tmp_path / "first" / "train.bin").read_bytes() == (tmp_path / "again" / "train.bin").read_bytes()


def _run_child(tmp_path: Path, out: Path, kill_at: str) -> int:
    """Run prepare_child.py, SIGKILL it at its ``kill_at`` marker line; the child's exit code."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    args = json.dumps({"inputs": [str(tmp_path / "a.txt")], "out": str(out)})
    proc = subprocess.Popen([sys.executable, str(CHILD), args], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        for line in proc.stdout:
            seen.append(line.strip())
            if line.strip() == kill_at:
                proc.send_signal(signal.SIGKILL)
                break
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("kill_at", ["chunk 5", "fsync 1", "fsync 3"])
def test_an_interrupted_prepare_leaves_nothing_that_looks_finished(tmp_path, kill_at):
    """Killed while encoding, while committing train.bin, and while committing meta.json (its fsync, before the
    rename): no meta.json, TokenFile refuses the folder, and a rerun gives the files of an uninterrupted prepare."""
    _text(tmp_path / "a.txt", 60_000)
    out = tmp_path / "out"
    prepare([tmp_path / "a.txt"], out, chunk_bytes=5_000)  # an earlier, finished prepare into the same folder
    reference = {n: (out / n).read_bytes() for n in ("train.bin", "val.bin", "meta.json")}
    assert _run_child(tmp_path, out, kill_at) == -signal.SIGKILL
    assert not (out / "meta.json").exists()
    with pytest.raises(DataError, match="meta.json not found.*interrupted"):
        TokenFile(out / "train.bin", 16)
    visible = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert "meta.json" not in visible
    prepare([tmp_path / "a.txt"], out, chunk_bytes=5_000)
    assert {n: (out / n).read_bytes() for n in reference} == reference
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # the killed run's temporaries are gone
