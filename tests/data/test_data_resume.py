"""Training on UniversalDataModule loaders resumes exactly mid-epoch, map-style and streaming (max_steps)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import torch

from tests.helpers import lm_task, quiet_config, tiny_gpt
from trainforge import Trainer
from trainforge.data.module import UniversalDataModule
from trainforge.data.streaming import ResumableIterable

SKIP_BY_READING = "skipping"


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 32, (40, 16), generator=g)


def _stream_source():
    data = _data()
    return lambda: ({"input_ids": row} for row in data)  # a generator *function*: re-iterable, deterministic


def _run(ckpt_dir, resume=None, stream=False, **overrides):
    model, cfg = tiny_gpt(dropout=0.1, seed=1)
    settings = dict(epochs=2, batch_size=4, checkpoint_every_n_steps=3, checkpoint_dir=str(ckpt_dir))
    if stream:
        settings.update(max_steps=14, epochs=5)
    settings.update(overrides)
    config = quiet_config(**settings)
    train = ResumableIterable(_stream_source()) if stream else _data()
    dm = UniversalDataModule(train, None, lm_task(), batch_size=4, seed=3, validation_split=0 if stream else 0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = Trainer(model, cfg, config, lm_task()).train(dm.train_dataloader(), dm.val_dataloader(), resume)
    results["_warnings"] = [str(w.message) for w in caught]
    return results


def _resume_from(name, stream=False):
    full = _run(Path("full"), stream=stream)
    Path("resumed").mkdir()
    shutil.copy(Path("full") / name, Path("resumed") / name)
    return full, _run(Path("resumed"), resume=str(Path("resumed") / name), stream=stream)


def _assert_same(a, b):
    assert a["loss_history"] == b["loss_history"]
    for key, value in a["final_model_state"].items():
        assert torch.equal(value, b["final_model_state"][key]), key


def test_mid_epoch_resume_with_module_loaders_is_bitwise_identical():
    full, resumed = _resume_from("step_00000012.pt")  # 9 batches per epoch: step 12 is mid-epoch 2
    _assert_same(full, resumed)


def test_streaming_dataset_trains_with_max_steps_and_resumes_exactly():
    full, resumed = _resume_from("step_00000012.pt", stream=True)  # 10 batches per pass: mid second pass
    assert full["final_model_state"] and full.get("global_step", 14) == 14
    _assert_same(full, resumed)


def test_resume_positions_the_module_sampler_by_arithmetic_not_by_reading():
    _, resumed = _resume_from("step_00000012.pt")
    assert not [w for w in resumed["_warnings"] if SKIP_BY_READING in w]
