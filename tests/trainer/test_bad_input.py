"""Bad input fails with ONE clear error before step 0: the exact type, a message naming the value and a fix.

Every case that reaches ``Trainer.train`` runs with a callback recording optimizer steps and a named
``output_dir``: no step may have happened and no run directory or checkpoint may have been written.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import (
    CheckpointError,
    ConfigError,
    DataError,
    DataTypeError,
    ModelError,
    TaskSpec,
    Trainer,
    TrainingConfig,
)

RUN_DIR = "bad_run"
CKPT_DIR = "bad_ckpt"


class StepRecorder:
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, state) -> None:
        self.steps.append(state.global_step)


def _fails_before_step_0(error, match, train_data, model=None, model_config=None, task=None, config=None, **train):
    """Train and expect ``error``; then check that nothing trained and nothing was written."""
    if model is None:
        model, model_config = tiny_gpt()
    config = config or quiet_config(epochs=1, output_dir=RUN_DIR, checkpoint_dir=CKPT_DIR)
    recorder = StepRecorder()
    trainer = Trainer(model, model_config, config, task or lm_task(), callbacks=[recorder])
    with pytest.raises(error, match=match) as info:
        trainer.train(train_data, **train)
    assert recorder.steps == []
    assert not Path(RUN_DIR).exists(), "a run directory was written for bad input"
    assert not Path(CKPT_DIR).exists(), "a checkpoint was written for bad input"
    return info.value


def _classification_task(**extra):
    return TaskSpec.classification(name="cls", num_classes=3, vocab_size=32, max_seq_len=16, **extra)


class TinyClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(32, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids):
        return self.head(self.emb(input_ids).mean(1))


def _with_bad_last_row(blocks: torch.Tensor, value: int) -> torch.Tensor:
    """16 good rows, one bad id in the last one: not in the first batch (shuffle=False, batch_size 8)."""
    data = blocks[:16].clone()
    data[-1, 5] = value
    return data


def _no_shuffle():
    return quiet_config(epochs=1, shuffle=False, output_dir=RUN_DIR, checkpoint_dir=CKPT_DIR)


# ------------------------------------------------------------------ data of the wrong type or shape


@pytest.mark.parametrize(
    "data, received",
    [
        ("some raw text", r"builtins\.str"),
        ({"input_ids": [1, 2, 3]}, r"builtins\.dict"),
        (42, r"builtins\.int"),
        (None, "None"),
        ({1, 2, 3}, r"builtins\.set"),
    ],
    ids=["str", "dict", "int", "None", "set"],
)
def test_train_data_of_a_wrong_type_is_a_data_type_error(data, received):
    error = _fails_before_step_0(
        DataTypeError, rf"Expected train_data to be Dataset or DataLoader, got {received}\. Accepted: ", data
    )
    assert isinstance(error, RuntimeError) and isinstance(error, TypeError)  # what older notebooks catch


def test_val_data_of_a_wrong_type_names_val_data(lm_blocks):
    _fails_before_step_0(DataTypeError, r"Expected val_data to be Dataset or DataLoader, got builtins\.int",
                         lm_blocks, val_data=7)


@pytest.mark.parametrize("data", [[], torch.empty(0, 16, dtype=torch.long)], ids=["empty-list", "empty-tensor"])
def test_empty_train_data(data):
    _fails_before_step_0(DataError, r"train_data is empty \(0 samples\)\. Fix: pass at least one sample", data)


def test_one_dimensional_tensor_for_language_modeling(lm_blocks):
    _fails_before_step_0(
        DataError, r"1-D tensor of 256 values; expected token blocks of shape \[N, T\]\. Fix: .*lm_blocks",
        lm_blocks[:16].reshape(-1),
    )


def test_tensor_without_labels_for_classification(lm_blocks):
    _fails_before_step_0(
        DataError, r"tensor of shape \(16, 16\) without labels, but task 'classification' needs labels\. Fix: pass "
        r"an \(inputs, labels\) tuple", lm_blocks[:16], model=TinyClassifier(), task=_classification_task(),
    )


def test_inputs_and_labels_of_different_lengths(lm_blocks):
    _fails_before_step_0(
        DataError, r"different lengths: 16 inputs and 5 labels\. Fix: give one label per input",
        (lm_blocks[:16], torch.zeros(5, dtype=torch.long)), model=TinyClassifier(), task=_classification_task(),
    )


# ------------------------------------------------------------------ values out of range (anywhere, not just batch 1)


def test_token_id_at_or_above_vocab_size_names_the_id_and_vocab_size(lm_blocks):
    _fails_before_step_0(
        DataError, r"contains token id 40, but vocab_size is 32 .*set TaskSpec vocab_size .* to at least 41",
        _with_bad_last_row(lm_blocks, 40), config=_no_shuffle(),
    )


def test_negative_token_id(lm_blocks):
    _fails_before_step_0(
        DataError, r"contains token id -1, but token ids must be >= 0.*replace them with pad_token_id",
        _with_bad_last_row(lm_blocks, -1), config=_no_shuffle(),
    )


def test_bad_token_id_in_a_list_of_tensors_is_caught_when_in_the_first_batch(lm_blocks):
    rows = list(_with_bad_last_row(lm_blocks, 99).flip(0))  # the bad row first
    _fails_before_step_0(DataError, r"contains token id 99, but vocab_size is 32", rows, config=_no_shuffle())


def test_classification_label_out_of_range(lm_blocks):
    labels = torch.tensor([0, 1, 2, 1] * 4)
    labels[-1] = 7
    _fails_before_step_0(
        DataError, r"contains label 7, but labels must be in \[0, num_classes=3\).*set TaskSpec num_classes to at "
        r"least 8 or map the labels to 0\.\.2", (lm_blocks[:16], labels), model=TinyClassifier(),
        task=_classification_task(), config=_no_shuffle(),
    )


def test_language_model_sequences_longer_than_max_seq_len():
    data = torch.randint(0, 32, (16, 20))
    _fails_before_step_0(
        DataError, r"sequence length 20 .* but TaskSpec max_seq_len is 16; truncate sequences to max_seq_len", data
    )


def test_language_model_sequences_of_length_one():
    _fails_before_step_0(
        DataError, r"sequence length 1 .*needs at least 2 tokens per sequence", torch.randint(0, 32, (16, 1))
    )


def test_mixed_length_sequences_without_pad_id_for_classification():
    samples = [(torch.arange(5 + i % 3), i % 3) for i in range(16)]
    _fails_before_step_0(
        DataError, r"sequences of different lengths .* but there is no pad_token_id\. Fix: pass "
        r"pad_token_id=", samples, model=TinyClassifier(), task=_classification_task(),
    )


# ------------------------------------------------------------------ configuration


def test_negative_learning_rate():
    with pytest.raises(ConfigError, match=r"learning_rate: must be a positive number, got -0\.001\. Fix: use a value"):
        TrainingConfig(learning_rate=-1e-3)


def test_negative_learning_rate_set_after_construction_fails_in_train(lm_blocks):
    config = quiet_config(epochs=1, output_dir=RUN_DIR, checkpoint_dir=CKPT_DIR)
    config.learning_rate = -1.0  # fields are mutable; train() validates again before anything runs
    _fails_before_step_0(ConfigError, r"learning_rate: must be a positive number, got -1\.0", lm_blocks,
                         config=config)


def test_unknown_config_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match=r"learnin_rate: unknown option, got 0\.001\. Fix: did you mean "
                                          r"'learning_rate'\?"):
        TrainingConfig(learnin_rate=1e-3)


def test_several_config_problems_are_reported_together():
    with pytest.raises(ConfigError, match=r"TrainingConfig has 3 problems") as info:
        TrainingConfig(epochs=0, learning_rate=-1.0, batch_szie=8)
    problems = info.value.problems
    assert len(problems) == 3
    assert any(p.startswith("epochs: must be at least 1") for p in problems)
    assert any(p.startswith("learning_rate: must be a positive number") for p in problems)
    assert any("batch_szie" in p and "did you mean 'batch_size'" in p for p in problems)


# ------------------------------------------------------------------ Trainer arguments and the model


def test_model_that_is_not_a_module():
    _, model_config = tiny_gpt()
    with pytest.raises(ConfigError, match=r"model: expected a torch\.nn\.Module, got OrderedDict\. Fix: pass the model "
                                          r"instance"):
        Trainer(tiny_gpt()[0].state_dict(), model_config, quiet_config(), lm_task())


def test_task_spec_missing():
    model, model_config = tiny_gpt()
    with pytest.raises(ConfigError, match=r"task_spec: expected a TaskSpec, got NoneType\. Fix: e\.g\. "
                                          r"TaskSpec\.language_modeling"):
        Trainer(model, model_config, quiet_config())


def test_shifted_trainer_arguments():
    model, _ = tiny_gpt()
    with pytest.raises(ConfigError, match=r"Trainer arguments are shifted.*Fix: Trainer\(model, model_config, "
                                          r"training_config, task_spec\)"):
        Trainer(model, quiet_config(), lm_task())


def test_model_config_vocab_size_differs_from_the_task():
    model, _ = tiny_gpt()
    _, other_config = tiny_gpt(vocab=40)
    with pytest.raises(ConfigError, match=r"vocab_size: the model config says 40 but the TaskSpec says 32\. Fix: "):
        Trainer(model, other_config, quiet_config(), lm_task())


class _ReturnsNothingUseful(nn.Module):
    def __init__(self, output) -> None:
        super().__init__()
        self.output = output
        self.emb = nn.Embedding(32, 32)

    def forward(self, input_ids):
        return self.output


@pytest.mark.parametrize("output, described", [("hello", "str"), (None, "NoneType")], ids=["str", "None"])
def test_model_output_without_logits(lm_blocks, output, described):
    _fails_before_step_0(
        ModelError, rf"no usable logits for task 'language_modeling': it returned an object of type {described}\. "
        r"Expected logits of shape \[batch, seq_len, 32\].*Fix: return the logits from forward\(\)",
        lm_blocks, model=_ReturnsNothingUseful(output),
    )


def test_model_logits_of_the_wrong_vocab_size(lm_blocks):
    model, _ = tiny_gpt(vocab=40)
    _fails_before_step_0(
        ModelError, r"logits' last dimension is 40 .* but TaskSpec vocab_size is 32.*resize the output layer",
        lm_blocks, model=model,
    )


class _NeedsSegments(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(32, 32)

    def forward(self, input_ids, segment_ids):
        return self.emb(input_ids) + segment_ids


def test_model_forward_needs_an_argument_the_batch_lacks(lm_blocks):
    _fails_before_step_0(
        ModelError, r"missing 1 required positional argument: 'segment_ids'.*from batch fields \[.*'input_ids'.*\]\)\. "
        r"Fix: name forward\(\)'s parameters like the batch fields", lm_blocks, model=_NeedsSegments(),
    )


# ------------------------------------------------------------------ checkpoints to resume from


def _real_checkpoint(lm_blocks) -> Path:
    model, model_config = tiny_gpt()
    config = quiet_config(epochs=1, checkpoint_dir="good", output_dir="good_run")
    Trainer(model, model_config, config, lm_task()).train(lm_blocks[:16])
    return Path("good") / "epoch_1.pt"


def test_checkpoint_of_random_bytes(lm_blocks):
    Path("random.pt").write_bytes(random.Random(0).randbytes(4096))
    error = _fails_before_step_0(
        CheckpointError, r"Checkpoint 'random\.pt' is corrupt or not a torch\.save file.*Fix: resume from an "
        r"earlier checkpoint", lm_blocks, resume_from="random.pt",
    )
    assert "could run code" not in str(error)  # garbage is not an attack


def test_truncated_real_checkpoint(lm_blocks):
    whole = _real_checkpoint(lm_blocks).read_bytes()
    Path("truncated.pt").write_bytes(whole[: len(whole) // 2])
    _fails_before_step_0(CheckpointError, r"'truncated\.pt' is corrupt or truncated.*Fix: resume from an earlier",
                         lm_blocks, resume_from="truncated.pt")


def test_checkpoint_of_another_model_names_the_keys(lm_blocks):
    other, _ = tiny_gpt(vocab=40)
    state = other.state_dict()
    state["adapter.weight"] = torch.zeros(2)
    del state["ln_f.weight"]
    torch.save(state, "other.pt")
    _fails_before_step_0(
        CheckpointError, r"'other\.pt' was saved from a different model: 1 missing keys \(e\.g\. \['ln_f\.weight'\]\); "
        r"1 unexpected keys \(e\.g\. \['adapter\.weight'\]\); \d+ shape mismatches \(e\.g\. \['[\w.]+: checkpoint "
        r"\(40, 32\) vs model \(32, 32\)'.*Fix: build the model with the same architecture config",
        lm_blocks, resume_from="other.pt",
    )


def test_resume_from_a_path_that_does_not_exist(lm_blocks):
    _fails_before_step_0(CheckpointError, r"Checkpoint not found: 'nowhere/epoch_3\.pt'\. Fix: pass the path of an "
                         r"existing \.pt file", lm_blocks, resume_from="nowhere/epoch_3.pt")


def test_resume_auto_without_checkpoint_dir(lm_blocks):
    config = quiet_config(epochs=1, output_dir=RUN_DIR)
    _fails_before_step_0(ConfigError, r"resume_from='auto' needs checkpoint_dir to search\. Fix: set checkpoint_dir",
                         lm_blocks, config=config, resume_from="auto")
