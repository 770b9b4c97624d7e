"""Readers for local files, the CLI data spec, and bad input naming the file, row and field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trainforge.data.readers import (
    build_data_from_spec,
    read_csv_classification,
    read_image_arrays,
    read_image_folder,
    read_jsonl_seq2seq,
    read_text_blocks,
    task_for_data,
)
from trainforge.data.streaming import ResumableIterable, stream_text_blocks
from trainforge.data.tokenizers import ByteTokenizer
from trainforge.errors import ConfigError, DataError

BYTES = ByteTokenizer(specials=())
TOK = ByteTokenizer()


def test_text_blocks_keep_every_token(tmp_path):
    (tmp_path / "a.txt").write_text("abcdefghij")
    blocks = read_text_blocks(tmp_path / "a.txt", BYTES, block_size=4, add_eos=False)
    assert blocks.tolist() == [list(b"abcd"), list(b"efgh"), list(b"ghij")]  # remainder: last 4 tokens
    assert read_text_blocks(tmp_path / "a.txt", BYTES, 4, add_eos=False, remainder="drop").shape == (2, 4)
    (tmp_path / "b.txt").write_text("xy")
    both = read_text_blocks(tmp_path, TOK, block_size=4)  # a folder: sorted files, eos between them
    assert both.reshape(-1)[:11].tolist() == [*b"abcdefghij", TOK.eos_token_id]


def test_text_bad_inputs(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match=r"empty.txt: the file is empty"):
        read_text_blocks(tmp_path / "empty.txt", BYTES, 4)
    (tmp_path / "one.txt").write_text("a")
    with pytest.raises(DataError, match=r"one.txt: 1 token\(s\), too short to train a language model"):
        read_text_blocks(tmp_path / "one.txt", BYTES, 4, add_eos=False)
    (tmp_path / "short.txt").write_text("abc")
    with pytest.raises(DataError, match=r"short.txt: 3 tokens, fewer than one block of block_size=8"):
        read_text_blocks(tmp_path / "short.txt", BYTES, 8, add_eos=False)
    with pytest.raises(DataError, match="no such file"):
        read_text_blocks(tmp_path / "missing.txt", BYTES, 8)


def test_csv_classification_with_label_map(tmp_path):
    (tmp_path / "d.csv").write_text('text,label\nhi there,pos\n"a, b",neg\nok,pos\n')
    data = read_csv_classification(tmp_path / "d.csv", tokenizer=BYTES)
    assert data.label_map == {"neg": 0, "pos": 1} and data.num_classes == 2
    assert data[1] == {"input_ids": list(b"a, b"), "labels": 0}
    numeric = tmp_path / "n.csv"
    numeric.write_text("text,label\na,1\nb,0\n")
    assert read_csv_classification(numeric, tokenizer=BYTES).label_map == {"0": 0, "1": 1}


def test_csv_bad_inputs(tmp_path):
    (tmp_path / "cols.csv").write_text("txt,label\nhi,pos\n")
    with pytest.raises(DataError, match=r"cols.csv: missing column\(s\) \['text'\]; the header has \['txt', 'label'\] "
                                        r"\(for 'text' did you mean 'txt'\?\)"):
        read_csv_classification(tmp_path / "cols.csv", tokenizer=BYTES)
    (tmp_path / "lab.csv").write_text("text,label\nhi,pos\nyo,neutral\n")
    with pytest.raises(DataError, match=r"lab.csv, row 3: label='neutral' is not in the label map \['neg', 'pos'\]"):
        read_csv_classification(tmp_path / "lab.csv", tokenizer=BYTES, label_map={"neg": 0, "pos": 1})
    (tmp_path / "hdr.csv").write_text("text,label\n")
    with pytest.raises(DataError, match="hdr.csv: the header is there but no data rows"):
        read_csv_classification(tmp_path / "hdr.csv", tokenizer=BYTES)
    (tmp_path / "blank.csv").write_text("text,label\n,pos\n")
    with pytest.raises(DataError, match=r"blank.csv, row 2: field 'text' is empty"):
        read_csv_classification(tmp_path / "blank.csv", tokenizer=BYTES)
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="e.csv: the file is empty"):
        read_csv_classification(tmp_path / "e.csv", tokenizer=BYTES)


def test_jsonl_seq2seq(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"source": "ab", "target": "c"}) + "\n\n" + json.dumps({"source": "d", "target": "ef"}))
    data = read_jsonl_seq2seq(path, TOK)
    assert data[0] == {"input_ids": [97, 98], "labels": [99, TOK.eos_token_id]} and len(data) == 2
    path.write_text('{"source": "a", "target": "b"}\n{"source": "a"}\n')
    with pytest.raises(DataError, match=r"p.jsonl, line 2: missing field 'target' \(fields: \['source'\]\)"):
        read_jsonl_seq2seq(path, TOK)
    path.write_text('{"source": "a", "target": "b"}\nnot json\n')
    with pytest.raises(DataError, match="p.jsonl, line 2: not valid JSON"):
        read_jsonl_seq2seq(path, TOK)


def test_image_arrays_and_npz(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    data = read_image_arrays(imgs, [0, 1, 0, 1, 1])
    assert data[0]["pixel_values"].shape == (3, 8, 8) and data[0]["pixel_values"].max() <= 1.0
    np.savez(tmp_path / "d.npz", images=imgs, labels=np.array([0, 1, 0, 1, 1]))
    assert torch.equal(read_image_arrays(tmp_path / "d.npz")[3]["pixel_values"], data[3]["pixel_values"])
    with pytest.raises(DataError, match="5 images but 2 labels"):
        read_image_arrays(imgs, [0, 1])


def _write_images(folder, n=4):
    from PIL import Image

    folder.mkdir()
    lines = ["filename,label"]
    for i in range(n):
        Image.fromarray(np.full((6, 6, 3), i * 40, dtype=np.uint8)).save(folder / f"{i}.png")
        lines.append(f"{i}.png,{'cat' if i % 2 else 'dog'}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")


def test_image_folder_with_labels_file(tmp_path):
    _write_images(tmp_path / "imgs")
    data = read_image_folder(tmp_path / "imgs")
    assert data.label_map == {"cat": 0, "dog": 1} and len(data) == 4
    assert data[1]["labels"] == 0 and torch.allclose(data[1]["pixel_values"], torch.full((3, 6, 6), 40 / 255))
    assert read_image_folder(tmp_path / "imgs", image_size=4)[0]["pixel_values"].shape == (3, 4, 4)
    with (tmp_path / "imgs" / "labels.csv").open("a") as f:
        f.write("9.png,cat\n")
    with pytest.raises(DataError, match=r"labels.csv, row 6: image '9.png' not found"):
        read_image_folder(tmp_path / "imgs")


def test_build_data_from_spec_for_each_format(tmp_path):
    from trainforge.tasks import TaskSpec

    (tmp_path / "t.txt").write_text("some text to model " * 20)
    task = TaskSpec.language_modeling(name="lm", vocab_size=259, max_seq_len=16)
    train, val, tok = build_data_from_spec({"train": str(tmp_path / "t.txt"), "val": str(tmp_path / "t.txt")}, task)
    assert train.shape[1] == 16 and val is not None and tok.vocab_size == 259
    (tmp_path / "c.csv").write_text("text,label\nhi,a\nyo,b\n")
    train, _, tok = build_data_from_spec({"train": str(tmp_path / "c.csv"), "tokenizer": "char"})
    assert train.label_map == {"a": 0, "b": 1}
    cls = task_for_data({"train": str(tmp_path / "c.csv")}, train, tok, None)
    assert cls.num_classes == 2 and cls.vocab_size == tok.vocab_size
    _write_images(tmp_path / "imgs")
    train, _, tok = build_data_from_spec({"train": str(tmp_path / "imgs"), "format": "images"})
    assert tok is None and task_for_data({"train": str(tmp_path / "imgs"), "format": "images"}, train,
                                         None).image_size == 6
    with pytest.raises(ConfigError, match=r"data.fromat is not a known key \(did you mean 'format'\?\)"):
        build_data_from_spec({"train": "x", "fromat": "csv"})


def test_streaming_text_file_resumes_by_seeking(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(bytes(range(97, 123)) * 4)  # 104 bytes
    stream = stream_text_blocks(str(path), 8)
    full = [s["input_ids"].tolist() for s in ResumableIterable(stream)]
    assert len(full) == 13 and sum(full, []) == list(path.read_bytes())
    resumed = ResumableIterable(stream)
    resumed.set_start(5)
    assert [s["input_ids"].tolist() for s in resumed] == full[5:]
    (tmp_path / "e.txt").write_text("")
    with pytest.raises(DataError, match="e.txt: the file is empty"):
        stream_text_blocks(str(tmp_path / "e.txt"), 8)
