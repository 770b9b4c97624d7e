"""Masks and padding are data: a sample's own attention_mask reaches the model, built labels ignore padding.

Per collator and per container, with pre-padded rows and a given attention_mask: the tiny model records the
mask it receives, and the first-batch loss equals the masked loss computed by hand (1e-6).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from tests.data.mask_models import (
    PAD,
    VOCAB,
    MaskedClassifier,
    MaskedLM,
    MaskedSeq2Seq,
    class_loss,
    lm_loss,
    seq2seq_loss,
)
from trainforge import TaskSpec, Trainer, TrainingConfig
from trainforge.data.collators import get_collator
from trainforge.data.module import UniversalDataModule

EOS = 2
LM = TaskSpec.language_modeling(name="lm", vocab_size=VOCAB, max_seq_len=8, pad_token_id=PAD)
# Right padding, left padding and a padded row whose real last token is EOS = pad (GPT-2 style, see LM_EOS).
IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, PAD, PAD, PAD], [PAD, PAD, 14, 15, 16, 17],
                    [3, 4, 5, 6, PAD, PAD]])
MASK = (IDS != PAD).long()


def config(**overrides) -> TrainingConfig:
    values = dict(epochs=1, batch_size=4, learning_rate=1e-2, progress_bar=False, device="cpu", seed=0,
                  shuffle=False, plots=False, track_runs=False)
    values.update(overrides)
    return TrainingConfig(**values)


def dicts(ids: torch.Tensor, mask: torch.Tensor | None, **fields: torch.Tensor) -> list[dict]:
    out = []
    for i in range(ids.shape[0]):
        row = {"input_ids": ids[i].tolist()}
        if mask is not None:
            row["attention_mask"] = mask[i].tolist()
        row.update({k: v[i].tolist() for k, v in fields.items()})
        out.append(row)
    return out


def first_loss(results: dict) -> float:
    return float(results["loss_history"][0])


def received(model, expected: torch.Tensor) -> bool:
    """Every mask the model received is the expected one (the memory estimate before step 0 also calls it on the
    first rows of the batch: those are the same rows of the expected mask)."""
    assert model.masks, "the model was never called"
    return all(m is not None and torch.equal(m, expected[: m.shape[0]]) for m in model.masks) and \
        model.masks[-1].shape == expected.shape


# ------------------------------------------------------------------------------------------------ collators


def test_causal_lm_keeps_the_samples_mask_and_combines_it_with_its_own_padding():
    rows = [{"input_ids": [5, 6, 7, PAD], "attention_mask": [1, 1, 1, 0]},
            {"input_ids": [PAD, 8, 9], "attention_mask": [0, 1, 1]},
            {"input_ids": [3, 4, 5, 6, 7, 8], "attention_mask": [1, 1, 1, 1, 1, 1]}]
    batch = get_collator(LM)(rows)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0], [0, 1, 1, 0, 0, 0], [1] * 6]
    assert batch["labels"].tolist() == [[5, 6, 7, -100, -100, -100], [-100, 8, 9, -100, -100, -100],
                                        [3, 4, 5, 6, 7, 8]]
    # labels the user gives are used as given: only the padding the collator adds is ignored
    given = [dict(r, labels=r["input_ids"]) for r in rows]
    assert get_collator(LM)(given)["labels"].tolist()[1] == [PAD, 8, 9, -100, -100, -100]


def test_built_labels_ignore_pad_token_id_without_a_mask_and_the_mask_alone_when_pad_is_eos():
    batch = get_collator(LM)([[5, 6, PAD, PAD], [7, 8, 9, 10]])  # pre-padded, equal lengths, no mask
    assert batch["labels"].tolist() == [[5, 6, -100, -100], [7, 8, 9, 10]]
    gpt2 = TaskSpec.language_modeling(name="lm", vocab_size=VOCAB, max_seq_len=8, pad_token_id=EOS, eos_token_id=EOS)
    batch = get_collator(gpt2)([{"input_ids": [5, 6, EOS, EOS], "attention_mask": [1, 1, 1, 0]}])
    assert batch["labels"].tolist() == [[5, 6, EOS, -100]]  # the real EOS is learnt, the padding is not
    # the tensor path (a stacked batch) builds the same labels with the same rule
    assert gpt2.targets({"input_ids": torch.tensor([[5, 6, EOS, EOS]]),
                         "attention_mask": torch.tensor([[1, 1, 1, 0]])}).tolist() == [[5, 6, EOS, -100]]
    assert LM.targets({"input_ids": torch.tensor([[5, 6, PAD, PAD]])}).tolist() == [[5, 6, -100, -100]]


def test_causal_lm_pads_aligned_extra_fields_to_the_padded_length():
    batch = get_collator(LM, "causal_lm", pad_to_multiple_of=4)(
        [{"input_ids": [5, 6, 7], "token_type_ids": [0, 0, 1]}, {"input_ids": [8, 9], "token_type_ids": [1, 1]}])
    assert batch["input_ids"].shape == batch["token_type_ids"].shape == (2, 4)
    assert batch["token_type_ids"].tolist() == [[0, 0, 1, 0], [1, 1, 0, 0]]


def test_packed_lm_drops_each_samples_padding_before_packing():
    task = TaskSpec.language_modeling(name="lm", vocab_size=VOCAB, max_seq_len=4, pad_token_id=PAD, eos_token_id=EOS)
    rows = [{"input_ids": [5, 6, PAD, PAD], "attention_mask": [1, 1, 0, 0]},
            {"input_ids": [PAD, 7, 8, 9], "attention_mask": [0, 1, 1, 1]}]
    batch = get_collator(task, "packed_lm")(rows)
    assert batch["input_ids"].tolist() == [[5, 6, EOS, 7], [8, 9, EOS, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[5, 6, EOS, 7], [8, 9, EOS, -100]]
    # without a mask, pad_token_id marks the padding; labels a sample gives are packed alongside its tokens
    given = [{"input_ids": [5, 6, PAD], "labels": [-100, 6, -100]}, {"input_ids": [7, 8], "labels": [7, 8]}]
    batch = get_collator(task, "packed_lm")(given)
    assert batch["input_ids"].tolist() == [[5, 6, EOS, 7], [8, EOS, PAD, PAD]]
    assert batch["labels"].tolist() == [[-100, 6, EOS, 7], [8, EOS, -100, -100]]


def test_classification_and_seq2seq_keep_the_samples_mask():
    cls = TaskSpec.classification(name="c", num_classes=3, vocab_size=VOCAB, pad_token_id=PAD)
    batch = get_collator(cls)([{"input_ids": [3, 4, PAD], "attention_mask": [1, 1, 0], "label": 2},
                               {"input_ids": [5], "attention_mask": [1], "label": 0}])
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 0, 0]]
    assert batch["labels"].tolist() == [2, 0] and "label" not in batch  # the HF `label` column is `labels`
    s2s = TaskSpec.seq2seq(name="s", vocab_size=VOCAB, max_seq_len=8, pad_token_id=PAD)
    batch = get_collator(s2s)([{"input_ids": [4, 5, PAD], "attention_mask": [1, 1, 0], "labels": [7, 8]},
                               {"input_ids": [9, 10, 11, 12], "attention_mask": [1, 1, 1, 1], "labels": [6]}])
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[7, 8], [6, -100]]  # used as given, padded with ignore_index


def test_vision_collator_takes_the_label_column_and_passes_other_fields():
    task = TaskSpec.vision_classification(name="v", num_classes=2, image_size=2, num_channels=1)
    batch = get_collator(task)([{"pixel_values": torch.zeros(1, 2, 2), "label": 1, "pixel_mask": [1, 1]},
                                {"pixel_values": torch.ones(1, 2, 2), "label": 0, "pixel_mask": [1, 0]}])
    assert batch["labels"].tolist() == [1, 0] and batch["pixel_mask"].tolist() == [[1, 1], [1, 0]]


# ------------------------------------------------------------------------------------ through the trainer


class DictDataset(Dataset):
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return {k: torch.tensor(v) for k, v in self.rows[i].items()}


def _lm_container(kind: str):
    rows = dicts(IDS, MASK)
    if kind == "list of dicts":
        return rows
    if kind == "torch Dataset":
        return DictDataset(rows)
    if kind == "DataLoader":
        return DataLoader(DictDataset(rows), batch_size=4, shuffle=False)
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(rows)
    if kind == "datasets.Dataset":
        return ds
    if kind == "datasets iterable":
        return ds.to_iterable_dataset()
    if kind == "UniversalDataModule":
        return UniversalDataModule(train_data=rows, task_spec=LM, batch_size=4, shuffle=False,
                                   validation_split=0).train_dataloader()
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["list of dicts", "torch Dataset", "DataLoader", "datasets.Dataset",
                                  "datasets iterable", "UniversalDataModule"])
def test_each_container_passes_the_given_mask_and_trains_on_the_masked_loss(kind):
    torch.manual_seed(0)
    model = MaskedLM()
    expected = lm_loss(copy.deepcopy(model), IDS, MASK)
    results = Trainer(model, None, config(), LM).train(_lm_container(kind))
    assert received(model, MASK)
    assert first_loss(results) == pytest.approx(expected, abs=1e-6)


def test_training_coordinator_and_simple_data_module_pass_the_given_mask():
    pytest.importorskip("lightning")
    from trainforge.data.lightning_module import SimpleDataModule
    from trainforge.lightning.coordinator import TrainingCoordinator

    torch.manual_seed(0)
    model = MaskedLM()
    expected = lm_loss(copy.deepcopy(model), IDS, MASK)
    rows = dicts(IDS, MASK)
    data = SimpleDataModule(rows, None, LM, batch_size=4, shuffle=False)
    results = TrainingCoordinator(config(), LM).train(model, datamodule=data)
    assert received(model, MASK)
    assert first_loss(results) == pytest.approx(expected, abs=1e-6)


def test_packed_lm_through_the_trainer_trains_on_the_packed_unpadded_tokens():
    task = TaskSpec.language_modeling(name="lm", vocab_size=VOCAB, max_seq_len=8, pad_token_id=PAD, eos_token_id=EOS)
    torch.manual_seed(0)
    model = MaskedLM()
    reference = copy.deepcopy(model)
    rows = dicts(IDS, MASK)
    module = UniversalDataModule(train_data=rows, task_spec=task, batch_size=4, shuffle=False, validation_split=0,
                                 collator="packed_lm")
    packed = next(iter(module.train_dataloader()))
    stream = [t for r in rows for t in [*(i for i, m in zip(r["input_ids"], r["attention_mask"]) if m), EOS]]
    assert packed["input_ids"].reshape(-1)[: len(stream)].tolist() == stream
    results = Trainer(model, None, config(), task).train(module.train_dataloader())
    assert received(model, packed["attention_mask"])
    assert first_loss(results) == pytest.approx(lm_loss(reference, packed["input_ids"], packed["attention_mask"]),
                                                abs=1e-6)


def test_classification_with_pre_padded_rows_mask_and_token_types():
    task = TaskSpec.classification(name="c", num_classes=3, vocab_size=VOCAB, pad_token_id=PAD)
    labels = torch.tensor([0, 1, 2, 1])
    types = (torch.arange(6).expand(4, 6) >= 3).long() * MASK
    torch.manual_seed(0)
    model = MaskedClassifier()
    expected = class_loss(copy.deepcopy(model), IDS, MASK, labels, types)
    rows = dicts(IDS, MASK, token_type_ids=types, label=labels)  # the HF `label` column
    results = Trainer(model, None, config(), task).train(rows)
    assert received(model, MASK)
    assert all(torch.equal(t, types[: t.shape[0]]) for t in model.token_types)  # token_type_ids pass through to the model
    assert first_loss(results) == pytest.approx(expected, abs=1e-6)


def test_seq2seq_with_pre_padded_rows_and_mask():
    task = TaskSpec.seq2seq(name="s", vocab_size=VOCAB, max_seq_len=8, pad_token_id=PAD)
    labels = torch.tensor([[7, 8, 9], [10, 11, -100], [12, -100, -100], [13, 14, 15]])
    torch.manual_seed(0)
    model = MaskedSeq2Seq()
    expected = seq2seq_loss(copy.deepcopy(model), IDS, MASK, labels)
    results = Trainer(model, None, config(), task).train(dicts(IDS, MASK, labels=labels))
    assert received(model, MASK)
    assert first_loss(results) == pytest.approx(expected, abs=1e-6)


def test_the_label_rename_is_said_once_in_the_log(capsys):
    task = TaskSpec.classification(name="c", num_classes=3, vocab_size=VOCAB, pad_token_id=PAD)
    rows = dicts(IDS, MASK, label=torch.tensor([0, 1, 2, 1]))
    Trainer(MaskedClassifier(), None, config(epochs=2), task).train(rows)
    out = capsys.readouterr()
    assert (out.out + out.err).count("'label' field is used as 'labels'") == 1


def test_universal_data_module_on_a_padded_tensor_builds_labels_that_ignore_the_padding():
    """A tensor dataset's batches come stacked (``__getitems__``): the collator's stacked path applies the same rule."""
    loader = UniversalDataModule(train_data=IDS, task_spec=LM, batch_size=4, shuffle=False,
                                 validation_split=0).train_dataloader()
    batch = next(iter(loader))
    assert batch["labels"].tolist() == IDS.masked_fill(IDS == PAD, -100).tolist()


def test_uint8_image_tensors_train_like_the_same_images_in_a_list():
    """Tensor batches of a task whose collator finishes them (here: uint8 HWC -> float CHW) go through it."""
    task = TaskSpec.vision_classification(name="v", num_classes=2, image_size=4, num_channels=3)
    images = torch.randint(0, 256, (8, 4, 4, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1] * 4)

    def run(data) -> dict:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2))
        return Trainer(model, None, config(), task).train(data)

    tensor = run((images, labels))
    listed = run([{"pixel_values": im, "label": int(y)} for im, y in zip(images, labels)])
    assert tensor["loss_history"][0] == pytest.approx(listed["loss_history"][0], abs=1e-6)
    for key, value in tensor["final_model_state"].items():
        assert torch.allclose(value, listed["final_model_state"][key], atol=1e-6), key


def test_gpt2_style_pad_equal_to_eos_keeps_the_real_eos_of_ragged_samples():
    """pad == EOS and no mask of the samples': the padding the collator adds is the mask, so a document's real EOS
    is still learnt (only a bare tensor, which has no mask at all, must treat every pad id as padding)."""
    gpt2 = TaskSpec.language_modeling(name="lm", vocab_size=VOCAB, max_seq_len=8, pad_token_id=EOS, eos_token_id=EOS)
    batch = get_collator(gpt2)([[5, 6, EOS], [7, EOS]])
    assert batch["input_ids"].tolist() == [[5, 6, EOS], [7, EOS, EOS]]
    assert batch["labels"].tolist() == [[5, 6, EOS], [7, EOS, -100]]
