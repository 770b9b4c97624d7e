"""The collator registry and the built-in collators' exact outputs."""

from __future__ import annotations

import pytest
import torch

from trainforge.data.collators import collator_names, get_collator, register_collator, unregister_collator
from trainforge.errors import ConfigError, DataError
from trainforge.tasks import TaskSpec

LM = TaskSpec.language_modeling(name="lm", vocab_size=16, max_seq_len=8, pad_token_id=0)


def test_causal_lm_pads_masks_and_ignores_padding():
    batch = get_collator(LM)([{"input_ids": [5, 6, 7]}, {"input_ids": [8, 9]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7], [8, 9, -100]]
    assert batch["input_ids"].dtype == torch.long


def test_causal_lm_accepts_bare_sequences_and_multiple_of():
    batch = get_collator(LM, "causal_lm", pad_to_multiple_of=4)([torch.tensor([1, 2, 3])])
    assert batch["input_ids"].tolist() == [[1, 2, 3, 0]]
    assert batch["labels"].tolist() == [[1, 2, 3, -100]]


def test_causal_lm_mixed_lengths_without_pad_id_is_a_clear_error():
    task = TaskSpec.language_modeling(name="lm", vocab_size=16, max_seq_len=8)
    with pytest.raises(DataError, match=r"'input_ids' has sequences of different lengths \(\[2, 3\]\).*pad_token_id"):
        get_collator(task)([[1, 2, 3], [4, 5]])
    # equal lengths need no pad id
    assert get_collator(task)([[1, 2], [4, 5]])["input_ids"].shape == (2, 2)


def test_packing_keeps_every_token_and_pads_only_the_last_row():
    task = TaskSpec.language_modeling(name="lm", vocab_size=16, max_seq_len=4, pad_token_id=0, eos_token_id=1)
    batch = get_collator(task, "causal_lm", pack=True)([[5, 6, 7], [8, 9]])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 1], [8, 9, 1, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7, 1], [8, 9, 1, -100]]
    with pytest.raises(ConfigError, match="pad_token_id or eos_token_id"):
        get_collator(TaskSpec.language_modeling(name="lm", vocab_size=16, max_seq_len=4), "packed_lm")


def test_classification_collator():
    task = TaskSpec.classification(name="c", num_classes=3, vocab_size=16, pad_token_id=0)
    batch = get_collator(task)([{"input_ids": [3, 4], "labels": 2}, {"input_ids": [5], "labels": 0}])
    assert batch["input_ids"].tolist() == [[3, 4], [5, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1], [1, 0]]
    assert batch["labels"].tolist() == [2, 0] and batch["labels"].dtype == torch.long
    feats = get_collator(TaskSpec.classification(name="c", num_classes=2))([(torch.ones(3), 1), (torch.zeros(3), 0)])
    assert feats["input_ids"].shape == (2, 3) and feats["labels"].tolist() == [1, 0]


def test_seq2seq_collator_shifts_labels_into_decoder_inputs():
    task = TaskSpec.seq2seq(name="s", vocab_size=16, max_seq_len=8, pad_token_id=0, decoder_start_token_id=2)
    batch = get_collator(task)([{"input_ids": [4, 5, 6], "labels": [7, 8, 1]}, {"input_ids": [9], "labels": [10, 1]}])
    assert batch["input_ids"].tolist() == [[4, 5, 6], [9, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[7, 8, 1], [10, 1, -100]]
    assert batch["decoder_input_ids"].tolist() == [[2, 7, 8], [2, 10, 1]]


def test_vision_collator_scales_uint8_and_moves_channels_first():
    task = TaskSpec.vision_classification(name="v", num_classes=2, image_size=2, num_channels=3)
    img = torch.full((2, 2, 3), 255, dtype=torch.uint8)  # channels-last
    batch = get_collator(task)([{"pixel_values": img, "labels": 1}, (torch.zeros(3, 2, 2), 0)])
    assert batch["pixel_values"].shape == (2, 3, 2, 2) and batch["pixel_values"].dtype == torch.float32
    assert batch["pixel_values"][0].eq(1.0).all() and batch["pixel_values"][1].eq(0.0).all()
    assert batch["labels"].tolist() == [1, 0]


def test_user_collators_register_by_name():
    @register_collator("test-const")
    def make(task, value=7):
        return lambda samples: {"input_ids": torch.full((len(samples), 2), value)}

    try:
        assert "test-const" in collator_names()
        assert get_collator(LM, "test-const", value=3)([1, 2])["input_ids"].tolist() == [[3, 3], [3, 3]]
        with pytest.raises(ConfigError, match="already registered"):
            register_collator("test-const", lambda task: None)
    finally:
        unregister_collator("test-const")
    with pytest.raises(ConfigError, match=r"'casual_lm' is not registered \(did you mean 'causal_lm'\?\)"):
        get_collator(LM, "casual_lm")
    fn = lambda samples: {"x": torch.zeros(1)}  # noqa: E731 - a plain collate function is used as given
    assert get_collator(LM, fn) is fn


def test_collators_accept_batches_a_dataset_stacked_itself():
    """``PairSamples.__getitems__`` hands the collator one stacked dict instead of a list of samples."""
    stacked = {"input_ids": torch.tensor([[1, 2, 3], [4, 5, 6]])}
    batch = get_collator(LM)(stacked)
    assert batch["labels"].tolist() == [[1, 2, 3], [4, 5, 6]] and batch["attention_mask"].eq(1).all()
    cls = TaskSpec.classification(name="c", num_classes=3, vocab_size=16, pad_token_id=0)
    batch = get_collator(cls)({"input_ids": torch.tensor([[1, 2], [3, 4]]), "labels": torch.tensor([2, 0])})
    assert batch["labels"].tolist() == [2, 0] and batch["input_ids"].tolist() == [[1, 2], [3, 4]]


def test_tensor_batches_in_order_are_copies_equal_to_gathered_ones():
    """In-order indices take a slice instead of an index_select; the batch is still a copy of the rows."""
    from trainforge.data.inputs import PairSamples

    task = TaskSpec.classification(name="c", num_classes=3)
    inputs, labels = torch.arange(40).reshape(10, 4), torch.arange(10) % 3
    samples = PairSamples(inputs, labels, task)
    for indices in ([2, 3, 4], [5, 3, 4], [7], [8, 9]):
        batch = samples.__getitems__(indices)
        assert torch.equal(batch["input_ids"], inputs[indices]) and torch.equal(batch["labels"], labels[indices])
    batch = samples.__getitems__([0, 1])
    batch["input_ids"].zero_()  # a model that edits its inputs in place must not edit the dataset
    batch["labels"].fill_(2)
    assert torch.equal(inputs[:2], torch.arange(8).reshape(2, 4)) and labels[:2].tolist() == [0, 1]
