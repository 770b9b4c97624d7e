"""The training step takes the target count from the batch shape when every position counts (causal LM on a plain
token tensor): the same losses as counting on the device, and never when some position does not count. The epoch's
running sums take host numbers and device tensors."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer
from trainforge.data.inputs import PairSamples
from trainforge.data.tensor_loader import TensorBatchLoader, batches_on, every_target_counts
from trainforge.trainer.state import TrainState


class RowDicts(Dataset):  # not tensor-backed: a DataLoader collates it, and the step counts on the device
    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.rows[i]}


def _train(data, **cfg):
    model, mcfg = tiny_gpt()
    return Trainer(model, mcfg, quiet_config(epochs=1, track_runs=False, plots=False, **cfg), lm_task()).train(data)


def test_shape_count_gives_the_losses_of_device_counting(lm_blocks, tmp_path) -> None:
    rows = lm_blocks[:48]
    fast = _train(rows, output_dir=str(tmp_path / "a"), gradient_accumulation_steps=2)
    counted = _train(RowDicts(rows), output_dir=str(tmp_path / "b"), gradient_accumulation_steps=2)
    assert fast["loss_history"] == counted["loss_history"]
    for key, value in fast["final_model_state"].items():
        assert torch.equal(value, counted["final_model_state"][key]), key


def test_shape_count_only_when_every_position_counts() -> None:
    task = lm_task()
    ids = torch.randint(0, 32, (10, 16))

    def loader(inputs: torch.Tensor, labels: torch.Tensor | None = None, **extra) -> TensorBatchLoader:
        return TensorBatchLoader(PairSamples(inputs, labels, lm_task(**extra)), 4)

    assert every_target_counts(loader(ids), task)
    holed = ids.clone()
    holed[3, 5] = task.ignore_index  # an ignored position: the count must come from the labels
    assert not every_target_counts(loader(holed), task)
    assert not every_target_counts(loader(ids, ids.clone()), task)  # explicit labels may hold ignore_index
    padded = lm_task(pad_token_id=0)
    assert not every_target_counts(TensorBatchLoader(PairSamples(ids, None, padded), 4), padded)
    assert not every_target_counts(torch.utils.data.DataLoader(RowDicts(ids)), task)


def test_one_micro_batch_step_takes_the_kernel_mean_with_the_same_weights(lm_blocks, tmp_path) -> None:
    """Without accumulation the step's loss is the loss kernel's own mean (no division): the same gradients as
    dividing the summed loss by the count on the device, and the same epoch loss up to float32 rounding."""
    rows = lm_blocks[:48]
    fast = _train(rows, output_dir=str(tmp_path / "a"))
    counted = _train(RowDicts(rows), output_dir=str(tmp_path / "b"))
    for key, value in fast["final_model_state"].items():
        assert torch.equal(value, counted["final_model_state"][key]), key
    assert fast["loss_history"] == pytest.approx(counted["loss_history"], rel=1e-6)


def test_epoch_sums_add_host_numbers_and_device_tensors_and_save_both() -> None:
    state = TrainState()
    state.add_to_epoch(2.5, 10)  # read on the host already: no kernel
    state.add_to_epoch(torch.tensor(1.5), torch.tensor(6))  # device values: no sync
    loss, targets = state.epoch_sums()
    assert loss.dtype == torch.float64 and targets.dtype == torch.int64
    assert (float(loss), int(targets)) == (4.0, 16) == state.epoch_sums_on_host()
    restored = TrainState()
    restored.load_state_dict(state.state_dict(), torch.device("cpu"))
    assert restored.epoch_sums_on_host() == (4.0, 16)
    restored.reset_epoch_sums(torch.device("cpu"))
    assert restored.epoch_sums_on_host() == (0.0, 0)


def test_resumed_host_sums_add_in_the_uninterrupted_order() -> None:
    """Float sums are not associative: after a resume the loaded sum must take the next host values in order."""
    whole, first = TrainState(), TrainState()
    for state in (whole, first):
        state.add_to_epoch(1e16, 1)
    resumed = TrainState()
    resumed.load_state_dict(first.state_dict(), torch.device("cpu"))
    for state in (whole, resumed):
        state.add_to_epoch(1.0, 1)  # 1e16 + 1.0 rounds back to 1e16, twice; 1e16 + 2.0 would not
        state.add_to_epoch(1.0, 1)
    assert resumed.epoch_sums_on_host() == whole.epoch_sums_on_host() == (1e16, 3)
    assert float(resumed.epoch_sums()[0]) == 1e16


def test_in_order_batches_come_as_ranges_and_are_used_where_they_lie() -> None:
    """shuffle=False: the loader fetches ranges (no per-batch order check); the batches equal the listed fetch,
    own their memory, and the step uses them as they are (already on the CPU)."""
    ids = torch.randint(0, 32, (10, 16))
    samples = PairSamples(ids, None, lm_task())
    batches = list(TensorBatchLoader(samples, 4))
    assert [b["input_ids"].shape[0] for b in batches] == [4, 4, 2]
    assert torch.equal(batches[1]["input_ids"], samples.__getitems__([4, 5, 6, 7])["input_ids"])
    assert batches[1]["input_ids"].data_ptr() != ids[4].data_ptr()  # a copy, as collating would give
    assert batches_on(TensorBatchLoader(samples, 4), torch.device("cpu"))
    assert not batches_on(torch.utils.data.DataLoader(RowDicts(ids)), torch.device("cpu"))
