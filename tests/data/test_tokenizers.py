"""Tokenizer round trips, special tokens, save/load, and the model-vs-tokenizer vocabulary check."""

from __future__ import annotations

import pytest
import torch

from trainforge.data.tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    check_vocab,
    encode_text,
    load_tokenizer,
    save_tokenizer,
)
from trainforge.errors import DataError

TEXT = "héllo wörld — trainforge 🚀\nsecond line\n" * 3


def test_byte_tokenizer_round_trip_and_specials():
    tok = ByteTokenizer()
    ids = tok.encode(TEXT, add_bos=True, add_eos=True)
    assert ids[0] == tok.bos_token_id == 257 and ids[-1] == tok.eos_token_id == 258 and tok.pad_token_id == 256
    assert tok.decode(ids) == TEXT and len(tok) == tok.vocab_size == 259
    assert tok.decode(ids, skip_special_tokens=False).startswith("<bos>")
    plain = ByteTokenizer(specials=())
    assert plain.vocab_size == 256 and plain.pad_token_id is None


def test_char_tokenizer_round_trip_unknowns_and_specials():
    tok = CharTokenizer.train(TEXT)
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok.encode("Z") == [3]  # <unk>
    with pytest.raises(DataError, match="outside this char tokenizer's vocabulary"):
        tok.decode([tok.vocab_size])


def test_bpe_trained_on_user_text_round_trips():
    pytest.importorskip("tokenizers")
    tok = BPETokenizer.train([TEXT] * 5, vocab_size=300, min_frequency=1)
    ids = tok.encode(TEXT)
    assert tok.decode(ids) == TEXT and len(ids) < len(TEXT.encode())  # merges happened
    assert tok.pad_token_id is not None and tok.eos_token_id is not None
    assert tok.decode(tok.encode("ab", add_eos=True)) == "ab"


@pytest.mark.parametrize("make", [ByteTokenizer, lambda: CharTokenizer.train(TEXT),
                                  lambda: BPETokenizer.train(TEXT, vocab_size=280, min_frequency=1)],
                         ids=["byte", "char", "bpe"])
def test_save_and_load_give_the_same_ids(make, tmp_path):
    tok = make()
    save_tokenizer(tok, tmp_path / "run" / "tokenizer")
    again = load_tokenizer(tmp_path / "run" / "tokenizer")
    assert type(again) is type(tok) and again.encode(TEXT) == tok.encode(TEXT)
    assert again.vocab_size == tok.vocab_size and again.eos_token_id == tok.eos_token_id


def test_hf_tokenizers_object_is_accepted():
    tok = BPETokenizer.train(TEXT, vocab_size=280, min_frequency=1)
    assert encode_text(tok.tok, "hello") == tok.encode("hello")


def test_vocab_check_before_step_0():
    from tests.helpers import tiny_gpt

    model, _ = tiny_gpt(vocab=256)
    check_vocab(model, ByteTokenizer(specials=()))
    with pytest.raises(DataError, match=r"tokenizer produces ids up to 258 \(259 tokens\) but the model's token "
                                        r"embedding has only 256 entries.*vocab_size=259"):
        check_vocab(model, ByteTokenizer())
    ids = torch.tensor([[1, 2], [300, 4]])
    with pytest.raises(DataError, match=r"train_data contains token id 300 .*\(ids must be < 256\)"):
        check_vocab(model, token_ids=ids, where="train_data")
