"""Each task type's object (tasks/types.py) behind TaskSpec: targets, counts, metric names, saved forms."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from trainforge.tasks import TASK_TYPES, TaskSpec
from trainforge.tasks.types import (
    TASK_KINDS,
    Classification,
    LanguageModeling,
    Seq2Seq,
    VisionClassification,
)

SPECS = {
    "language_modeling": lambda: TaskSpec.language_modeling(name="lm", vocab_size=7, max_seq_len=8),
    "classification": lambda: TaskSpec.classification(name="cls", num_classes=3, vocab_size=7),
    "seq2seq": lambda: TaskSpec.seq2seq(name="s2s", vocab_size=7, max_seq_len=8, pad_token_id=0),
    "vision_classification": lambda: TaskSpec.vision_classification(name="img", num_classes=4, image_size=2),
}


def test_every_task_type_has_one_object_and_the_spec_keeps_it() -> None:
    assert TASK_TYPES == tuple(TASK_KINDS) == tuple(SPECS)
    expected = {"language_modeling": LanguageModeling, "classification": Classification, "seq2seq": Seq2Seq,
                "vision_classification": VisionClassification}
    for name, make in SPECS.items():
        spec = make()
        assert type(spec.kind) is expected[name]
        assert spec.kind is TASK_KINDS[name]  # stateless singletons: one per type


def test_language_modeling_object() -> None:
    spec = SPECS["language_modeling"]()
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    assert spec.input_field == "input_ids"
    assert spec.targets({"input_ids": ids}) is ids  # a bare sequence is its own label, no copy
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    labels = spec.targets({"input_ids": ids, "attention_mask": mask})
    assert labels.tolist() == [[1, 2, 3, 4], [5, 6, -100, -100]]
    assert spec.loss_targets(labels).tolist() == [[2, 3, 4, -100], [6, -100, -100, -100]]
    assert spec.prepare_targets(labels).tolist() == [[2, 3, 4], [6, -100, -100]]
    assert spec.align_logits(torch.zeros(2, 4, 7)).shape == (2, 3, 7)
    assert int(spec.count_targets(labels)) == 4  # 3 + 1 positions predict a real token after the shift
    assert spec.is_token_task and spec.num_outputs == 7
    assert spec.metric_names == ["loss", "perplexity", "accuracy"]


def test_classification_object() -> None:
    spec = SPECS["classification"]()
    labels = torch.tensor([2, -100, 0])
    assert spec.targets({"input_ids": torch.zeros(3, 4, dtype=torch.long), "label": labels}) is labels
    assert spec.loss_targets(labels) is labels and spec.prepare_targets(labels) is labels
    assert int(spec.count_targets(labels)) == 2
    assert not spec.is_token_task and spec.num_outputs == 3
    assert spec.metric_names == ["loss", "accuracy"]
    with pytest.raises(Exception, match="return each example's class index under 'labels'"):
        spec.targets({"input_ids": torch.zeros(3, 4, dtype=torch.long)})


def test_seq2seq_object() -> None:
    spec = SPECS["seq2seq"]()
    assert spec.decoder_start_token_id == 0  # the T5/BART default, filled in by the type object
    labels = torch.tensor([[3, 4, -100], [5, -100, -100]])
    assert spec.loss_targets(labels) is labels  # no shift: the decoder input is already shifted
    assert int(spec.count_targets(labels)) == 3
    assert spec.is_token_task and spec.num_outputs == 7
    assert spec.metric_names == ["loss", "perplexity", "accuracy"]
    with pytest.raises(Exception, match="target token ids under 'labels'"):
        spec.targets({"input_ids": torch.zeros(2, 3, dtype=torch.long)})


def test_vision_object() -> None:
    spec = SPECS["vision_classification"]()
    assert spec.input_field == "pixel_values"
    labels = torch.tensor([3, 1])
    assert spec.targets({"pixel_values": torch.zeros(2, 3, 2, 2), "labels": labels}) is labels
    assert int(spec.count_targets(labels)) == 2
    assert spec.num_outputs == 4 and spec.metric_names == ["loss", "accuracy"]
    spec.validate_batch({"pixel_values": torch.zeros(2, 3, 2, 2), "labels": labels})
    with pytest.raises(Exception, match="return the images under 'pixel_values'"):
        spec.validate_batch({"input_ids": torch.zeros(2, 3, dtype=torch.long), "labels": labels})


@pytest.mark.parametrize("name", list(SPECS))
def test_count_targets_equals_the_loss_count(name: str) -> None:
    """The count the step computes without logits is the count the loss uses, for every type."""
    spec = SPECS[name]()
    torch.manual_seed(0)
    if spec.is_token_task:
        labels = torch.randint(0, 7, (3, 5))
        labels[0, 3:] = -100
        logits = torch.randn(3, 5, 7)
    else:
        labels = torch.tensor([1, -100, 2, 0])
        logits = torch.randn(4, spec.num_outputs)
    _, count = spec.loss_sum(logits, labels)
    assert int(spec.count_targets(labels)) == int(count)


@pytest.mark.parametrize("name", list(SPECS))
def test_kind_is_not_part_of_the_saved_forms(name: str) -> None:
    spec = SPECS[name]()
    assert "kind" not in spec.to_dict()
    assert TaskSpec.from_dict(spec.to_dict()) == spec
    restored = pickle.loads(pickle.dumps(spec))
    assert "kind" not in spec.__getstate__()  # the pickle holds the fields only; the object is looked up on load
    assert restored == spec and hash(restored) == hash(spec) and restored.kind is spec.kind
    assert copy.deepcopy(spec).kind is spec.kind
    assert "kind" not in repr(spec)


def test_a_pickle_from_before_the_type_objects_still_loads() -> None:
    """A spec pickled by an older trainforge has only the fields in its state: ``kind`` is looked up on load."""
    spec = SPECS["language_modeling"]()
    old = object.__new__(TaskSpec)
    old.__dict__.update({k: v for k, v in spec.__dict__.items() if k != "kind"})  # what an old pickle restores
    data = pickle.dumps(old)
    assert b"kind" not in data
    revived = pickle.loads(data)
    assert revived == spec and revived.kind is TASK_KINDS["language_modeling"]
    ids = torch.tensor([[1, 2, 3]])
    assert int(revived.count_targets(ids)) == 2
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        revived.nope  # noqa: B018  (a real missing attribute still raises)
