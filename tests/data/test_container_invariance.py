"""The same samples in any accepted container give the same first-batch loss and the same weights after 3 steps.

Containers: a tensor [N, T], a list of lists, a list of tensors, a list of dicts, (inputs, labels), a list of
(input, label) tuples, a torch Dataset, a DataLoader, a Hugging Face datasets.Dataset (map-style and
``to_iterable_dataset()``) and UniversalDataModule's loader; tasks: LM without and with padding, classification,
seq2seq. Shuffle off, 12 samples, batch 4: 3 optimizer steps. Tolerance 1e-6.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.dataloader import default_collate

from tests.data.mask_models import PAD, VOCAB, MaskedClassifier, MaskedLM, MaskedSeq2Seq
from trainforge import TaskSpec, Trainer, TrainingConfig
from trainforge.data.collators import get_collator
from trainforge.data.module import UniversalDataModule

N, T = 12, 6
TASKS = {
    "lm": TaskSpec.language_modeling(name="lm", vocab_size=VOCAB, max_seq_len=T),
    "lm padded": TaskSpec.language_modeling(name="lm", vocab_size=VOCAB, max_seq_len=T, pad_token_id=PAD),
    "classification": TaskSpec.classification(name="c", num_classes=3, vocab_size=VOCAB, pad_token_id=PAD),
    "seq2seq": TaskSpec.seq2seq(name="s", vocab_size=VOCAB, max_seq_len=T, pad_token_id=PAD),
}
MODELS = {"lm": MaskedLM, "lm padded": MaskedLM, "classification": MaskedClassifier, "seq2seq": MaskedSeq2Seq}
LM_ONLY = ("tensor [N, T]", "list of lists", "list of tensors")
CONTAINERS = (*LM_ONLY, "list of dicts", "(inputs, labels)", "list of (input, label)", "torch Dataset",
              "DataLoader", "datasets.Dataset", "datasets iterable", "UniversalDataModule")


def samples(name: str) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``(ids, attention_mask or None, labels)``; for LM the labels are the ids with padding ignored."""
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(3, VOCAB, (N, T), generator=g)
    mask = None
    if name == "lm padded":
        lengths = torch.randint(2, T + 1, (N,), generator=g)
        mask = (torch.arange(T).expand(N, T) < lengths[:, None]).long()
        ids = ids.masked_fill(mask == 0, PAD)
    if name == "classification":
        return ids, mask, torch.randint(0, 3, (N,), generator=g)
    if name == "seq2seq":
        return ids, mask, torch.randint(3, VOCAB, (N, 4), generator=g)
    return ids, mask, ids if mask is None else ids.masked_fill(mask == 0, -100)


class Rows(Dataset):
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: torch.as_tensor(v) for k, v in self.rows[i].items()}


def container(kind: str, name: str) -> Any:
    task = TASKS[name]
    ids, mask, labels = samples(name)
    lm = task.task_type == "language_modeling"
    rows: list[dict[str, Any]] = []
    for i in range(N):
        row: dict[str, Any] = {"input_ids": ids[i].tolist()}
        if mask is not None:
            row["attention_mask"] = mask[i].tolist()
        if not lm:
            row["labels"] = labels[i].tolist()
        rows.append(row)
    if kind == "tensor [N, T]":
        return ids
    if kind == "list of lists":
        return ids.tolist()
    if kind == "list of tensors":
        return list(ids)
    if kind == "list of dicts":
        return rows
    if kind == "(inputs, labels)":
        return ids, labels
    if kind == "list of (input, label)":
        return list(zip(ids.tolist(), labels.tolist()))
    if kind == "torch Dataset":
        return Rows(rows)
    if kind == "DataLoader":  # used as given: torch's default collate, or the registry's where decoder inputs are needed
        collate = get_collator(task) if task.task_type == "seq2seq" else default_collate
        return DataLoader(Rows(rows), batch_size=4, shuffle=False, collate_fn=collate)
    if kind == "UniversalDataModule":
        return UniversalDataModule(train_data=rows, task_spec=task, batch_size=4, shuffle=False,
                                   validation_split=0).train_dataloader()
    datasets = pytest.importorskip("datasets")
    hf_rows = [{("label" if k == "labels" and task.task_type == "classification" else k): v for k, v in r.items()}
               for r in rows]  # the Hugging Face column name
    ds = datasets.Dataset.from_list(hf_rows)
    return ds if kind == "datasets.Dataset" else ds.to_iterable_dataset()


class FirstLoss:
    """The token-weighted loss of the first optimizer step (= the first batch)."""

    value: float | None = None

    def on_step_end(self, state: Any) -> None:
        if state.global_step == 1:
            loss_sum, count = state.epoch_sums_on_host()
            self.value = loss_sum / count


def train(kind: str, name: str) -> tuple[float, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = MODELS[name]()
    cfg = TrainingConfig(epochs=1, batch_size=4, learning_rate=5e-2, lr_schedule="constant", progress_bar=False,
                         device="cpu", seed=0, shuffle=False, plots=False, track_runs=False)
    first = FirstLoss()
    results = Trainer(model, None, cfg, TASKS[name], callbacks=[first]).train(container(kind, name))
    assert first.value is not None
    return first.value, results["final_model_state"]


_REFERENCE: dict[str, tuple[float, dict[str, torch.Tensor]]] = {}


def reference(name: str) -> tuple[float, dict[str, torch.Tensor]]:
    if name not in _REFERENCE:
        _REFERENCE[name] = train("list of dicts", name)
    return _REFERENCE[name]


CASES = [(kind, name) for name in TASKS for kind in CONTAINERS
         if kind != "list of dicts" and (kind not in LM_ONLY or name.startswith("lm"))]


@pytest.mark.parametrize(("kind", "name"), CASES, ids=[f"{n}-{k}" for k, n in CASES])
def test_same_samples_same_loss_and_weights_in_every_container(kind, name):
    loss, weights = train(kind, name)
    ref_loss, ref_weights = reference(name)
    assert loss == pytest.approx(ref_loss, abs=1e-6)
    assert weights.keys() == ref_weights.keys()
    for key, value in weights.items():
        assert torch.allclose(value, ref_weights[key], atol=1e-6, rtol=0), key
    assert any(not torch.equal(value, before) for value, before in zip(weights.values(), _initial(name).values()))


def _initial(name: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return MODELS[name]().state_dict()
