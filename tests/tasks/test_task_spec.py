"""TaskSpec: constructors, validation messages, serialisation, targets and the pre-step-0 checks."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from trainforge.errors import ConfigError, DataError, ModelError
from trainforge.tasks import TASK_TYPES, TaskSpec


def lm(**extra: object) -> TaskSpec:
    return TaskSpec.language_modeling(name="lm", vocab_size=10, max_seq_len=8, **extra)  # type: ignore[arg-type]


def cls(**extra: object) -> TaskSpec:
    return TaskSpec.classification(name="cls", num_classes=3, **extra)  # type: ignore[arg-type]


ALL_SPECS = [
    TaskSpec.language_modeling(name="gpt-training", vocab_size=50257, max_seq_len=128),
    TaskSpec.classification(name="sentiment", num_classes=2, vocab_size=30522, max_seq_len=256, pad_token_id=0),
    TaskSpec.seq2seq(name="translate", vocab_size=32128, max_seq_len=512),
    TaskSpec.vision_classification(name="cifar10", num_classes=10, label_smoothing=0.1),
]


# ---------------------------------------------------------------------- constructors and properties


def test_quick_reference_constructor_works_as_written() -> None:
    task_spec = TaskSpec.language_modeling(name="gpt-training", vocab_size=50257, max_seq_len=128)
    assert task_spec.task_type == "language_modeling"
    assert (task_spec.vocab_size, task_spec.max_seq_len, task_spec.pad_token_id) == (50257, 128, None)
    assert task_spec.input_field == "input_ids" and task_spec.label_field == "labels"
    assert task_spec.ignore_index == -100 and task_spec.label_smoothing == 0.0
    assert task_spec.is_token_task
    assert task_spec.metric_names == ["loss", "perplexity", "accuracy"]


def test_constructor_defaults_per_task() -> None:
    c, s, v = ALL_SPECS[1], ALL_SPECS[2], ALL_SPECS[3]
    assert c.input_field == "input_ids" and not c.is_token_task and c.metric_names == ["loss", "accuracy"]
    assert s.pad_token_id == 0 and s.decoder_start_token_id == 0 and s.is_token_task
    assert s.metric_names == ["loss", "perplexity", "accuracy"]
    assert TaskSpec.seq2seq(name="s", vocab_size=9, max_seq_len=4, decoder_start_token_id=2).decoder_start_token_id == 2
    assert v.input_field == "pixel_values" and (v.image_size, v.num_channels) == (32, 3)
    assert v.metric_names == ["loss", "accuracy"] and not v.is_token_task
    assert v.num_outputs == 10 and ALL_SPECS[0].num_outputs == 50257


def test_spec_is_frozen_and_extra_fields_apply() -> None:
    task = lm(ignore_index=-1, label_field="target", bos_token_id=1, eos_token_id=2)
    assert (task.ignore_index, task.label_field, task.bos_token_id, task.eos_token_id) == (-1, "target", 1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.vocab_size = 3  # type: ignore[misc]


@pytest.mark.parametrize("spec", ALL_SPECS, ids=[s.task_type for s in ALL_SPECS])
def test_to_dict_from_dict_round_trip_is_json_safe(spec: TaskSpec) -> None:
    data = json.loads(json.dumps(spec.to_dict()))
    assert TaskSpec.from_dict(data) == spec


def test_numpy_integers_are_normalised_to_int() -> None:
    task = TaskSpec.language_modeling(name="lm", vocab_size=np.int64(100), max_seq_len=np.int32(16))
    assert type(task.vocab_size) is int and type(task.max_seq_len) is int
    json.dumps(task.to_dict())


# ---------------------------------------------------------------------- construction errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocab_size": 1}, r"vocab_size must be an int >= 2, got 1; set it to the size of the tokenizer's vocabulary"),
        ({"vocab_size": True}, r"vocab_size must be an int >= 2, got True"),
        ({"vocab_size": 10.0}, r"vocab_size must be an int >= 2, got 10\.0"),
        ({"max_seq_len": 1}, r"max_seq_len must be an int >= 2, got 1; a language model needs at least 2 tokens"),
        ({"pad_token_id": 10}, r"pad_token_id must be a token id in \[0, vocab_size=10\), got 10"),
        ({"pad_token_id": -1}, r"pad_token_id must be a token id in \[0, vocab_size=10\), got -1"),
        ({"eos_token_id": 99}, r"eos_token_id must be a token id in \[0, vocab_size=10\), got 99"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be a float in \[0, 1\), got 1\.0; use 0\.0 to turn it off"),
        ({"label_smoothing": -0.1}, r"label_smoothing must be a float in \[0, 1\), got -0\.1"),
        ({"name": ""}, r"name must be a non-empty string, got ''"),
        ({"name": None}, r"name must be a non-empty string, got None"),
        ({"ignore_index": "x"}, r"ignore_index must be an int, got 'x'; use -100"),
        ({"label_field": ""}, r"label_field must be the name of a batch key \(a non-empty string\), got ''"),
        ({"num_classes": 3}, r"num_classes is not used by task_type 'language_modeling', got 3; remove it"),
        (
            {"lable_smoothing": 0.1},
            r"unknown argument 'lable_smoothing' for TaskSpec\.language_modeling \(did you mean 'label_smoothing'\?\); "
            r"valid extra arguments are: ignore_index, label_smoothing",
        ),
        ({"task_type": "seq2seq"}, r"task_type cannot be passed to TaskSpec\.language_modeling, got 'seq2seq'"),
    ],
)
def test_language_modeling_validation_messages(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"name": "lm", "vocab_size": 10, "max_seq_len": 8}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match) as info:
        TaskSpec.language_modeling(**args)  # type: ignore[arg-type]
    assert str(info.value).startswith("TaskSpec has 1 problem:")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError, match=r"TaskSpec has 4 problems:") as info:
        TaskSpec.language_modeling(name="", vocab_size=0, max_seq_len=0, label_smoth=0.1)
    problems = info.value.problems
    assert problems[0].startswith("unknown argument 'label_smoth'")
    assert any(p.startswith("name must") for p in problems)
    assert any(p.startswith("vocab_size must") for p in problems)
    assert any(p.startswith("max_seq_len must") for p in problems)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: TaskSpec.classification(name="c", num_classes=1),
            r"num_classes must be an int >= 2, got 1; set it to the number of labels",
        ),
        (
            lambda: TaskSpec.classification(name="c", num_classes=None),
            r"num_classes is required for classification, got None",
        ),  # type: ignore[arg-type]
        (
            lambda: TaskSpec.classification(name="c", num_classes=2, vocab_size=5, pad_token_id=7),
            r"pad_token_id must be a token id in \[0, vocab_size=5\), got 7",
        ),
        (
            lambda: TaskSpec.classification(name="c", num_classes=2, image_size=32),
            r"image_size is not used by task_type 'classification'",
        ),
        (lambda: TaskSpec.vision_classification(name="v", num_classes=0), r"num_classes must be an int >= 2, got 0"),
        (
            lambda: TaskSpec.vision_classification(name="v", num_classes=2, num_channels=0),
            r"num_channels must be an int >= 1, got 0; use 3 for RGB",
        ),
        (
            lambda: TaskSpec.vision_classification(name="v", num_classes=2, image_size=-4),
            r"image_size must be an int >= 1, got -4",
        ),
        (
            lambda: TaskSpec.vision_classification(name="v", num_classes=2, vocab_size=5),
            r"vocab_size is not used by task_type 'vision_classification'",
        ),
        (
            lambda: TaskSpec.seq2seq(name="s", vocab_size=None, max_seq_len=4),
            r"vocab_size is required for seq2seq, got None",
        ),  # type: ignore[arg-type]
        (
            lambda: TaskSpec.seq2seq(name="s", vocab_size=8, max_seq_len=4, pad_token_id=8),
            r"pad_token_id must be a token id in \[0, vocab_size=8\), got 8",
        ),
        (
            lambda: TaskSpec.seq2seq(name="s", vocab_size=8, max_seq_len=4, decoder_start_token_id=9),
            r"decoder_start_token_id must be a token id in \[0, vocab_size=8\), got 9",
        ),
        (
            lambda: TaskSpec(name="t", task_type="langauge_modeling"),
            r"task_type 'langauge_modeling' is not known \(did you mean 'language_modeling'\?\); use one of language_modeling, classification, seq2seq, vision_classification",
        ),
        (
            lambda: TaskSpec(name="t", task_type="language_modeling", max_seq_len=4),
            r"vocab_size is required for language_modeling, got None",
        ),
    ],
)
def test_other_validation_messages(build: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()  # type: ignore[operator]


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        TaskSpec.language_modeling(name="lm", vocab_size=1, max_seq_len=8)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            {"name": "x", "task_type": "classification", "num_classes": 2, "num_clases": 2},
            r"unknown key 'num_clases' \(did you mean 'num_classes'\?\)",
        ),
        (
            {"task_type": "classification", "num_classes": 2},
            r"missing key 'name'; TaskSpec\.from_dict needs at least 'name' and 'task_type'",
        ),
        ({"name": "x", "task_type": "classification", "num_classes": 1}, r"num_classes must be an int >= 2, got 1"),
        (["name"], r"expected a dict of TaskSpec fields, got list"),
    ],
)
def test_from_dict_errors(data: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TaskSpec.from_dict(data)  # type: ignore[arg-type]


def test_task_types_constant() -> None:
    assert TASK_TYPES == ("language_modeling", "classification", "seq2seq", "vision_classification")


# ---------------------------------------------------------------------- targets()


def test_targets_per_task() -> None:
    labels = torch.tensor([1, 0])
    assert cls().targets({"input_ids": torch.zeros(2, 3, dtype=torch.long), "labels": labels}) is labels
    assert cls(label_field="y").targets({"y": labels}) is labels
    s2s = TaskSpec.seq2seq(name="s", vocab_size=5, max_seq_len=4)
    seq_labels = torch.tensor([[1, 2, -100]])
    assert s2s.targets({"input_ids": torch.tensor([[1, 2]]), "labels": seq_labels}) is seq_labels


@pytest.mark.parametrize(
    ("task", "batch", "match"),
    [
        (
            cls(),
            {"input_ids": torch.zeros(2, 3)},
            r"batch has no 'labels' field \(keys present: \['input_ids'\]\); return each example's class index under 'labels'.*set TaskSpec label_field",
        ),
        (
            TaskSpec.seq2seq(name="s", vocab_size=5, max_seq_len=4),
            {"input_ids": torch.zeros(2, 3), "decoder_input_ids": torch.zeros(2, 3)},
            r"batch has no 'labels' field \(keys present: \['input_ids', 'decoder_input_ids'\]\); return the target token ids",
        ),
        (
            lm(),
            {"tokens": torch.zeros(2, 3)},
            r"batch has no 'input_ids' field \(keys present: \['tokens'\]\).*set TaskSpec input_field",
        ),
        (lm(), [torch.zeros(2, 3)], r"expected the batch to be a dict of tensors, got list"),
    ],
)
def test_targets_missing_field_errors(task: TaskSpec, batch: object, match: str) -> None:
    with pytest.raises(DataError, match=match):
        task.targets(batch)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- validate_logits()


@pytest.mark.parametrize(
    ("task", "logits", "match"),
    [
        (
            lm(),
            torch.zeros(2, 4, 12),
            r"logits' last dimension is 12 \(shape \(2, 4, 12\)\) but TaskSpec vocab_size is 10 "
            r"\(expected \[batch, seq_len, 10\]\); set TaskSpec vocab_size to match the model's output layer",
        ),
        (
            cls(),
            torch.zeros(2, 5),
            r"logits' last dimension is 5 \(shape \(2, 5\)\) but TaskSpec num_classes is 3 \(expected \[batch, 3\]\); "
            r"set TaskSpec num_classes to match the model's output layer",
        ),
        (
            cls(),
            torch.zeros(2, 4, 3),
            r"classification expects logits of shape \[batch, num_classes\], got shape \(2, 4, 3\) \(rank 3\); "
            r"a classification model must pool over the sequence",
        ),
        (
            lm(),
            torch.zeros(2, 10),
            r"language_modeling expects logits of shape \[batch, seq_len, vocab_size\], got shape \(2, 10\) \(rank 2\); "
            r"a token task needs one score vector per position",
        ),
        (
            lm(),
            torch.zeros(10),
            r"got shape \(10,\) \(rank 1\); reshape the model's output to \[batch, seq_len, vocab_size\]",
        ),
        (
            lm(),
            torch.zeros(2, 4, 10, dtype=torch.long),
            r"expected float logits, got dtype torch\.int64 with shape \(2, 4, 10\)",
        ),
        (
            lm(),
            (torch.zeros(2, 4, 10),),
            r"expected the model to return logits as a tensor of shape \[batch, seq_len, vocab_size\], got tuple",
        ),
    ],
)
def test_validate_logits_errors(task: TaskSpec, logits: object, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        task.validate_logits(logits)


def test_validate_logits_against_labels() -> None:
    lm().validate_logits(torch.zeros(2, 4, 10), torch.zeros(2, 4, dtype=torch.long))
    cls().validate_logits(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(
        ModelError,
        match=r"logits of shape \(2, 3, 10\) do not line up with labels of shape \(2, 4\): expected logits of shape \(2, 4, 10\)",
    ):
        lm().validate_logits(torch.zeros(2, 3, 10), torch.zeros(2, 4, dtype=torch.long))


# ---------------------------------------------------------------------- validate_batch()


def test_valid_batches_pass() -> None:
    lm(pad_token_id=0).validate_batch(
        {"input_ids": torch.tensor([[1, 9, 0]]), "attention_mask": torch.tensor([[1, 1, 0]])}
    )
    lm().validate_batch({"input_ids": torch.tensor([[1, 9]]), "labels": torch.tensor([[-100, 9]])})
    cls(vocab_size=10).validate_batch({"input_ids": torch.tensor([[1, 9], [0, 2]]), "labels": torch.tensor([2, -100])})
    # Classification without a vocabulary may take float features under another input field.
    cls(input_field="features").validate_batch({"features": torch.randn(2, 5), "labels": torch.tensor([0, 2])})
    TaskSpec.seq2seq(name="s", vocab_size=10, max_seq_len=4).validate_batch(
        {"input_ids": torch.tensor([[1, 2, 3]]), "labels": torch.tensor([[4, -100]])}
    )
    TaskSpec.vision_classification(name="v", num_classes=2, image_size=8).validate_batch(
        {"pixel_values": torch.zeros(2, 3, 8, 8), "labels": torch.tensor([0, 1])}
    )


S2S = TaskSpec.seq2seq(name="s", vocab_size=10, max_seq_len=4)
VISION = TaskSpec.vision_classification(name="v", num_classes=2, image_size=8)


@pytest.mark.parametrize(
    ("task", "batch", "match"),
    [
        (
            lm(),
            {"input_ids": torch.tensor([[1, 2], [3, 10]])},
            r"batch\['input_ids'\] contains token id 10, but vocab_size is 10 \(ids must be in \[0, 10\)\); "
            r"set TaskSpec vocab_size \(and the model's embedding size\) to at least 11",
        ),
        (
            lm(),
            {"input_ids": torch.tensor([[1, -100]])},
            r"contains token id -100, but token ids must be >= 0; .*replace them with pad_token_id",
        ),
        (
            lm(),
            {"input_ids": torch.tensor([[1]])},
            r"has sequence length 1 \(shape \(1, 1\)\); a language model needs at least 2 tokens",
        ),
        (
            lm(),
            {"input_ids": torch.ones(1, 9, dtype=torch.long)},
            r"has sequence length 9 \(shape \(1, 9\)\) but TaskSpec max_seq_len is 8; truncate sequences to max_seq_len",
        ),
        (
            lm(),
            {"input_ids": torch.ones(1, 4)},
            r"batch\['input_ids'\] has dtype torch\.float32; token ids must be integers",
        ),
        (lm(), {"input_ids": torch.ones(4, dtype=torch.long)}, r"must have shape \[batch, seq_len\], got \(4,\)"),
        (lm(), {"input_ids": [1, 2]}, r"batch\['input_ids'\] must be a tensor, got list"),
        (
            lm(),
            {"input_ids": torch.ones(2, 4, dtype=torch.long), "attention_mask": torch.ones(2, 3)},
            r"attention_mask has shape \(2, 3\) but input_ids has shape \(2, 4\)",
        ),
        (
            lm(),
            {"input_ids": torch.ones(2, 4, dtype=torch.long), "labels": torch.ones(2, 3, dtype=torch.long)},
            r"batch\['labels'\] has shape \(2, 3\) but input_ids has shape \(2, 4\); for causal LM the labels are the unshifted input ids",
        ),
        (
            lm(),
            {"input_ids": torch.ones(1, 3, dtype=torch.long), "labels": torch.tensor([[1, 12, 2]])},
            r"batch\['labels'\] contains 12, but labels must be token ids in \[0, vocab_size=10\) or ignore_index=-100",
        ),
        (
            lm(),
            {"input_ids": torch.ones(1, 3, dtype=torch.long), "labels": torch.tensor([[1, -100, -100]])},
            r"has no position to predict after the shift",
        ),
        (
            lm(),
            {"input_ids": torch.ones(1, 3, dtype=torch.long), "labels": torch.ones(1, 3)},
            r"batch\['labels'\] has dtype torch\.float32; labels must be integer class or token indices",
        ),
        (
            cls(),
            {"input_ids": torch.ones(2, 3, dtype=torch.long), "labels": torch.tensor([0, 3])},
            r"batch\['labels'\] contains label 3, but labels must be in \[0, num_classes=3\) or ignore_index=-100; "
            r"set TaskSpec num_classes to at least 4 or map the labels to 0\.\.2",
        ),
        (
            cls(),
            {"input_ids": torch.ones(2, 3, dtype=torch.long), "labels": torch.tensor([-1, 0])},
            r"contains label -1, but labels must be in \[0, num_classes=3\)",
        ),
        (
            cls(),
            {"input_ids": torch.ones(2, 3, dtype=torch.long), "labels": torch.tensor([[0], [1]])},
            r"batch\['labels'\] must have shape \[batch\], got \(2, 1\); squeeze the trailing dimension",
        ),
        (
            cls(),
            {"input_ids": torch.ones(2, 3, dtype=torch.long), "labels": torch.eye(3, dtype=torch.long)[:2]},
            r"must have shape \[batch\], got \(2, 3\); give one class index per example \(not one-hot",
        ),
        (
            cls(),
            {"input_ids": torch.ones(2, 3, dtype=torch.long), "labels": torch.tensor([0, 1, 2])},
            r"batch\['labels'\] has 3 labels but input_ids has batch size 2",
        ),
        (
            cls(vocab_size=5),
            {"input_ids": torch.tensor([[1, 7]]), "labels": torch.tensor([0])},
            r"contains token id 7, but vocab_size is 5",
        ),
        (
            S2S,
            {"input_ids": torch.tensor([[1, 2]]), "labels": torch.tensor([[1, 10]])},
            r"batch\['labels'\] contains 10, but labels must be token ids in \[0, vocab_size=10\)",
        ),
        (
            S2S,
            {"input_ids": torch.tensor([[1, 2]]), "labels": torch.ones(1, 5, dtype=torch.long)},
            r"batch\['labels'\] has sequence length 5 but TaskSpec max_seq_len is 4",
        ),
        (
            S2S,
            {
                "input_ids": torch.tensor([[1, 2]]),
                "decoder_input_ids": torch.tensor([[0, 11]]),
                "labels": torch.tensor([[1, 2]]),
            },
            r"batch\['decoder_input_ids'\] contains token id 11, but vocab_size is 10",
        ),
        (
            VISION,
            {"pixel_values": torch.zeros(2, 8, 8, 3), "labels": torch.tensor([0, 1])},
            r"has 8 channels \(shape \(2, 8, 8, 3\)\) but TaskSpec num_channels is 3; the images look channels-last, use pixel_values\.permute\(0, 3, 1, 2\)",
        ),
        (
            VISION,
            {"pixel_values": torch.zeros(2, 3, 28, 28), "labels": torch.tensor([0, 1])},
            r"has images of 28x28 \(shape \(2, 3, 28, 28\)\) but TaskSpec image_size is 8; resize the images to 8x8 or set image_size",
        ),
        (
            VISION,
            {"pixel_values": torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "labels": torch.tensor([0, 1])},
            r"has dtype torch\.uint8; images must be float tensors",
        ),
        (
            VISION,
            {"pixel_values": torch.zeros(3, 8, 8), "labels": torch.tensor([0])},
            r"must have shape \[batch, channels, height, width\], got \(3, 8, 8\)",
        ),
        (
            VISION,
            {"image": torch.zeros(1, 3, 8, 8)},
            r"batch has no 'pixel_values' field \(keys present: \['image'\]\); return the images under 'pixel_values'",
        ),
        (
            VISION,
            {"pixel_values": torch.zeros(2, 3, 8, 8), "labels": torch.tensor([0, 2])},
            r"contains label 2, but labels must be in \[0, num_classes=2\)",
        ),
        (lm(), "not a batch", r"expected the batch to be a dict of tensors, got str"),
    ],
)
def test_validate_batch_errors(task: TaskSpec, batch: object, match: str) -> None:
    with pytest.raises(DataError, match=match):
        task.validate_batch(batch)
