"""The quick reference's data blocks run verbatim ("Data Module Selection" and the Troubleshooting fix).

The blocks are read from ``docs/quick-reference.md``; the prelude is the one of ``tests/test_quick_reference.py`` plus
the names these blocks use that the document defines elsewhere in a notebook (``tokenizer``, ``training_config``,
a model ``config`` with a ``batch_size``).
"""

from __future__ import annotations

import pytest
import torch

from tests.test_quick_reference import PRELUDE, blocks_under

DATA_PRELUDE = PRELUDE + """
from dataclasses import asdict as _asdict
from types import SimpleNamespace as _NS
from trainforge.data.tokenizers import ByteTokenizer as _Byte
tokenizer = _Byte()
training_config = _TC(epochs=1, batch_size=4, learning_rate=1e-3, progress_bar=False)
config = _NS(**_asdict(model_config), batch_size=4)  # the notebook's config carries the batch size
"""


def run(code: str) -> dict:
    namespace: dict = {}
    exec(compile(DATA_PRELUDE, "<prelude>", "exec"), namespace)
    exec(compile(code, "<quick-reference>", "exec"), namespace)
    return namespace


def test_data_module_selection_block():
    pytest.importorskip("lightning")
    import lightning

    (block,) = blocks_under("### 6. Data Module Selection")
    assert "SimpleDataModule" in block and "UniversalDataModule" in block
    ns = run(block)
    dm = ns["data_module"]  # the block rebinds it: the UniversalDataModule comes last
    assert type(dm).__name__ == "UniversalDataModule" and dm.seed == 42 and dm.num_workers == 2
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (16, 16) and torch.equal(batch["labels"], batch["input_ids"])
    assert sum(len(b["input_ids"]) for b in dm.val_dataloader()) == 8

    simple = ns["SimpleDataModule"](train_dataset=ns["train_data"], val_dataset=ns["val_data"],
                                    task_spec=ns["task_spec"], batch_size=32, num_workers=0,
                                    tokenizer=ns["tokenizer"])
    assert isinstance(simple, lightning.LightningDataModule)
    assert next(iter(simple.train_dataloader()))["input_ids"].shape == (16, 16)
    assert simple.tokenizer is ns["tokenizer"]


def test_troubleshooting_dataset_fix_block_trains():
    blocks = blocks_under('### RuntimeError: "Expected train_data to be Dataset or DataLoader"')
    (block,) = [b for b in blocks if "UniversalDataModule" in b]
    assert "train_dataset=train_data" in block
    ns = run(block)
    results = ns["results"]
    assert len(results["loss_history"]) == 1 and results["metrics_summary"]["val/loss"].notna().all()
